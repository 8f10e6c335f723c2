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
use khien_store::{EncryptedContacts, SubscriberOutcome, SubscriberRecord, SubscriberUpsert};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::orgs::audit;
use crate::api::{PageParams, Paged, PathParam, QueryParams, media_type, parse_json, read_body};
use crate::auth::{Auth, Permission};
use crate::directory::{MAX_UPLOAD_ROWS, SubscriberInput, check, parse_csv};
use crate::error::{ApiError, Problem};
use crate::server::AppState;

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
        parse_csv(&bytes)
            .map_err(|e| ApiError {
                line: Some(e.line),
                field: Some(e.field),
                ..ApiError::new(Problem::Validation, e.message)
            })?
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
