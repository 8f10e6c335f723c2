//! Logins, sessions, CSRF, setup tokens, lockout and scopes.

use super::*;

hub_tests!(
    first_start_makes_an_admin_who_sets_a_password_once,
    wrong_password_and_unknown_user_look_alike,
    repeated_wrong_passwords_lock_the_account,
    login_attempts_are_rate_limited_per_address,
    session_writes_need_the_csrf_token,
    expired_session_gets_401,
    logout_and_password_change_end_sessions,
    scopes_and_roles_are_enforced,
    revoked_key_through_the_api_gets_401,
    request_mistakes_get_problems_naming_the_field,
);

const PASSWORD: &str = "correct horse battery";

fn admin(hub: &TestHub) -> Session {
    let token = hub.first_token.clone().expect("first start");
    hub.activate(khien_hub::FIRST_ADMIN_EMAIL, &token, PASSWORD)
}

fn first_start_makes_an_admin_who_sets_a_password_once(db: &TestDb) {
    let hub = TestHub::start(db, |_| {});
    let token = hub.first_token.clone().expect("first start prints a token");
    // No password yet: a login cannot succeed.
    let r = hub.request(
        "POST",
        "/api/v1/session",
        &[("Content-Type", "application/json")],
        Some(
            json!({"email": khien_hub::FIRST_ADMIN_EMAIL, "password": PASSWORD})
                .to_string()
                .as_bytes(),
        ),
    );
    r.problem(401);
    let short = hub.request(
        "POST",
        "/api/v1/setup",
        &[("Content-Type", "application/json")],
        Some(
            json!({"token": token, "password": "short"})
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(short.problem(422)["field"], "password");
    let s = hub.activate(khien_hub::FIRST_ADMIN_EMAIL, &token, PASSWORD);
    let me = hub.as_user("GET", "/api/v1/session", &s, None);
    assert_eq!(me.status, 200);
    let me = me.json();
    assert_eq!(me["kind"], "user");
    assert_eq!(me["user"]["role"], "admin");
    assert_eq!(me["organization"]["role"], "national");
    assert_eq!(me["csrf_token"], s.csrf.as_str());
    // The token works once.
    let again = hub.request(
        "POST",
        "/api/v1/setup",
        &[("Content-Type", "application/json")],
        Some(
            json!({"token": token, "password": "another long one"})
                .to_string()
                .as_bytes(),
        ),
    );
    again.problem(401);
    // A second start of the same database makes no new administrator.
    drop(hub);
    let hub = TestHub::start(db, |_| {});
    assert!(hub.first_token.is_none());
    hub.login(khien_hub::FIRST_ADMIN_EMAIL, PASSWORD);
}

fn login(hub: &TestHub, email: &str, password: &str) -> Reply {
    hub.request(
        "POST",
        "/api/v1/session",
        &[("Content-Type", "application/json")],
        Some(
            json!({"email": email, "password": password})
                .to_string()
                .as_bytes(),
        ),
    )
}

fn wrong_password_and_unknown_user_look_alike(db: &TestDb) {
    let hub = TestHub::start(db, |_| {});
    admin(&hub);
    let wrong = login(&hub, khien_hub::FIRST_ADMIN_EMAIL, "not the password");
    let unknown = login(&hub, "nobody@khien.local", "not the password");
    let (a, b) = (wrong.problem(401), unknown.problem(401));
    assert_eq!(a["detail"], b["detail"]);
    assert!(wrong.header("set-cookie").is_none());
}

fn repeated_wrong_passwords_lock_the_account(db: &TestDb) {
    let hub = TestHub::start(db, |c| c.login.max_failures = 3);
    admin(&hub);
    for _ in 0..3 {
        login(&hub, khien_hub::FIRST_ADMIN_EMAIL, "guess guess guess").problem(401);
    }
    // Locked: even the right password is refused, with Retry-After.
    let r = login(&hub, khien_hub::FIRST_ADMIN_EMAIL, PASSWORD);
    let p = r.problem(429);
    assert_eq!(p["type"], "urn:khien:problem:account-locked");
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    // The lockout is in the audit log.
    let user = db
        .open()
        .login_record(khien_hub::FIRST_ADMIN_EMAIL)
        .unwrap()
        .unwrap();
    assert!(user.user.locked_until.is_some());
}

fn login_attempts_are_rate_limited_per_address(db: &TestDb) {
    let hub = TestHub::start(db, |c| c.login.attempts_per_minute = 3);
    for _ in 0..3 {
        login(&hub, "x@y.vn", "whatever password").problem(401);
    }
    let r = login(&hub, "x@y.vn", "whatever password");
    assert_eq!(r.problem(429)["type"], "urn:khien:problem:rate-limited");
    assert!(r.header("retry-after").is_some());
}

fn session_writes_need_the_csrf_token(db: &TestDb) {
    let hub = TestHub::start(db, |_| {});
    let s = admin(&hub);
    let cookie = format!("khien_session={}", s.cookie);
    let body = json!({"email": "ann@cert.vn", "display_name": "Ann", "role": "viewer"}).to_string();
    let without = hub.request(
        "POST",
        "/api/v1/users",
        &[("Cookie", &cookie), ("Content-Type", "application/json")],
        Some(body.as_bytes()),
    );
    assert_eq!(
        without.problem(403)["type"],
        "urn:khien:problem:csrf-token-required"
    );
    let forged = hub.request(
        "POST",
        "/api/v1/users",
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/json"),
            ("X-CSRF-Token", "not-the-token"),
        ],
        Some(body.as_bytes()),
    );
    forged.problem(403);
    // Reads need no token; writes with it work.
    let read = hub.request("GET", "/api/v1/users", &[("Cookie", &cookie)], None);
    assert_eq!(read.status, 200);
    let ok = hub.as_user(
        "POST",
        "/api/v1/users",
        &s,
        Some(&json!({"email": "ann@cert.vn", "display_name": "Ann", "role": "viewer"})),
    );
    assert_eq!(ok.status, 201, "{}", String::from_utf8_lossy(&ok.body));
    assert!(
        ok.json()["setup_token"]
            .as_str()
            .unwrap()
            .starts_with("khu_")
    );
    // The cookie is HttpOnly and SameSite=Strict.
    let r = login(&hub, khien_hub::FIRST_ADMIN_EMAIL, PASSWORD);
    let set = r.header("set-cookie").unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
}

fn expired_session_gets_401(db: &TestDb) {
    // Times are whole seconds: a 2 s lifetime is at least 1 s left right
    // after login, and over 3.1 s later.
    let hub = TestHub::start(db, |c| c.sessions.lifetime = Duration::from_secs(2));
    let s = admin(&hub);
    assert_eq!(hub.as_user("GET", "/api/v1/session", &s, None).status, 200);
    std::thread::sleep(Duration::from_millis(3100));
    let p = hub.as_user("GET", "/api/v1/session", &s, None).problem(401);
    assert!(p["detail"].as_str().unwrap().contains("expired"), "{p}");
}

fn logout_and_password_change_end_sessions(db: &TestDb) {
    let hub = TestHub::start(db, |_| {});
    let s = admin(&hub);
    let r = hub.as_user("DELETE", "/api/v1/session", &s, None);
    assert_eq!(r.status, 204);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    hub.as_user("GET", "/api/v1/session", &s, None).problem(401);

    let a = hub.login(khien_hub::FIRST_ADMIN_EMAIL, PASSWORD);
    let b = hub.login(khien_hub::FIRST_ADMIN_EMAIL, PASSWORD);
    let wrong = hub.as_user(
        "POST",
        "/api/v1/session/password",
        &a,
        Some(&json!({"current_password": "nope nope nope", "new_password": "a new long password"})),
    );
    assert_eq!(wrong.problem(422)["field"], "current_password");
    let r = hub.as_user(
        "POST",
        "/api/v1/session/password",
        &a,
        Some(&json!({"current_password": PASSWORD, "new_password": "a new long password"})),
    );
    assert_eq!(r.status, 204);
    hub.as_user("GET", "/api/v1/session", &b, None).problem(401);
    hub.login(khien_hub::FIRST_ADMIN_EMAIL, "a new long password");
}

fn scopes_and_roles_are_enforced(db: &TestDb) {
    let (org, _) = operator(db, "isp");
    let reader = key_in(db, org, "reader", &["read"]);
    let sensor = key_in(db, org, "s1", &["hits:write"]);
    let uploader = key_in(db, org, "cron", &["attribution:write"]);
    let viewer_token = user_with_token(db, org, "viewer@isp.vn", UserRole::Viewer);
    let analyst_token = user_with_token(db, org, "analyst@isp.vn", UserRole::Analyst);
    let hub = TestHub::start(db, |_| {});
    let viewer = hub.activate("viewer@isp.vn", &viewer_token, PASSWORD);
    let analyst = hub.activate("analyst@isp.vn", &analyst_token, PASSWORD);
    let new_user = json!({"email": "x@isp.vn", "display_name": "X", "role": "viewer"});

    assert_eq!(hub.call("GET", "/api/v1/cases", &reader, None).status, 200);
    hub.call("POST", "/api/v1/users", &reader, Some(&new_user))
        .problem(403);
    hub.call("GET", "/api/v1/cases", &sensor, None).problem(403);
    hub.call("GET", "/api/v1/subscribers", &uploader, None)
        .problem(403);
    let csv = hub.request(
        "POST",
        "/api/v1/subscribers",
        &[
            ("Authorization", &format!("Bearer {uploader}")),
            ("Content-Type", "text/csv"),
        ],
        Some(b"id,email\nHN-1,a@isp.vn\n"),
    );
    assert_eq!(csv.status, 200, "{}", String::from_utf8_lossy(&csv.body));
    hub.call("GET", "/api/v1/audit", &reader, None).problem(403);

    assert_eq!(
        hub.as_user("GET", "/api/v1/cases", &viewer, None).status,
        200
    );
    let p = hub
        .as_user(
            "POST",
            "/api/v1/cases/1/comments",
            &viewer,
            Some(&json!({"text": "x"})),
        )
        .problem(403);
    assert!(p["detail"].as_str().unwrap().contains("viewer"), "{p}");
    hub.as_user("POST", "/api/v1/users", &analyst, Some(&new_user))
        .problem(403);
    hub.as_user("GET", "/api/v1/api-keys", &analyst, None)
        .problem(403);
    // An analyst may work cases: a missing case is 404, not 403.
    hub.as_user(
        "POST",
        "/api/v1/cases/999/comments",
        &analyst,
        Some(&json!({"text": "x"})),
    )
    .problem(404);
    // Only the national CERT's admins create organisations.
    let (_, isp_admin) = operator(db, "other");
    hub.call(
        "POST",
        "/api/v1/organizations",
        &isp_admin,
        Some(&json!({"slug": "new", "name": "New", "role": "operator"})),
    )
    .problem(403);
}

fn revoked_key_through_the_api_gets_401(db: &TestDb) {
    let (_, admin_key) = operator(db, "isp");
    let hub = TestHub::start(db, |_| {});
    let r = hub.call(
        "POST",
        "/api/v1/api-keys",
        &admin_key,
        Some(&json!({"name": "s1", "scopes": ["hits:write"]})),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let created = r.json();
    let secret = created["secret"].as_str().unwrap().to_string();
    let id = created["key"]["id"].as_i64().unwrap();
    assert_eq!(
        hub.send_ndjson(&secret, "b1", &[hit("s1", "192.0.2.1", 1)])
            .status,
        200
    );
    let listed = hub.call("GET", "/api/v1/api-keys", &admin_key, None).json();
    let entry = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .cloned()
        .unwrap();
    assert!(entry["last_used_at"].is_string(), "use recorded: {entry}");
    assert!(entry.get("secret").is_none());
    let r = hub.call(
        "DELETE",
        &format!("/api/v1/api-keys/{id}"),
        &admin_key,
        None,
    );
    assert_eq!(r.status, 200);
    assert!(r.json()["revoked_at"].is_string());
    hub.send_ndjson(&secret, "b2", &[hit("s1", "192.0.2.1", 1)])
        .problem(401);
    let bad_scope = hub.call(
        "POST",
        "/api/v1/api-keys",
        &admin_key,
        Some(&json!({"name": "s2", "scopes": ["hits:write", "root"]})),
    );
    assert_eq!(bad_scope.problem(422)["field"], "scopes[1]");
    // The key's creation and revocation are in the audit log.
    let audit = hub
        .call("GET", "/api/v1/audit?action=api_key.", &admin_key, None)
        .json();
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["api_key.revoke", "api_key.create"]);
}

fn request_mistakes_get_problems_naming_the_field(db: &TestDb) {
    let (_, k) = operator(db, "isp");
    let hub = TestHub::start(db, |_| {});
    let cases = [
        // Unknown field.
        (
            json!({"email": "a@isp.vn", "display_name": "A", "role": "viewer", "admin": true}),
            422,
            "admin",
        ),
        // Wrong type.
        (
            json!({"email": 5, "display_name": "A", "role": "viewer"}),
            422,
            "email",
        ),
        // Unknown role.
        (
            json!({"email": "a@isp.vn", "display_name": "A", "role": "boss"}),
            422,
            "role",
        ),
        // Not an e-mail address.
        (
            json!({"email": "nobody", "display_name": "A", "role": "viewer"}),
            422,
            "email",
        ),
    ];
    for (body, status, field) in cases {
        let p = hub
            .call("POST", "/api/v1/users", &k, Some(&body))
            .problem(status);
        assert_eq!(p["field"], field, "{body} → {p}");
    }
    let auth = format!("Bearer {k}");
    let broken = hub.request(
        "POST",
        "/api/v1/users",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        Some(b"{\"email\": "),
    );
    assert_eq!(broken.problem(400)["line"], 1);
    let wrong_type = hub.request(
        "POST",
        "/api/v1/users",
        &[("Authorization", &auth), ("Content-Type", "text/plain")],
        Some(b"{}"),
    );
    wrong_type.problem(415);
    let q = hub
        .call("GET", "/api/v1/cases?limit=0", &k, None)
        .problem(400);
    assert_eq!(q["field"], "limit");
    let q = hub
        .call("GET", "/api/v1/cases?colour=red", &k, None)
        .problem(400);
    assert!(q["detail"].as_str().unwrap().contains("colour"), "{q}");
    let q = hub
        .call("GET", "/api/v1/cases?cursor=zzz", &k, None)
        .problem(400);
    assert_eq!(q["field"], "cursor");
    hub.call("GET", "/api/v1/cases/not-a-number", &k, None)
        .problem(404);
    hub.call("GET", "/api/v1/stats/cases?from=yesterday", &k, None)
        .problem(400);
}
