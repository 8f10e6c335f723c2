//! Public lookups, without login: "is my address seen infected?" and "is
//! this domain, URL, address, hash, e-mail address or phone number known
//! malicious?".
//!
//! Both are rate-limited per client address (`lookups.requests_per_minute`
//! with a `lookups.burst`) and their answers cached for
//! `lookups.cache_ttl`. `lookup/self` answers only for the address the
//! request comes from — there is no parameter to ask about anyone else's.
//! `lookup/indicator` answers from TLP:CLEAR indicators only: the matcher
//! snapshot of them is kept in memory, so a lookup costs a hash probe, not
//! a database query (e-mail addresses and phone numbers, which snapshots
//! do not hold, are looked up in the store).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use khien_model::{Observable, ObservableKind, Tlp};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::QueryParams;
use crate::auth::ClientAddr;
use crate::error::{ApiError, Problem};
use crate::guidance::{self, Guidance, Language};
use crate::metrics::add;
use crate::server::AppState;

/// Cached answers kept at most; past it the cache starts over.
const CACHE_ENTRIES: usize = 100_000;

/// Answers by question, each with its expiry.
#[derive(Debug, Default)]
pub(crate) struct LookupCache(Mutex<HashMap<String, (Instant, Bytes)>>);

impl LookupCache {
    fn get(&self, key: &str) -> Option<Bytes> {
        let map = self.0.lock().ok()?;
        map.get(key)
            .filter(|(until, _)| *until > Instant::now())
            .map(|(_, b)| b.clone())
    }

    fn put(&self, key: String, ttl: Duration, body: Bytes) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= CACHE_ENTRIES {
                map.clear();
            }
            map.insert(key, (Instant::now() + ttl, body));
        }
    }

    /// Forgets everything (indicators changed).
    pub fn clear(&self) {
        if let Ok(mut map) = self.0.lock() {
            map.clear();
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SelfQuery {
    /// vi (default) or en; otherwise Accept-Language decides.
    pub lang: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct IndicatorQuery {
    /// A domain, URL, IP address, file hash, e-mail address or phone
    /// number; defanged forms (`evil[.]com`, `hxxp://`) are accepted.
    pub value: String,
    /// vi (default) or en; otherwise Accept-Language decides.
    pub lang: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Finding {
    pub family: String,
    pub last_seen: DateTime<Utc>,
    pub guidance: Guidance,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SelfAnswer {
    /// The address the question came from.
    pub address: Option<String>,
    pub infected: bool,
    pub findings: Vec<Finding>,
    pub window_days: u64,
    pub message: String,
    /// Where to get the free scanner.
    pub scanner: String,
    pub language: Language,
    pub checked_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct IndicatorMatch {
    /// The listed indicator (a parent domain, for a host under it).
    pub indicator: String,
    pub kind: String,
    pub family: Option<String>,
    pub threat_type: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct IndicatorAnswer {
    /// The value as normalised.
    pub value: String,
    pub kind: String,
    pub listed: bool,
    pub matches: Vec<IndicatorMatch>,
    pub message: String,
    pub language: Language,
}

pub(crate) fn rate_limit(state: &AppState, client: Option<IpAddr>) -> Result<(), ApiError> {
    let Some(ip) = client else {
        return Ok(());
    };
    if state.limits.lookups.check_key(&ip).is_err() {
        add(&state.metrics.lookups_limited, 1);
        let per = state.config.lookups.requests_per_minute.max(1);
        return Err(ApiError {
            retry_after: Some(u64::from(60u32.div_ceil(per)).max(1)),
            ..ApiError::new(
                Problem::RateLimited,
                format!("at most {per} lookups a minute from one address"),
            )
        });
    }
    Ok(())
}

fn json_response(body: Bytes, cached: bool) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=60"),
    );
    h.insert(
        "x-cache",
        HeaderValue::from_static(if cached { "hit" } else { "miss" }),
    );
    res
}

fn accept_language(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
}

/// Is my own address (the one this request comes from) seen infected?
#[utoipa::path(get, path = "/api/v1/lookup/self", tag = "public", params(SelfQuery),
    responses((status = 200, body = SelfAnswer),
        (status = 429, description = "Rate limit; see Retry-After", body = crate::error::ProblemSchema)))]
pub(crate) async fn own_address(
    State(state): State<Arc<AppState>>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    QueryParams(q): QueryParams<SelfQuery>,
) -> Result<Response, ApiError> {
    rate_limit(&state, client)?;
    add(&state.metrics.lookups, 1);
    let lang = Language::choose(q.lang.as_deref(), accept_language(&headers));
    let key = format!("self\0{client:?}\0{lang:?}");
    if let Some(body) = state.lookup_cache.get(&key) {
        return Ok(json_response(body, true));
    }
    let window = state.config.lookups.self_window;
    let days = window.as_secs() / 86_400;
    let since =
        Utc::now() - chrono::Duration::seconds(i64::try_from(window.as_secs()).unwrap_or(0));
    let families = match client {
        Some(ip) => {
            state
                .store
                .run(move |s| s.client_activity(ip, since))
                .await?
        }
        None => Vec::new(),
    };
    let mut findings: Vec<Finding> = families
        .into_iter()
        .map(|(family, last_seen)| Finding {
            guidance: guidance::guidance(lang, &family),
            family,
            last_seen,
        })
        .collect();
    findings.sort_by_key(|f| std::cmp::Reverse(f.last_seen));
    let address = client.map(|c| c.to_string());
    let addr_text = address.clone().unwrap_or_default();
    let days_text = days.to_string();
    let message = match (&client, findings.is_empty()) {
        (None, _) => guidance::message(lang, "self_unknown", &[]),
        (Some(_), true) => guidance::message(
            lang,
            "self_clean",
            &[("address", &addr_text), ("days", &days_text)],
        ),
        (Some(_), false) => guidance::message(
            lang,
            "self_infected",
            &[("address", &addr_text), ("days", &days_text)],
        ),
    };
    let answer = SelfAnswer {
        address,
        infected: !findings.is_empty(),
        findings,
        window_days: days,
        message,
        scanner: guidance::message(lang, "scanner", &[]),
        language: lang,
        checked_at: Utc::now(),
    };
    let body = Bytes::from(serde_json::to_vec(&answer).map_err(|e| ApiError::internal(&e))?);
    state
        .lookup_cache
        .put(key, state.config.lookups.cache_ttl, body.clone());
    Ok(json_response(body, false))
}

/// Is this value known malicious? (TLP:CLEAR indicators only.)
#[utoipa::path(get, path = "/api/v1/lookup/indicator", tag = "public", params(IndicatorQuery),
    responses((status = 200, body = IndicatorAnswer),
        (status = 422, description = "Not a domain, URL, address, hash, e-mail address or phone number", body = crate::error::ProblemSchema),
        (status = 429, description = "Rate limit; see Retry-After", body = crate::error::ProblemSchema),
        (status = 503, description = "The indicator index is being built", body = crate::error::ProblemSchema)))]
pub(crate) async fn indicator(
    State(state): State<Arc<AppState>>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    QueryParams(q): QueryParams<IndicatorQuery>,
) -> Result<Response, ApiError> {
    rate_limit(&state, client)?;
    add(&state.metrics.lookups, 1);
    let lang = Language::choose(q.lang.as_deref(), accept_language(&headers));
    if q.value.len() > 4096 {
        return Err(ApiError::invalid("value", "at most 4096 bytes"));
    }
    let observable = Observable::detect(&q.value).map_err(|e| {
        ApiError::invalid(
            "value",
            format!(
                "{:?} is not a domain, URL, IP address, hash, e-mail address or phone number: {e}",
                q.value
            ),
        )
    })?;
    let key = format!(
        "ind\0{}\0{}\0{lang:?}",
        observable.kind().as_str(),
        observable.value()
    );
    if let Some(body) = state.lookup_cache.get(&key) {
        return Ok(json_response(body, true));
    }
    let matches = match observable.kind() {
        ObservableKind::Email | ObservableKind::Phone => {
            let o = observable.clone();
            state
                .store
                .run(move |s| s.get(&o))
                .await?
                .filter(|i| {
                    i.tlp == Tlp::Clear && i.is_active(Utc::now()) && i.allowlisted_by.is_none()
                })
                .map(|i| IndicatorMatch {
                    indicator: i.observable.value().to_string(),
                    kind: i.observable.kind().as_str().to_string(),
                    family: i.family.map(|f| f.as_str().to_string()),
                    threat_type: i.threat_type.as_str().to_string(),
                })
                .into_iter()
                .collect::<Vec<_>>()
        }
        _ => {
            let snapshot = state.public_snapshot().ok_or_else(|| ApiError {
                retry_after: Some(5),
                ..ApiError::new(
                    Problem::SnapshotUnavailable,
                    "the indicator index is being built; retry shortly",
                )
            })?;
            let mut out = Vec::new();
            let mut push = |h: Option<khien_matcher::Hit<'_>>| {
                if let Some(h) = h
                    && !out.iter().any(|m: &IndicatorMatch| m.indicator == h.value)
                {
                    out.push(IndicatorMatch {
                        indicator: h.value.to_string(),
                        kind: h.kind.as_str().to_string(),
                        family: h.family.map(str::to_string),
                        threat_type: h.threat_type.as_str().to_string(),
                    });
                }
            };
            match observable.kind() {
                ObservableKind::Domain => {
                    push(snapshot.match_domain(observable.value().as_bytes()))
                }
                ObservableKind::Url => {
                    push(snapshot.match_url(observable.value()));
                    if let Some(host) = observable.host() {
                        match host.parse::<IpAddr>() {
                            Ok(ip) => push(snapshot.match_ip(ip)),
                            Err(_) => push(snapshot.match_domain(host.as_bytes())),
                        }
                    }
                }
                ObservableKind::Ipv4 | ObservableKind::Ipv6 => {
                    if let Some(ip) = observable.as_ip() {
                        push(snapshot.match_ip(ip));
                    }
                }
                ObservableKind::Cidr => {
                    if let Some(net) = observable.as_net() {
                        push(snapshot.match_ip(net.network()));
                    }
                }
                _ => push(snapshot.match_hash(observable.value())),
            }
            out
        }
    };
    let listed = !matches.is_empty();
    let message = guidance::message(
        lang,
        if listed {
            "indicator_listed"
        } else {
            "indicator_clean"
        },
        &[("value", observable.value())],
    );
    let answer = IndicatorAnswer {
        value: observable.value().to_string(),
        kind: observable.kind().as_str().to_string(),
        listed,
        matches,
        message,
        language: lang,
    };
    let body = Bytes::from(serde_json::to_vec(&answer).map_err(|e| ApiError::internal(&e))?);
    state
        .lookup_cache
        .put(key, state.config.lookups.cache_ttl, body.clone());
    Ok(json_response(body, false))
}
