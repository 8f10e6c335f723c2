//! Public lookups: the caller's own address, and values against
//! TLP:CLEAR indicators; rate limits and caching.

use super::*;

hub_tests!(
    self_lookup_answers_for_the_callers_address_only,
    indicator_lookup_uses_clear_indicators_only,
    lookups_are_rate_limited_per_address,
);

fn import(db: &TestDb, value: &str, tlp: Tlp, family: Option<&str>) {
    let seen = Utc::now();
    let record = IndicatorRecord {
        observable: Observable::detect(value).unwrap(),
        attributes: SourceAttributes {
            source: "test".into(),
            tlp,
            confidence: Confidence::new(80).unwrap(),
            family: family.map(|f| khien_model::Family::new(f).unwrap()),
            threat_type: ThreatType::C2,
            reference: None,
            first_seen: seen,
            last_seen: seen,
            expires_at: None,
        },
    };
    let mut store = db.open();
    let mut imp = store.import(false).unwrap();
    imp.add_batch(&[record], &[None]).unwrap();
    imp.commit().unwrap();
}

fn self_lookup_answers_for_the_callers_address_only(db: &TestDb) {
    let sensor = key(db, "s1", &["hits:write"]);
    let hub = TestHub::start(db, |_| {});
    let clean = hub.get("/api/v1/lookup/self", &[]);
    assert_eq!(clean.status, 200);
    let c = clean.json();
    assert_eq!(
        (c["address"].as_str(), c["infected"].as_bool()),
        (Some("127.0.0.1"), Some(false))
    );
    assert!(c["message"].as_str().unwrap().contains("127.0.0.1"));
    // Hits from this client (127.0.0.1) and from someone else.
    let now = Utc::now() - chrono::Duration::minutes(5);
    let mut mine = hit("s1", "127.0.0.1", 3);
    let mut theirs = hit("s1", "192.0.2.99", 3);
    for h in [&mut mine, &mut theirs] {
        h.bucket = khien_model::bucket_start(now, 3600);
        h.first_seen = now;
        h.last_seen = now;
    }
    theirs.family = Some("emotet".into());
    assert_eq!(hub.send_ndjson(&sensor, "b1", &[mine, theirs]).status, 200);
    let r = hub.get("/api/v1/lookup/self?lang=en", &[]);
    let a = r.json();
    assert_eq!(a["infected"], true, "{a}");
    let families: Vec<&str> = a["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["family"].as_str().unwrap())
        .collect();
    assert_eq!(families, vec!["mirai"], "only this address's hits");
    assert!(
        a["findings"][0]["guidance"]["steps"][0]
            .as_str()
            .unwrap()
            .contains("router")
    );
    assert_eq!(a["language"], "en");
    let vi = hub
        .get(
            "/api/v1/lookup/self",
            &[("Accept-Language", "vi-VN,vi;q=0.9")],
        )
        .json();
    assert!(vi["message"].as_str().unwrap().contains("mã độc"), "{vi}");
    // There is no way to ask about another address.
    let p = hub
        .get("/api/v1/lookup/self?address=192.0.2.99", &[])
        .problem(400);
    assert!(p["detail"].as_str().unwrap().contains("address"), "{p}");
    // A forwarded address is believed only from a trusted proxy.
    let spoof = hub
        .get("/api/v1/lookup/self", &[("X-Forwarded-For", "192.0.2.99")])
        .json();
    assert_eq!(spoof["address"], "127.0.0.1");
}

fn indicator_lookup_uses_clear_indicators_only(db: &TestDb) {
    import(db, "phish-bank.example", Tlp::Clear, Some("phishing-kit"));
    import(db, "secret-c2.example", Tlp::Amber, Some("mirai"));
    import(db, "0912 345 678", Tlp::Clear, None);
    let hub = TestHub::start(db, |c| c.snapshot_refresh_seconds = 1);
    let ask = |v: &str| hub.get(&format!("/api/v1/lookup/indicator?value={v}&lang=en"), &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        let r = ask("phish-bank.example");
        if r.status == 200 || Instant::now() > deadline {
            break r;
        }
        r.problem(503);
        std::thread::sleep(Duration::from_millis(50));
    };
    let a = first.json();
    assert_eq!(
        (a["listed"].as_bool(), a["kind"].as_str()),
        (Some(true), Some("domain")),
        "{a}"
    );
    assert_eq!(a["matches"][0]["family"], "phishing-kit");
    assert_eq!(first.header("x-cache"), Some("miss"));
    assert_eq!(ask("phish-bank.example").header("x-cache"), Some("hit"));
    // A host under a listed domain, a URL on it, the defanged form.
    for v in [
        "login.phish-bank.example",
        "hxxps://login.phish-bank[.]example/x?y=1",
        "LOGIN.Phish-Bank.example.",
    ] {
        let r = ask(&v
            .replace('?', "%3F")
            .replace('=', "%3D")
            .replace('&', "%26"));
        assert_eq!(
            r.json()["listed"],
            true,
            "{v}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    // Amber is never answered publicly.
    let amber = ask("secret-c2.example").json();
    assert_eq!(amber["listed"], false, "{amber}");
    let phone = ask("%2B84912345678").json();
    assert_eq!(
        (phone["kind"].as_str(), phone["listed"].as_bool()),
        (Some("phone"), Some(true)),
        "{phone}"
    );
    let p = ask("not%20a%20thing%20at%20all").problem(422);
    assert_eq!(p["field"], "value");
    hub.get("/api/v1/lookup/indicator", &[]).problem(400);
}

fn lookups_are_rate_limited_per_address(db: &TestDb) {
    let hub = TestHub::start(db, |c| {
        c.lookups.requests_per_minute = 2;
        c.lookups.burst = 2;
    });
    assert_eq!(hub.get("/api/v1/lookup/self", &[]).status, 200);
    assert_eq!(hub.get("/api/v1/lookup/self", &[]).status, 200);
    let r = hub.get("/api/v1/lookup/self", &[]);
    r.problem(429);
    assert!(
        r.header("retry-after")
            .is_some_and(|v| v.parse::<u64>().unwrap() >= 1)
    );
    hub.get("/api/v1/lookup/indicator?value=x.example", &[])
        .problem(429);
    let m = String::from_utf8(hub.get("/metrics", &[]).body).unwrap();
    assert!(
        m.contains("hub_lookups_total{result=\"rate_limited\"} 2"),
        "{m}"
    );
}
