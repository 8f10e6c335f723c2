//! Choosing a reader: by the user's word, or from the first bytes.

use super::CsvMapping;

/// The input formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    List,
    Csv(CsvMapping),
    Stix,
    Misp,
}

impl Format {
    pub fn name(&self) -> &'static str {
        match self {
            Self::List => "list",
            Self::Csv(_) => "csv",
            Self::Stix => "stix",
            Self::Misp => "misp",
        }
    }

    /// Guesses the format from the start of the input (a few KiB is enough)
    /// and the file name: JSON with STIX markers is STIX, JSON with MISP
    /// markers is MISP; text whose header (possibly in a comment) names
    /// known CSV columns is CSV with that preset, a `.csv` file is CSV with
    /// the default mapping, anything else a plain list.
    pub fn detect(head: &[u8], file_name: Option<&str>) -> Format {
        let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
        let text = String::from_utf8_lossy(&head[..head.len().min(64 * 1024)]);
        let t = text.trim_start();
        if t.starts_with('{') || t.starts_with('[') {
            let has = |s: &str| t.contains(s);
            if has("\"Event\"") || has("\"response\"") || has("\"Attribute\"") {
                return Format::Misp;
            }
            return Format::Stix;
        }
        let csv_name = file_name.is_some_and(|n| n.to_ascii_lowercase().ends_with(".csv"));
        for line in t.lines().take(50) {
            let body = line.trim().trim_start_matches('#').trim();
            if !body.contains(',') {
                continue;
            }
            let fields: Vec<String> = body
                .split(',')
                .map(|f| f.trim().trim_matches('"').trim().to_ascii_lowercase())
                .collect();
            if let Some(m) = CsvMapping::from_header(&fields) {
                return Format::Csv(m);
            }
        }
        if csv_name {
            Format::Csv(CsvMapping::default())
        } else {
            Format::List
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_formats() {
        assert_eq!(
            Format::detect(b"\xEF\xBB\xBF{\"type\": \"bundle\"", None),
            Format::Stix
        );
        assert_eq!(
            Format::detect(b"{\"response\": [{\"Event\"", None),
            Format::Misp
        );
        assert_eq!(
            Format::detect(b"# comment\nevil.com\n", Some("x.txt")),
            Format::List
        );
        assert!(matches!(
            Format::detect(b"################\n# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter\n", None),
            Format::Csv(m) if m == CsvMapping::preset("urlhaus").unwrap_or_default()
        ));
        assert!(matches!(
            Format::detect(b"# \"first_seen_utc\",\"ioc_id\",\"ioc_value\",\"ioc_type\"\n", None),
            Format::Csv(m) if m.value == super::super::Column::Name("ioc_value".into())
        ));
        assert!(matches!(
            Format::detect(b"a,b\n", Some("feed.CSV")),
            Format::Csv(_)
        ));
    }
}
