//! Turns an [`IndicatorFilter`] into a WHERE clause shared by both back
//! ends; only the placeholder syntax differs.

use khien_model::Family;

use crate::IndicatorFilter;
use crate::merge::{secs, tlp_rank};

/// A bound value of a generated query.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Int(i64),
    Text(String),
}

/// Writes the placeholder for the n-th (1-based) parameter.
pub(crate) type Placeholder = fn(usize, &Param) -> String;

/// The conditions on `indicators i` for `filter`, joined with AND.
pub(crate) fn where_clause(filter: &IndicatorFilter, ph: Placeholder) -> (String, Vec<Param>) {
    let mut conds: Vec<String> = Vec::new();
    let mut params: Vec<Param> = Vec::new();
    let bind = |p: Param, params: &mut Vec<Param>| {
        params.push(p);
        ph(params.len(), &params[params.len() - 1])
    };
    let list = |col: &str, values: Vec<Param>, params: &mut Vec<Param>| {
        let phs: Vec<String> = values.into_iter().map(|v| bind(v, params)).collect();
        format!("{col} IN ({})", phs.join(", "))
    };
    if !filter.kinds.is_empty() {
        let v = filter
            .kinds
            .iter()
            .map(|k| Param::Text(k.as_str().into()))
            .collect();
        conds.push(list("i.kind", v, &mut params));
    }
    if !filter.families.is_empty() {
        // Stored families are normalised; accept the user's spelling too.
        let v = filter
            .families
            .iter()
            .map(|f| {
                Param::Text(Family::new(f).map_or_else(|_| f.clone(), |f| f.as_str().to_string()))
            })
            .collect();
        conds.push(list("i.family", v, &mut params));
    }
    if !filter.threat_types.is_empty() {
        let v = filter
            .threat_types
            .iter()
            .map(|t| Param::Text(t.as_str().into()))
            .collect();
        conds.push(list("i.threat_type", v, &mut params));
    }
    if !filter.sources.is_empty() {
        let v = filter
            .sources
            .iter()
            .map(|s| Param::Text(s.clone()))
            .collect();
        let inner = list("s.source", v, &mut params);
        conds.push(format!(
            "EXISTS (SELECT 1 FROM indicator_sources s WHERE s.indicator_id = i.id AND {inner})"
        ));
    }
    if let Some(c) = filter.min_confidence {
        let p = bind(Param::Int(i64::from(c.get())), &mut params);
        conds.push(format!("i.confidence >= {p}"));
    }
    if let Some(t) = filter.tlp_ceiling {
        let p = bind(Param::Int(tlp_rank(t)), &mut params);
        conds.push(format!("i.tlp <= {p}"));
    }
    if let Some(t) = filter.seen_since {
        let p = bind(Param::Int(secs(t)), &mut params);
        conds.push(format!("i.last_seen >= {p}"));
    }
    if !filter.include_allowlisted {
        conds.push("i.allowlisted_by IS NULL".into());
    }
    if !filter.include_expired {
        let now = filter.now.unwrap_or_else(chrono::Utc::now);
        let p = bind(Param::Int(secs(now)), &mut params);
        conds.push(format!("(i.expires_at IS NULL OR i.expires_at > {p})"));
    }
    if conds.is_empty() {
        conds.push("1 = 1".into());
    }
    (conds.join(" AND "), params)
}

/// The streaming query: the filtered indicators in (kind, value) order
/// joined with their sources, so one pass yields whole indicators.
pub(crate) fn stream_query(filter: &IndicatorFilter, ph: Placeholder) -> (String, Vec<Param>) {
    let (cond, params) = where_clause(filter, ph);
    let limit = filter
        .limit
        .map(|n| format!(" LIMIT {}", n.min(i64::MAX as u64)))
        .unwrap_or_default();
    let sql = format!(
        "SELECT i.id, i.kind, i.value, i.allowlisted_by, \
         s.source, CAST(s.tlp AS BIGINT), CAST(s.confidence AS BIGINT), s.family, s.threat_type, s.reference, \
         s.first_seen, s.last_seen, s.expires_at \
         FROM (SELECT i.id, i.kind, i.value, i.allowlisted_by FROM indicators i \
               WHERE {cond} ORDER BY i.kind, i.value{limit}) i \
         JOIN indicator_sources s ON s.indicator_id = i.id \
         ORDER BY i.kind, i.value, s.source"
    );
    (sql, params)
}
