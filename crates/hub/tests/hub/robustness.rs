//! Hostile input to every endpoint the OpenAPI document lists, with an
//! admin key, a session and no credentials: whatever comes, the answer is
//! a 2xx, 3xx or 4xx — never a 5xx — and every error is a problem
//! document.

use super::*;

hub_tests!(garbage_to_every_endpoint_never_gets_a_server_error);

const BODIES: [&[u8]; 9] = [
    b"",
    b"{",
    b"[]",
    b"{}",
    b"null",
    b"{\"email\": 1e999, \"state\": \"\\u0000\", \"value\": [[[[[]]]]]}",
    b"\xff\xfe\x00garbage\x00",
    b"id,email\n\"unterminated\n",
    b"{\"subscribers\": [{\"id\": \"\"}], \"hits\": [{}], \"token\": \"khu_x\", \"password\": \"x\"}",
];

fn garbage_to_every_endpoint_never_gets_a_server_error(db: &TestDb) {
    let (org, admin) = operator(db, "isp");
    let sensor = key_in(db, org, "s1", &["hits:write"]);
    let token = user_with_token(db, org, "a@isp.vn", UserRole::Admin);
    let hub = TestHub::start(db, |_| {});
    let session = hub.activate("a@isp.vn", &token, "robust password 1");
    let doc = hub.get("/api/openapi.json", &[]).json();
    let paths = doc["paths"].as_object().unwrap();
    let mut tried = 0;
    for (path, item) in paths {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            for id in ["1", "-1", "%F0%28%8C%BC"] {
                let p = path.replace("{id}", id);
                for query in [
                    "",
                    "?limit=0",
                    "?cursor=%ff",
                    "?value=%00",
                    "?format=radius-detail&x=1",
                ] {
                    let url = format!("{p}{query}");
                    let bodies: &[&[u8]] = if method == "get" { &[b""] } else { &BODIES };
                    for body in bodies {
                        for ct in ["application/json", "text/csv", "application/x-ndjson"] {
                            let cookie = format!("khien_session={}", session.cookie);
                            let auths: [Vec<(&str, String)>; 4] = [
                                vec![("Authorization", format!("Bearer {admin}"))],
                                vec![("Authorization", format!("Bearer {sensor}"))],
                                vec![("Cookie", cookie), ("X-CSRF-Token", session.csrf.clone())],
                                vec![],
                            ];
                            for auth in &auths {
                                let mut h: Vec<(&str, &str)> =
                                    auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
                                h.push(("Content-Type", ct));
                                h.push(("Idempotency-Key", "robust"));
                                let r = hub.request(
                                    &method.to_ascii_uppercase(),
                                    &url,
                                    &h,
                                    (method != "get").then_some(*body),
                                );
                                tried += 1;
                                assert!(
                                    r.status < 500,
                                    "{method} {url} ({ct}, {} bytes): {} {}",
                                    body.len(),
                                    r.status,
                                    String::from_utf8_lossy(&r.body)
                                );
                                if r.status >= 400 {
                                    assert_eq!(
                                        r.header("content-type"),
                                        Some("application/problem+json"),
                                        "{method} {url}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(tried > 3000, "{tried} requests");
    // And the hub still answers normally (the garbage may have revoked the
    // keys it was sent with: DELETE /api/v1/api-keys/1 is a valid request).
    assert_eq!(hub.get("/healthz", &[]).status, 200);
    let fresh = key_in(db, org, "after", &["read"]);
    assert_eq!(hub.call("GET", "/api/v1/cases", &fresh, None).status, 200);
}
