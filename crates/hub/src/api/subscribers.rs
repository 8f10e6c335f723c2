//! An operator's subscriber directory: upload (JSON or CSV), list, and one
//! subscriber with their contact details.
//!
//! Contact fields are encrypted before they reach the store (see
//! [`crate::secrets`]) and decrypted only for `GET
//! /api/v1/subscribers/{pseudonym}`, which writes `subscriber.read` to the
//! audit log; listing writes `subscriber.list`. Subscribers are addressed
//! by pseudonym, the only name they have outside the tenant.
//!
//! An upload is all or nothing: the first bad row refuses the whole upload
//! with its line (CSV) or index (JSON) and field, so a half-applied
//! directory never exists.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use khien_model::{Observable, ObservableKind};
use khien_store::{EncryptedContacts, SubscriberOutcome, SubscriberRecord, SubscriberUpsert};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::orgs::audit;
use crate::api::{PageParams, Paged, PathParam, QueryParams, media_type, parse_json, read_body};
use crate::auth::{Auth, Permission};
use crate::error::{ApiError, Problem};
use crate::server::AppState;

/// Most subscribers in one upload.
const MAX_UPLOAD_ROWS: usize = 200_000;

/// A subscriber as listed: no contact details.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SubscriberView {
    /// The pseudonym: how the subscriber is named everywhere.
    pub id: String,
    /// The operator's own id (account number, login).
    pub external_id: String,
    pub language: String,
    pub has_name: bool,
    pub has_email: bool,
    pub has_phone: bool,
    pub has_address: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub row_id: i64,
}

impl From<SubscriberRecord> for SubscriberView {
    fn from(s: SubscriberRecord) -> Self {
        Self {
            id: s.pseudonym,
            external_id: s.external_id,
            language: s.language,
            has_name: s.contacts.name.is_some(),
            has_email: s.contacts.email.is_some(),
            has_phone: s.contacts.phone.is_some(),
            has_address: s.contacts.address.is_some(),
            created_at: s.created_at,
            updated_at: s.updated_at,
            row_id: s.id,
        }
    }
}

/// One subscriber with contact details (an audited read).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SubscriberDetail {
    pub id: String,
    pub external_id: String,
    pub language: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    /// Other names in attribution files (RADIUS user, MAC, circuit id).
    pub identities: Vec<String>,
    /// Fields that could not be decrypted (their key is not configured).
    pub undecryptable: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One subscriber of an upload.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubscriberInput {
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

/// `{"subscribers": [...]}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubscriberUpload {
    pub subscribers: Vec<SubscriberInput>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UploadOutcome {
    pub created: u64,
    pub updated: u64,
}

/// Reads a CSV directory: header `id,name,email,phone,address,language,
/// identities` (any order, all but `id` optional; identities separated by
/// `;`).
fn parse_csv(bytes: &[u8]) -> Result<Vec<(u64, SubscriberInput)>, ApiError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let bad = |line: u64, field: &str, detail: String| ApiError {
        line: Some(line),
        field: Some(field.into()),
        ..ApiError::new(Problem::Validation, detail)
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
fn check(input: &mut SubscriberInput) -> Result<(), (String, String)> {
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

/// Upload subscribers: JSON `{"subscribers": [...]}` or `text/csv` with a
/// header row. Creates or updates by id; all or nothing.
#[utoipa::path(post, path = "/api/v1/subscribers", tag = "subscribers",
    request_body(content(
        (SubscriberUpload = "application/json"),
        (String = "text/csv", example = "id,name,email,phone,language,identities\nHN-001,Nguyễn Văn A,a@example.vn,0912345678,vi,00:11:22:33:44:55")
    )),
    responses((status = 200, body = UploadOutcome), (status = 415, body = crate::error::ProblemSchema),
        (status = 422, description = "A row is refused; nothing was stored", body = crate::error::ProblemSchema)))]
pub(crate) async fn upload(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    headers: HeaderMap,
    mut body: Body,
) -> Result<Json<UploadOutcome>, ApiError> {
    p.require(Permission::UploadData)?;
    let media = media_type(&headers);
    let csv = match media.as_str() {
        "text/csv" => true,
        "application/json" => false,
        other => {
            return Err(ApiError::new(
                Problem::UnsupportedMediaType,
                format!("Content-Type {other:?}: send application/json or text/csv"),
            ));
        }
    };
    let bytes = read_body(&state, &headers, &mut body).await?;
    let rows: Vec<(Option<u64>, Option<usize>, SubscriberInput)> = if csv {
        parse_csv(&bytes)?
            .into_iter()
            .map(|(l, s)| (Some(l), None, s))
            .collect()
    } else {
        let upload: SubscriberUpload = parse_json(&bytes)?;
        if upload.subscribers.len() > MAX_UPLOAD_ROWS {
            return Err(ApiError::invalid(
                "subscribers",
                format!("an upload holds at most {MAX_UPLOAD_ROWS} subscribers"),
            ));
        }
        upload
            .subscribers
            .into_iter()
            .enumerate()
            .map(|(i, s)| (None, Some(i), s))
            .collect()
    };
    let org = p.org_id;
    let secrets = state.secrets.clone();
    let upserts =
        tokio::task::spawn_blocking(move || -> Result<Vec<SubscriberUpsert>, ApiError> {
            let key_id = secrets.key_id();
            let mut out = Vec::with_capacity(rows.len());
            for (line, index, mut input) in rows {
                if let Err((field, detail)) = check(&mut input) {
                    let field = match index {
                        Some(i) => format!("subscribers[{i}].{field}"),
                        None => field,
                    };
                    let at = line.map_or_else(
                        || format!("subscribers[{}]", index.unwrap_or(0)),
                        |l| format!("line {l}"),
                    );
                    return Err(ApiError {
                        line,
                        index,
                        field: Some(field),
                        ..ApiError::new(Problem::Validation, format!("{at}: {detail}"))
                    });
                }
                let enc = |field: &str, v: &Option<String>| -> Result<Option<Vec<u8>>, ApiError> {
                    v.as_ref()
                        .map(|v| secrets.encrypt(org, &input.id, field, v))
                        .transpose()
                        .map_err(|e| ApiError::internal(&e))
                };
                let contacts = EncryptedContacts {
                    name: enc("name", &input.name)?,
                    email: enc("email", &input.email)?,
                    phone: enc("phone", &input.phone)?,
                    address: enc("address", &input.address)?,
                };
                out.push(SubscriberUpsert {
                    pseudonym: secrets.pseudonym(org, &input.id),
                    language: input.language.clone().unwrap_or_else(|| "vi".into()),
                    contacts: Some((contacts, key_id.clone())),
                    identities: input.identities.clone(),
                    external_id: input.id,
                });
            }
            Ok(out)
        })
        .await
        .map_err(|e| ApiError::internal(&e))??;
    let n = upserts.len();
    let outcome: SubscriberOutcome = state
        .store
        .run(move |s| s.upsert_subscribers(org, &upserts))
        .await?;
    audit(
        &state,
        &p,
        Some(org),
        "subscriber.upload",
        None,
        Some(
            serde_json::json!({"rows": n, "created": outcome.created, "updated": outcome.updated}),
        ),
    )
    .await?;
    Ok(Json(UploadOutcome {
        created: outcome.created,
        updated: outcome.updated,
    }))
}

/// Subscribers of one's organisation, without contact details (audited).
#[utoipa::path(get, path = "/api/v1/subscribers", tag = "subscribers", params(PageParams),
    responses((status = 200, body = Paged<SubscriberView>)))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    QueryParams(q): QueryParams<PageParams>,
) -> Result<Json<Paged<SubscriberView>>, ApiError> {
    p.require(Permission::Read)?;
    let page = q.page()?;
    let org = p.org_id;
    let rows = state.store.run(move |s| s.subscribers(org, page)).await?;
    audit(
        &state,
        &p,
        Some(org),
        "subscriber.list",
        None,
        Some(serde_json::json!({"count": rows.len()})),
    )
    .await?;
    Ok(Json(Paged::new(
        rows.into_iter().map(SubscriberView::from).collect(),
        page.limit,
        |s| s.row_id,
    )))
}

/// One subscriber with decrypted contact details (an audited read of
/// personal data).
#[utoipa::path(get, path = "/api/v1/subscribers/{id}", tag = "subscribers",
    params(("id" = String, Path, description = "The subscriber's pseudonym")),
    responses((status = 200, body = SubscriberDetail), (status = 404, body = crate::error::ProblemSchema)))]
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    PathParam(pseudonym): PathParam<String>,
) -> Result<Json<SubscriberDetail>, ApiError> {
    p.require(Permission::Read)?;
    let org = p.org_id;
    let (rec, identities) = state
        .store
        .run(move |s| {
            let Some(rec) = s.subscriber_by_pseudonym(org, &pseudonym)? else {
                return Ok(None);
            };
            let ids = s.subscriber_identities(org, rec.id)?;
            Ok(Some((rec, ids)))
        })
        .await?
        .ok_or_else(|| ApiError::not_found("subscriber"))?;
    audit(
        &state,
        &p,
        Some(org),
        "subscriber.read",
        Some(format!("subscriber:{}", rec.pseudonym)),
        None,
    )
    .await?;
    let mut undecryptable = Vec::new();
    let mut open = |field: &str, c: &Option<Vec<u8>>| -> Option<String> {
        let c = c.as_ref()?;
        match state.secrets.decrypt(org, &rec.external_id, field, c) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(event = "hub_contact_decrypt_failed", field, error = %e);
                undecryptable.push(field.to_string());
                None
            }
        }
    };
    let name = open("name", &rec.contacts.name);
    let email = open("email", &rec.contacts.email);
    let phone = open("phone", &rec.contacts.phone);
    let address = open("address", &rec.contacts.address);
    let identities = identities
        .into_iter()
        .filter(|i| i.as_str() != rec.external_id.as_str())
        .collect();
    Ok(Json(SubscriberDetail {
        id: rec.pseudonym,
        external_id: rec.external_id,
        language: rec.language,
        name,
        email,
        phone,
        address,
        identities,
        undecryptable,
        created_at: rec.created_at,
        updated_at: rec.updated_at,
    }))
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
        assert_eq!((e.line, e.field.as_deref()), (Some(1), Some("emial")));
        let e = parse_csv(b"name\nx\n").expect_err("no id");
        assert_eq!(e.field.as_deref(), Some("id"));
        let e = parse_csv(b"id,name\nx\ny,z,w\n").expect_err("ragged");
        assert_eq!(e.line, Some(2));
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
