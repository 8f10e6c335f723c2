//! An operator's subscriber directory as uploaded: CSV with a header row
//! or JSON, each row checked and normalised (e-mail addresses lower-cased,
//! phone numbers to E.164, Vietnamese national forms accepted). Pure
//! parsing of untrusted bytes, so it can be fuzzed alone; the API
//! encrypts and stores what comes out.

use serde::Deserialize;
use utoipa::ToSchema;

use khien_model::{Observable, ObservableKind};

/// Most subscribers in one upload.
pub const MAX_UPLOAD_ROWS: usize = 200_000;

/// Why a CSV directory was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, {field}: {message}")]
pub struct DirectoryError {
    /// 1-based; the header is line 1.
    pub line: u64,
    /// The column (or `header`, `row`) at fault.
    pub field: String,
    pub message: String,
}

/// One subscriber of an upload.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriberInput {
    /// The operator's own id.
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// Vietnamese national forms are accepted (`0912 345 678`).
    pub phone: Option<String>,
    pub address: Option<String>,
    /// vi (default) or en.
    pub language: Option<String>,
    #[serde(default)]
    pub identities: Vec<String>,
}

/// Reads a CSV directory: header `id,name,email,phone,address,language,
/// identities` (any order, all but `id` optional; identities separated by
/// `;`).
pub fn parse_csv(bytes: &[u8]) -> Result<Vec<(u64, SubscriberInput)>, DirectoryError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let bad = |line: u64, field: &str, message: String| DirectoryError {
        line,
        field: field.into(),
        message,
    };
    let headers = reader
        .headers()
        .map_err(|e| bad(1, "header", format!("the CSV header: {e}")))?
        .clone();
    const KNOWN: [&str; 7] = [
        "id",
        "name",
        "email",
        "phone",
        "address",
        "language",
        "identities",
    ];
    let mut col = [None; 7];
    for (i, h) in headers.iter().enumerate() {
        let h = h.to_ascii_lowercase();
        match KNOWN.iter().position(|k| *k == h) {
            Some(k) => col[k] = Some(i),
            None => {
                return Err(bad(
                    1,
                    &h,
                    format!("unknown column {h:?}; the columns are {}", KNOWN.join(", ")),
                ));
            }
        }
    }
    if col[0].is_none() {
        return Err(bad(1, "id", "the header needs an `id` column".into()));
    }
    let mut out = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let line = i as u64 + 2;
        let rec = rec.map_err(|e| bad(line, "row", format!("line {line}: {e}")))?;
        let get = |k: usize| {
            col[k]
                .and_then(|c| rec.get(c))
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        out.push((
            line,
            SubscriberInput {
                id: get(0).unwrap_or_default(),
                name: get(1),
                email: get(2),
                phone: get(3),
                address: get(4),
                language: get(5),
                identities: get(6)
                    .map(|v| {
                        v.split(';')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            },
        ));
        if out.len() > MAX_UPLOAD_ROWS {
            return Err(bad(
                line,
                "row",
                format!("an upload holds at most {MAX_UPLOAD_ROWS} subscribers"),
            ));
        }
    }
    Ok(out)
}

/// Checks and normalises one row; the error names the field.
pub fn check(input: &mut SubscriberInput) -> Result<(), (String, String)> {
    let fail = |f: &str, m: String| Err((f.to_string(), m));
    let id = input.id.trim();
    if id.is_empty() || id.len() > 256 || id.chars().any(char::is_control) {
        return fail(
            "id",
            "the subscriber id must be 1 to 256 printable characters".into(),
        );
    }
    input.id = id.to_string();
    if let Some(e) = &input.email {
        match Observable::parse(ObservableKind::Email, e) {
            Ok(o) => input.email = Some(o.into_value()),
            Err(err) => return fail("email", format!("{e:?} is not an e-mail address: {err}")),
        }
    }
    if let Some(p) = &input.phone {
        match Observable::parse(ObservableKind::Phone, p) {
            Ok(o) => input.phone = Some(o.into_value()),
            Err(err) => return fail("phone", format!("{p:?} is not a phone number: {err}")),
        }
    }
    for (field, v) in [("name", &input.name), ("address", &input.address)] {
        if let Some(v) = v
            && (v.chars().count() > 1000 || v.chars().any(|c| c.is_control() && c != '\n'))
        {
            return fail(
                field,
                "at most 1,000 characters, no control characters".into(),
            );
        }
    }
    match input.language.as_deref() {
        None | Some("vi") | Some("en") => {}
        Some(other) => return fail("language", format!("{other:?}: use vi or en")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_directory_reads_by_header_and_names_bad_columns() {
        let rows =
            parse_csv("phone,id,identities\n0912 345 678,HN-1,aa:bb;cc\n,HN-2,\n".as_bytes())
                .expect("valid");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0, 2);
        assert_eq!(rows[0].1.id, "HN-1");
        assert_eq!(rows[0].1.identities, vec!["aa:bb", "cc"]);
        assert_eq!(rows[1].1.phone, None);
        let e = parse_csv(b"id,emial\nx,y\n").expect_err("typo");
        assert_eq!((e.line, e.field.as_str()), (1, "emial"));
        let e = parse_csv(b"name\nx\n").expect_err("no id");
        assert_eq!(e.field, "id");
        let e = parse_csv(b"id,name\nx\ny,z,w\n").expect_err("ragged");
        assert_eq!(e.line, 2);
    }

    #[test]
    fn rows_are_normalised_or_refused_by_field() {
        let mut ok = SubscriberInput {
            id: " HN-1 ".into(),
            name: None,
            email: Some("An@Example.VN".into()),
            phone: Some("0912 345 678".into()),
            address: None,
            language: None,
            identities: vec![],
        };
        check(&mut ok).expect("valid");
        assert_eq!(ok.id, "HN-1");
        assert_eq!(ok.phone.as_deref(), Some("+84912345678"));
        let mut bad = ok.clone();
        bad.email = Some("not-an-address".into());
        assert_eq!(check(&mut bad).expect_err("email").0, "email");
        let mut bad = ok.clone();
        bad.phone = Some("call me".into());
        assert_eq!(check(&mut bad).expect_err("phone").0, "phone");
        let mut bad = ok;
        bad.language = Some("fr".into());
        assert_eq!(check(&mut bad).expect_err("language").0, "language");
    }
}
