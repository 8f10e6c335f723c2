//! Tenant isolation: two operators with the same private address space,
//! each with keys, a user, subscribers, attribution and a case. Every
//! list and detail endpoint is tried across tenants, with a key and with
//! a session; nothing of the other tenant is visible or changeable.

use super::*;

hub_tests!(
    nothing_of_another_operator_is_visible_or_changeable,
    national_cert_sees_organisations_and_statistics_but_no_subscribers,
);

/// One operator's world.
struct Tenant {
    org: i64,
    admin_key: String,
    user: Session,
    user_id: i64,
    key_id: i64,
    subscriber: String,
    case_id: i64,
}

const PASSWORD: &str = "tenant password 1";

/// A RADIUS accounting CSV: one Start per (user, address) at `start`.
fn radius_csv(rows: &[(&str, &str)], start: Timestamp) -> String {
    let mut out = String::from("time,status,user,address,session\n");
    for (i, (user, addr)) in rows.iter().enumerate() {
        out.push_str(&format!(
            "{},Start,{user},{addr},s{i}\n",
            start.to_rfc3339()
        ));
    }
    out
}

fn upload(hub: &TestHub, key: &str, format: &str, body: &str) -> Value {
    let r = hub.request(
        "POST",
        &format!("/api/v1/attribution?format={format}"),
        &[
            ("Authorization", &format!("Bearer {key}")),
            ("Content-Type", "text/plain"),
        ],
        Some(body.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

fn tenant(db: &TestDb, hub: &TestHub, slug: &str) -> Tenant {
    let (org, admin_key) = operator(db, slug);
    let email = format!("admin@{slug}.vn");
    let token = user_with_token(db, org, &email, UserRole::Admin);
    let user = hub.activate(&email, &token, PASSWORD);
    let user_id = hub.as_user("GET", "/api/v1/session", &user, None).json()["user"]["id"]
        .as_i64()
        .unwrap();
    let sensor = key_in(db, org, &format!("sensor-{slug}"), &["hits:write"]);
    let key_id = db
        .open()
        .list_api_keys(Some(org))
        .unwrap()
        .into_iter()
        .find(|k| k.name == format!("sensor-{slug}"))
        .unwrap()
        .id;
    let csv = format!("id,email,phone\n{slug}-1,owner@{slug}.vn,0912345678\n");
    let r = hub.request(
        "POST",
        "/api/v1/subscribers",
        &[
            ("Authorization", &format!("Bearer {admin_key}")),
            ("Content-Type", "text/csv"),
        ],
        Some(csv.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let start = Utc::now() - chrono::Duration::hours(3);
    upload(
        hub,
        &admin_key,
        "radius-csv",
        &radius_csv(&[(&format!("{slug}-1"), "10.0.0.1")], start),
    );
    let mut h = hit(&format!("sensor-{slug}"), "10.0.0.1", 4);
    h.bucket = khien_model::bucket_start(Utc::now() - chrono::Duration::hours(1), 3600);
    h.first_seen = h.bucket + chrono::Duration::minutes(1);
    h.last_seen = h.bucket + chrono::Duration::minutes(2);
    let r = hub.send_ndjson(&sensor, "b1", &[h]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["attributed"], 1);
    let cases = hub.call("GET", "/api/v1/cases", &admin_key, None).json();
    assert_eq!(cases["items"].as_array().unwrap().len(), 1, "{cases}");
    Tenant {
        org,
        admin_key,
        user,
        user_id,
        key_id,
        subscriber: secrets().pseudonym(org, &format!("{slug}-1")),
        case_id: cases["items"][0]["id"].as_i64().unwrap(),
    }
}

/// Both ways of being tenant `t`: its admin key and its admin's session.
fn as_tenant(
    hub: &TestHub,
    t: &Tenant,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> [Reply; 2] {
    [
        hub.call(method, path, &t.admin_key, body),
        hub.as_user(method, path, &t.user, body),
    ]
}

fn ids(v: &Value) -> Vec<i64> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            i["id"]
                .as_i64()
                .or_else(|| i["org_id"].as_i64())
                .unwrap_or(-1)
        })
        .collect()
}

fn nothing_of_another_operator_is_visible_or_changeable(db: &TestDb) {
    let hub = TestHub::start(db, |_| {});
    let a = tenant(db, &hub, "a");
    let b = tenant(db, &hub, "b");
    assert_ne!(a.subscriber, b.subscriber, "pseudonyms differ per operator");

    for r in as_tenant(&hub, &a, "GET", "/api/v1/organizations", None) {
        assert_eq!(ids(&r.json()), vec![a.org]);
    }
    for r in as_tenant(
        &hub,
        &a,
        "GET",
        &format!("/api/v1/organizations/{}", b.org),
        None,
    ) {
        r.problem(404);
    }
    for r in as_tenant(&hub, &a, "GET", "/api/v1/users", None) {
        assert_eq!(ids(&r.json()), vec![a.user_id]);
    }
    let b_user = format!("/api/v1/users/{}", b.user_id);
    for r in as_tenant(&hub, &a, "GET", &b_user, None) {
        r.problem(404);
    }
    for r in as_tenant(&hub, &a, "PATCH", &b_user, Some(&json!({"disabled": true}))) {
        r.problem(404);
    }
    for r in as_tenant(&hub, &a, "POST", &format!("{b_user}/setup-token"), None) {
        r.problem(404);
    }
    let into_b =
        json!({"email": "spy@a.vn", "display_name": "Spy", "role": "admin", "org_id": b.org});
    for r in as_tenant(&hub, &a, "POST", "/api/v1/users", Some(&into_b)) {
        assert_eq!(r.problem(403)["field"], "org_id");
    }
    for r in as_tenant(&hub, &a, "GET", "/api/v1/api-keys", None) {
        let listed = r.json();
        assert!(
            listed["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|k| k["org_id"] == a.org)
        );
    }
    for r in as_tenant(
        &hub,
        &a,
        "GET",
        &format!("/api/v1/api-keys?org_id={}", b.org),
        None,
    ) {
        r.problem(403);
    }
    for r in as_tenant(
        &hub,
        &a,
        "DELETE",
        &format!("/api/v1/api-keys/{}", b.key_id),
        None,
    ) {
        r.problem(404);
    }
    assert!(
        db.open()
            .api_key(b.key_id)
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none(),
        "B's key still works"
    );
    let key_in_b = json!({"name": "spy", "scopes": ["read"], "org_id": b.org});
    for r in as_tenant(&hub, &a, "POST", "/api/v1/api-keys", Some(&key_in_b)) {
        r.problem(403);
    }
    for r in as_tenant(&hub, &a, "GET", "/api/v1/audit", None) {
        let log = r.json();
        let items = log["items"].as_array().unwrap();
        assert!(!items.is_empty());
        assert!(items.iter().all(|e| e["org_id"] == a.org), "{log}");
    }
    for r in as_tenant(
        &hub,
        &a,
        "GET",
        &format!("/api/v1/audit?org_id={}", b.org),
        None,
    ) {
        r.problem(403);
    }
    for r in as_tenant(&hub, &a, "GET", "/api/v1/subscribers", None) {
        let list = r.json();
        let subs: Vec<&str> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap())
            .collect();
        assert_eq!(subs, vec![a.subscriber.as_str()]);
    }
    for r in as_tenant(
        &hub,
        &a,
        "GET",
        &format!("/api/v1/subscribers/{}", b.subscriber),
        None,
    ) {
        r.problem(404);
    }
    for r in as_tenant(&hub, &a, "GET", "/api/v1/cases", None) {
        assert_eq!(ids(&r.json()), vec![a.case_id]);
    }
    for r in as_tenant(
        &hub,
        &a,
        "GET",
        &format!("/api/v1/cases?subscriber={}", b.subscriber),
        None,
    ) {
        assert!(ids(&r.json()).is_empty());
    }
    let b_case = format!("/api/v1/cases/{}", b.case_id);
    for r in as_tenant(&hub, &a, "GET", &b_case, None) {
        r.problem(404);
    }
    for r in as_tenant(
        &hub,
        &a,
        "POST",
        &format!("{b_case}/transition"),
        Some(&json!({"state": "notified"})),
    ) {
        r.problem(404);
    }
    for r in as_tenant(
        &hub,
        &a,
        "POST",
        &format!("{b_case}/assignee"),
        Some(&json!({"user_id": a.user_id})),
    ) {
        r.problem(404);
    }
    for r in as_tenant(
        &hub,
        &a,
        "POST",
        &format!("{b_case}/comments"),
        Some(&json!({"text": "x"})),
    ) {
        r.problem(404);
    }
    let a_case = format!("/api/v1/cases/{}", a.case_id);
    for r in as_tenant(
        &hub,
        &a,
        "POST",
        &format!("{a_case}/assignee"),
        Some(&json!({"user_id": b.user_id})),
    ) {
        r.problem(404);
    }
    for r in as_tenant(&hub, &a, "GET", "/api/v1/stats/cases", None) {
        let stats = r.json();
        let totals = stats["totals"].as_array().unwrap();
        assert_eq!(totals.len(), 1, "{stats}");
        assert_eq!(totals[0]["org_id"], a.org);
        assert_eq!(totals[0]["open"], 1);
    }
    for r in as_tenant(
        &hub,
        &a,
        "GET",
        &format!("/api/v1/stats/cases?org_id={}", b.org),
        None,
    ) {
        r.problem(403);
    }
    // B's state is as B left it.
    let b_view = hub.call("GET", &b_case, &b.admin_key, None).json();
    assert_eq!(b_view["state"], "open");
    assert!(b_view["assignee_id"].is_null());
    assert_eq!(
        b_view["timeline"].as_array().unwrap().len(),
        1,
        "only the opening: {b_view}"
    );
}

fn national_cert_sees_organisations_and_statistics_but_no_subscribers(db: &TestDb) {
    let hub = TestHub::start(db, |_| {});
    let a = tenant(db, &hub, "a");
    let b = tenant(db, &hub, "b");
    let cert = key(db, "cert-admin", &["admin"]);
    let orgs = hub.call("GET", "/api/v1/organizations", &cert, None).json();
    assert_eq!(ids(&orgs), vec![1, a.org, b.org]);
    let stats = hub.call("GET", "/api/v1/stats/cases", &cert, None).json();
    let orgs_in_stats: Vec<i64> = stats["totals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["org_id"].as_i64().unwrap())
        .collect();
    assert_eq!(orgs_in_stats, vec![a.org, b.org]);
    // Counts only: the CERT has no way to the operators' subscribers.
    let subs = hub.call("GET", "/api/v1/subscribers", &cert, None).json();
    assert!(subs["items"].as_array().unwrap().is_empty());
    hub.call(
        "GET",
        &format!("/api/v1/subscribers/{}", a.subscriber),
        &cert,
        None,
    )
    .problem(404);
    hub.call("GET", &format!("/api/v1/cases/{}", a.case_id), &cert, None)
        .problem(404);
    // A national reader (not admin) sees statistics but not other tenants' users.
    let reader = key(db, "cert-reader", &["read"]);
    let one = hub
        .call(
            "GET",
            &format!("/api/v1/stats/cases?org_id={}", a.org),
            &reader,
            None,
        )
        .json();
    assert_eq!(one["totals"][0]["org_id"], a.org);
    hub.call(
        "GET",
        &format!("/api/v1/users?org_id={}", a.org),
        &reader,
        None,
    )
    .problem(403);
    // The CERT's admins manage organisations.
    let r = hub.call(
        "POST",
        "/api/v1/organizations",
        &cert,
        Some(&json!({"slug": "province-hn", "name": "Sở TT&TT Hà Nội", "role": "province"})),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let dup = hub.call(
        "POST",
        "/api/v1/organizations",
        &cert,
        Some(&json!({"slug": "province-hn", "name": "Again", "role": "province"})),
    );
    dup.problem(409);
}
