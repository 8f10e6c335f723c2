//! Choosing a reader: by the user's word, or from the first bytes.

use super::CsvMapping;

/// The input formats.
// Built once per input and matched once: boxing the mapping would only
// make `Format::Csv(mapping)` clumsier for callers.
#[allow(clippy::large_enum_variant)]
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
            // Whichever family's marker comes first: a STIX description may
            // quote the word "Event" long after the bundle opened.
            let first = |markers: &[&str]| markers.iter().filter_map(|m| t.find(m)).min();
            let misp = first(&["\"Event\"", "\"response\"", "\"Attribute\"", "\"Orgc\""]);
            let stix = first(&[
                "\"bundle\"",
                "\"objects\"",
                "\"spec_version\"",
                "\"pattern\"",
            ]);
            return match (misp, stix) {
                (Some(m), Some(s)) if m < s => Format::Misp,
                (Some(_), None) => Format::Misp,
                _ => Format::Stix,
            };
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
        let manifest = br#"{"06159a36-6012-5d68-bff5-7fac1110a2a6":{"info":"x","Orgc":{}}}"#;
        assert_eq!(Format::detect(manifest, None), Format::Misp);
        let quoting = br#"{"objects": [{"description": "an \"Event\""}], "type": "bundle"}"#;
        assert_eq!(Format::detect(quoting, None), Format::Stix);
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
