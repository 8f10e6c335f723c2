//! Attribution from real file formats (FreeRADIUS detail, dhcpd.leases,
//! CGNAT port blocks) written by the tests, hits becoming cases, the case
//! life cycle over HTTP, statistics, and the bad inputs of uploads and
//! ingest.

use chrono::{Datelike, Timelike};

use super::*;

hub_tests!(
    radius_sessions_attribute_hits_with_overlaps_reuse_and_clock_edges,
    dhcp_leases_and_cgnat_blocks_attribute_hits,
    hits_before_their_attribution_are_attributed_by_the_upload,
    case_life_cycle_over_http_moves_statistics,
    quiet_cases_resolve_by_themselves,
    bad_uploads_are_counted_or_refused_never_half_applied,
    hits_from_the_future_are_refused_one_by_one,
);

/// The start of the hour six hours ago: recent enough that no case
/// resolves by itself during a test.
fn base() -> Timestamp {
    let t = Utc::now() - chrono::Duration::hours(6);
    t - chrono::Duration::seconds(i64::from(t.minute() * 60 + t.second()))
        - chrono::Duration::nanoseconds(i64::from(t.nanosecond()))
}

fn h(minutes: i64) -> chrono::Duration {
    chrono::Duration::minutes(minutes)
}

/// A hit of `count` from `client` at `at`.
fn hit_at(sensor: &str, client: &str, port: Option<u16>, at: Timestamp, count: u64) -> Hit {
    Hit {
        bucket: khien_model::bucket_start(at, 3600),
        client: client.parse().unwrap(),
        client_port: port,
        indicator: "c2.example".into(),
        kind: ObservableKind::Domain,
        indicator_id: None,
        family: Some("mirai".into()),
        threat_type: ThreatType::C2,
        count,
        first_seen: at,
        last_seen: at,
        sensor: sensor.into(),
        evidence: None,
    }
}

/// A FreeRADIUS `detail` record.
fn detail(
    status: &str,
    user: &str,
    session: &str,
    attrs: &[(&str, String)],
    at: Timestamp,
) -> String {
    let local = at + chrono::Duration::hours(7);
    let mut r = format!(
        "{}\n\tAcct-Status-Type = {status}\n\tUser-Name = \"{user}\"\n\tAcct-Session-Id = \"{session}\"\n\tNAS-IP-Address = 10.255.0.1\n",
        local.format("%a %b %e %H:%M:%S %Y")
    );
    for (k, v) in attrs {
        r.push_str(&format!("\t{k} = {v}\n"));
    }
    r.push_str(&format!(
        "\tEvent-Timestamp = {}\n\tTimestamp = {}\n\n",
        at.timestamp(),
        at.timestamp()
    ));
    r
}

fn upload(hub: &TestHub, key: &str, format: &str, body: &[u8], extra: &[(&str, &str)]) -> Reply {
    let auth = format!("Bearer {key}");
    let mut headers = vec![
        ("Authorization", auth.as_str()),
        ("Content-Type", "text/plain"),
    ];
    headers.extend_from_slice(extra);
    hub.request(
        "POST",
        &format!("/api/v1/attribution?format={format}"),
        &headers,
        Some(body),
    )
}

/// Hit counts of each subscriber's case, by pseudonym.
fn case_counts(hub: &TestHub, key: &str) -> std::collections::BTreeMap<String, u64> {
    let cases = hub.call("GET", "/api/v1/cases", key, None).json();
    cases["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["subscriber"].as_str().unwrap().to_string(),
                c["hit_count"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn radius_sessions_attribute_hits_with_overlaps_reuse_and_clock_edges(db: &TestDb) {
    let (org, admin) = operator(db, "isp");
    let sensor = key_in(db, org, "s1", &["hits:write"]);
    let hub = TestHub::start(db, |_| {});
    let t = base();
    let ip = |a: &str| a.to_string();
    let file = [
        detail(
            "Start",
            "alice",
            "S1",
            &[
                ("Framed-IP-Address", ip("100.64.1.2")),
                ("Delegated-IPv6-Prefix", ip("2001:db8:100::/56")),
            ],
            t,
        ),
        detail(
            "Start",
            "carol",
            "S3",
            &[("Framed-IP-Address", ip("100.64.1.3"))],
            t,
        ),
        // A record without an address: counted and named, never fatal.
        detail(
            "Start",
            "nobody",
            "S9",
            &[("Calling-Station-Id", "\"00-11-22-33-44-55\"".into())],
            t,
        ),
        // dave's session overlaps carol's, whose Stop was lost.
        detail(
            "Start",
            "dave",
            "S4",
            &[("Framed-IP-Address", ip("100.64.1.3"))],
            t + h(60),
        ),
        detail(
            "Stop",
            "alice",
            "S1",
            &[
                ("Framed-IP-Address", ip("100.64.1.2")),
                ("Acct-Session-Time", "7200".into()),
            ],
            t + h(120),
        ),
        // The same address reused by another subscriber an hour later.
        detail(
            "Start",
            "bob",
            "S2",
            &[("Framed-IP-Address", ip("100.64.1.2"))],
            t + h(180),
        ),
    ]
    .concat();
    let r = upload(&hub, &admin, "radius-detail", file.as_bytes(), &[]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let out = r.json();
    assert_eq!(out["rejected"], 1, "{out}");
    let rejection = &out["rejections"][0];
    assert!(
        rejection["reason"]
            .as_str()
            .unwrap()
            .contains("Framed-IP-Address"),
        "{out}"
    );
    assert_eq!(
        rejection["line"], 20,
        "the date line of the third record: {out}"
    );
    // alice's Start and Stop land on one row per address.
    assert_eq!(out["assignments_created"], 5, "{out}");

    let hits = [
        hit_at("s1", "100.64.1.2", None, t + h(30), 1),
        hit_at("s1", "2001:db8:100:5::9", None, t + h(60), 10),
        // At the Stop: the interval has ended.
        hit_at("s1", "100.64.1.2", None, t + h(120), 7),
        // Between alice and bob: nobody.
        hit_at("s1", "100.64.1.2", None, t + h(150), 7),
        hit_at("s1", "100.64.1.2", None, t + h(180), 100),
        hit_at("s1", "100.64.1.3", None, t + h(30), 1000),
        hit_at("s1", "100.64.1.3", None, t + h(90), 10000),
    ];
    let r = hub.send_ndjson(&sensor, "b1", &hits);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["attributed"], 5);
    let p = |u: &str| secrets().pseudonym(org, u);
    let expected: std::collections::BTreeMap<String, u64> = [
        (p("alice"), 11),
        (p("bob"), 100),
        (p("carol"), 1000),
        (p("dave"), 10000),
    ]
    .into_iter()
    .collect();
    assert_eq!(case_counts(&hub, &admin), expected);
}

/// `W YYYY/MM/DD HH:MM:SS` as dhcpd writes it (UTC).
fn dhcpd_time(t: Timestamp) -> String {
    format!(
        "{} {}",
        t.weekday().num_days_from_sunday(),
        t.format("%Y/%m/%d %H:%M:%S")
    )
}

fn lease(addr: &str, mac: &str, start: Timestamp, end: Timestamp) -> String {
    format!(
        "lease {addr} {{\n  starts {};\n  ends {};\n  cltt {};\n  binding state active;\n  next binding state free;\n  hardware ethernet {mac};\n  client-hostname \"pc;}}1\";\n}}\n",
        dhcpd_time(start),
        dhcpd_time(end),
        dhcpd_time(start)
    )
}

fn dhcp_leases_and_cgnat_blocks_attribute_hits(db: &TestDb) {
    let (org, admin) = operator(db, "isp");
    let sensor = key_in(db, org, "s1", &["hits:write"]);
    let hub = TestHub::start(db, |_| {});
    let t = base();
    let leases = format!(
        "# The format of this file is documented in the dhcpd.leases(5) manual page.\n\
         authoring-byte-order little-endian;\n{}{}",
        lease("10.10.0.21", "00:1a:2b:3c:4d:5e", t, t + h(720)),
        // The same address to another device after the first lease ended.
        lease("10.10.0.21", "00:1a:2b:3c:4d:99", t + h(720), t + h(1440)),
    );
    let r = upload(&hub, &admin, "dhcpd-leases", leases.as_bytes(), &[]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["assignments_created"], 2);
    // RADIUS for the CGNAT inside address, then the port blocks.
    let radius = format!(
        "time,status,user,address,session\n{},Start,carol,100.64.1.3,s1\n",
        t.to_rfc3339()
    );
    assert_eq!(
        upload(&hub, &admin, "radius-csv", radius.as_bytes(), &[]).status,
        200
    );
    let cgnat = format!(
        "time,event,public_ip,port_start,port_end,inside_ip,subscriber\n\
         {t0},alloc,203.0.113.5,2048,2559,100.64.1.3,\n\
         {t0},alloc,203.0.113.5,2560,3071,,erin\n",
        t0 = t.to_rfc3339()
    );
    let r = upload(&hub, &admin, "cgnat-csv", cgnat.as_bytes(), &[]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let hits = [
        hit_at("s1", "10.10.0.21", None, t + h(60), 1),
        hit_at("s1", "203.0.113.5", Some(2100), t + h(30), 10),
        hit_at("s1", "203.0.113.5", Some(2600), t + h(30), 100),
        // No block holds this port; without a port two blocks could be meant.
        hit_at("s1", "203.0.113.5", Some(4000), t + h(30), 1000),
        hit_at("s1", "203.0.113.5", None, t + h(40), 1000),
    ];
    let r = hub.send_ndjson(&sensor, "b1", &hits);
    assert_eq!(
        r.json()["attributed"],
        3,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let p = |u: &str| secrets().pseudonym(org, u);
    let expected: std::collections::BTreeMap<String, u64> = [
        (p("00:1a:2b:3c:4d:5e"), 1),
        (p("carol"), 10),
        (p("erin"), 100),
    ]
    .into_iter()
    .collect();
    assert_eq!(case_counts(&hub, &admin), expected);
    // Uploading the same file again changes nothing.
    let again = upload(&hub, &admin, "cgnat-csv", cgnat.as_bytes(), &[]).json();
    assert_eq!(
        (
            again["assignments_created"].as_u64(),
            again["assignments_updated"].as_u64()
        ),
        (Some(0), Some(2))
    );
}

fn hits_before_their_attribution_are_attributed_by_the_upload(db: &TestDb) {
    let (org, admin) = operator(db, "isp");
    let sensor = key_in(db, org, "s1", &["hits:write"]);
    let hub = TestHub::start(db, |_| {});
    let t = base();
    let r = hub.send_ndjson(
        &sensor,
        "b1",
        &[hit_at("s1", "100.64.9.9", None, t + h(10), 3)],
    );
    assert_eq!(r.json()["attributed"], 0);
    assert!(case_counts(&hub, &admin).is_empty());
    let radius = format!(
        "time,status,user,address,session\n{},Start,late,100.64.9.9,s1\n",
        t.to_rfc3339()
    );
    let out = upload(&hub, &admin, "radius-csv", radius.as_bytes(), &[]).json();
    assert_eq!(
        (
            out["hits_attributed"].as_u64(),
            out["cases_opened"].as_u64()
        ),
        (Some(1), Some(1)),
        "{out}"
    );
    assert_eq!(
        case_counts(&hub, &admin),
        [(secrets().pseudonym(org, "late"), 3)]
            .into_iter()
            .collect()
    );
}

fn case_life_cycle_over_http_moves_statistics(db: &TestDb) {
    let (org, admin) = operator(db, "isp");
    let sensor = key_in(db, org, "s1", &["hits:write"]);
    let staff_token = user_with_token(db, org, "staff@isp.vn", UserRole::Analyst);
    let hub = TestHub::start(db, |_| {});
    let staff = hub.activate("staff@isp.vn", &staff_token, "staff password 1");
    let staff_id = hub.as_user("GET", "/api/v1/session", &staff, None).json()["user"]["id"].clone();
    let t = base();
    let radius = format!(
        "time,status,user,address,session\n{},Start,u1,10.1.1.1,s1\n",
        t.to_rfc3339()
    );
    upload(&hub, &admin, "radius-csv", radius.as_bytes(), &[]);
    hub.send_ndjson(
        &sensor,
        "b1",
        &[hit_at("s1", "10.1.1.1", None, t + h(5), 2)],
    );
    let list = hub
        .call("GET", "/api/v1/cases?state=open", &admin, None)
        .json();
    let id = list["items"][0]["id"].as_i64().unwrap();
    let path = format!("/api/v1/cases/{id}");
    let stats = |hub: &TestHub| {
        hub.call("GET", "/api/v1/stats/cases", &admin, None).json()["totals"][0].clone()
    };
    let s = stats(&hub);
    assert_eq!(
        (
            s["open"].as_u64(),
            s["new"].as_u64(),
            s["resolved"].as_u64()
        ),
        (Some(1), Some(1), Some(0))
    );

    let step = |state: &str| {
        hub.as_user(
            "POST",
            &format!("{path}/transition"),
            &staff,
            Some(&json!({"state": state, "note": "gọi điện"})),
        )
    };
    assert_eq!(step("notified").json()["state"], "notified");
    assert_eq!(step("acknowledged").json()["state"], "acknowledged");
    let p = step("notified").problem(409);
    assert!(
        p["detail"].as_str().unwrap().contains("acknowledged"),
        "{p}"
    );
    assert_eq!(
        hub.as_user(
            "POST",
            &format!("{path}/comments"),
            &staff,
            Some(&json!({"text": "Khách hàng đã cài lại modem"}))
        )
        .status,
        201
    );
    let assigned = hub
        .as_user(
            "POST",
            &format!("{path}/assignee"),
            &staff,
            Some(&json!({"user_id": staff_id})),
        )
        .json();
    assert_eq!(assigned["assignee_id"], staff_id);
    let detail = hub.as_user("GET", &path, &staff, None).json();
    let kinds: Vec<&str> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec!["opened", "state", "state", "comment", "assigned"]
    );
    assert_eq!(detail["daily_hits"][0]["count"], 2);
    assert!(detail["daily_hits"][0]["day"].as_str().unwrap().len() == 10);

    assert_eq!(step("resolved").json()["state"], "resolved");
    let s = stats(&hub);
    assert_eq!(
        (s["open"].as_u64(), s["resolved"].as_u64()),
        (Some(0), Some(1))
    );
    assert!(s["median_remediation_seconds"].as_i64().unwrap() > 0);
    // Hits after the resolution: reinfected.
    let now = Utc::now();
    let r = hub.send_ndjson(&sensor, "b2", &[hit_at("s1", "10.1.1.1", None, now, 1)]);
    assert_eq!(r.json()["attributed"], 1);
    let c = hub.call("GET", &path, &admin, None).json();
    assert_eq!(
        (c["state"].as_str(), c["reinfections"].as_u64()),
        (Some("reinfected"), Some(1))
    );
    let s = stats(&hub);
    assert_eq!(
        (s["open"].as_u64(), s["reinfected"].as_u64()),
        (Some(1), Some(1))
    );
    // The same numbers as CSV.
    let csv = hub.call("GET", "/api/v1/stats/cases?format=csv", &admin, None);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let text = String::from_utf8(csv.body).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("org_id,family,open,new,resolved,reinfected,median_remediation_seconds")
    );
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with(&format!("{org},mirai,1,1,1,1,"))
    );
    let daily = hub.call(
        "GET",
        "/api/v1/stats/cases?format=csv&series=daily",
        &admin,
        None,
    );
    assert!(
        String::from_utf8(daily.body)
            .unwrap()
            .starts_with("day,org_id,family,new,resolved,reinfected\n")
    );
}

fn quiet_cases_resolve_by_themselves(db: &TestDb) {
    let (org, admin) = operator(db, "isp");
    let sensor = key_in(db, org, "s1", &["hits:write"]);
    let hub = TestHub::start(db, |c| {
        c.cases.resolve_after = Duration::from_secs(3600);
        c.cases.job_interval = Duration::from_millis(200);
    });
    let t = base();
    let radius = format!(
        "time,status,user,address,session\n{t0},Start,old,10.1.1.1,s1\n{t0},Start,new,10.1.1.2,s2\n",
        t0 = t.to_rfc3339()
    );
    upload(&hub, &admin, "radius-csv", radius.as_bytes(), &[]);
    hub.send_ndjson(
        &sensor,
        "b1",
        &[
            hit_at(
                "s1",
                "10.1.1.1",
                None,
                Utc::now() - chrono::Duration::hours(2),
                1,
            ),
            hit_at(
                "s1",
                "10.1.1.2",
                None,
                Utc::now() - chrono::Duration::minutes(10),
                1,
            ),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let resolved = loop {
        let r = hub
            .call("GET", "/api/v1/cases?state=resolved", &admin, None)
            .json();
        if !r["items"].as_array().unwrap().is_empty() || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let items = resolved["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{resolved}");
    assert_eq!(items[0]["subscriber"], secrets().pseudonym(org, "old"));
    let still = hub
        .call("GET", "/api/v1/cases?state=open,notified", &admin, None)
        .json();
    assert_eq!(
        still["items"][0]["subscriber"],
        secrets().pseudonym(org, "new")
    );
    let detail = hub
        .call(
            "GET",
            &format!("/api/v1/cases/{}", items[0]["id"]),
            &admin,
            None,
        )
        .json();
    let last = detail["timeline"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (last["actor"].as_str(), last["to_state"].as_str()),
        (Some("system"), Some("resolved"))
    );
}

fn bad_uploads_are_counted_or_refused_never_half_applied(db: &TestDb) {
    let (org, admin) = operator(db, "isp");
    let hub = TestHub::start(db, |c| c.max_body_bytes = 64 * 1024);
    let t = base();
    // A leases file cut mid-record keeps the complete leases before the cut.
    let whole = lease("10.10.0.21", "00:1a:2b:3c:4d:5e", t, t + h(60));
    let cut = format!(
        "{whole}lease 10.10.0.22 {{\n  starts {};\n  ends 2 20",
        dhcpd_time(t)
    );
    let out = upload(&hub, &admin, "dhcpd-leases", cut.as_bytes(), &[]).json();
    assert_eq!(
        (
            out["assignments_created"].as_u64(),
            out["rejected"].as_u64()
        ),
        (Some(1), Some(1)),
        "{out}"
    );
    assert_eq!(out["rejections"][0]["line"], 10);
    // Gzip is accepted; the format is recognised without ?format=.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(whole.as_bytes()).unwrap();
    let auth = format!("Bearer {admin}");
    let r = hub.request(
        "POST",
        "/api/v1/attribution",
        &[("Authorization", &auth), ("Content-Encoding", "gzip")],
        Some(&enc.finish().unwrap()),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["format"], "dhcpd-leases");
    let r = upload(&hub, &admin, "radius-xml", b"x", &[]);
    assert_eq!(r.problem(422)["field"], "format");
    let r = hub.request(
        "POST",
        "/api/v1/attribution",
        &[("Authorization", &auth)],
        Some(b"hello world\n"),
    );
    assert_eq!(r.problem(422)["field"], "format");
    let big = vec![b'#'; 100 * 1024];
    upload(&hub, &admin, "radius-detail", &big, &[]).problem(413);
    // A CSV missing a required column is refused as a whole.
    let r = upload(
        &hub,
        &admin,
        "radius-csv",
        b"time,status,user\n2026-11-24T00:00:00Z,Start,x\n",
        &[],
    );
    assert!(
        r.problem(422)["detail"]
            .as_str()
            .unwrap()
            .contains("address")
    );
    // Subscriber uploads are all or nothing, naming line and field.
    let csv = "id,email,phone\nHN-1,a@isp.vn,0912345678\nHN-2,broken,0912345679\n";
    let r = hub.request(
        "POST",
        "/api/v1/subscribers",
        &[("Authorization", &auth), ("Content-Type", "text/csv")],
        Some(csv.as_bytes()),
    );
    let p = r.problem(422);
    assert_eq!(
        (p["line"].as_u64(), p["field"].as_str()),
        (Some(3), Some("email")),
        "{p}"
    );
    assert!(
        db.open()
            .subscribers(
                org,
                khien_store::Page {
                    after: None,
                    limit: 10
                }
            )
            .unwrap()
            .iter()
            .all(|s| s.external_id != "HN-1"),
        "nothing stored"
    );
    let r = hub.request(
        "POST",
        "/api/v1/subscribers",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        Some(
            json!({"subscribers": [{"id": "x", "phone": "call me"}]})
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(r.problem(422)["field"], "subscribers[0].phone");
    let r = hub.request(
        "POST",
        "/api/v1/subscribers",
        &[("Authorization", &auth), ("Content-Type", "text/plain")],
        Some(b"id\nx\n"),
    );
    r.problem(415);
}

fn hits_from_the_future_are_refused_one_by_one(db: &TestDb) {
    let (org, admin) = operator(db, "isp");
    let sensor = key_in(db, org, "s1", &["hits:write"]);
    let hub = TestHub::start(db, |_| {});
    let radius = format!(
        "time,status,user,address,session\n{},Start,u1,10.1.1.1,s1\n",
        base().to_rfc3339()
    );
    upload(&hub, &admin, "radius-csv", radius.as_bytes(), &[]);
    let now = Utc::now();
    let future = hit_at("s1", "10.1.1.1", None, now + chrono::Duration::days(2), 5);
    let r = hub.send_ndjson(
        &sensor,
        "b1",
        &[hit_at("s1", "10.1.1.1", None, now, 1), future],
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let out = r.json();
    assert_eq!(out["stored"], 1, "only the hit of the present");
    let rejected = out["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(
        (rejected[0]["line"].as_u64(), rejected[0]["field"].as_str()),
        (Some(2), Some("bucket"))
    );
    assert_eq!(
        case_counts(&hub, &admin)
            .values()
            .copied()
            .collect::<Vec<_>>(),
        vec![1]
    );
    let metrics = String::from_utf8(hub.get("/metrics", &[]).body).unwrap();
    assert!(
        metrics.contains("hub_hits_rejected_total{reason=\"future\"} 1"),
        "{metrics}"
    );
}
