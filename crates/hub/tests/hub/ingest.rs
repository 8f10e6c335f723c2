//! Hit ingest and snapshot distribution: batches, idempotency, limits,
//! keys and scopes, health and metrics.

use super::*;

hub_tests!(
    ndjson_and_json_batches_are_stored,
    gzip_body_is_accepted,
    retried_batch_is_stored_once,
    concurrent_submissions_of_one_batch_apply_once,
    missing_wrong_and_revoked_keys_get_401,
    wrong_scope_gets_403,
    malformed_line_gets_400_naming_line_and_field_and_stores_nothing,
    json_body_error_names_the_index,
    sensor_mismatch_gets_422,
    gzip_bomb_and_oversized_body_get_413,
    batch_id_missing_or_too_long_gets_400,
    unsupported_content_type_gets_415,
    snapshot_etag_304_and_rebuild_after_import,
    healthz_and_metrics,
);

fn ndjson_and_json_batches_are_stored(db: &TestDb) {
    let k = key(db, "s1", &["hits:write"]);
    let hub = TestHub::start(db, |_| {});
    let r = hub.send_ndjson(
        &k,
        "b-1",
        &[hit("s1", "192.0.2.1", 2), hit("s1", "192.0.2.2", 3)],
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json(),
        json!({"batch_id": "b-1", "stored": 2, "duplicate": false, "attributed": 0, "rejected": []})
    );
    let body = json!({"batch_id": "b-2", "hits": [hit("s1", "192.0.2.1", 5)]});
    let auth = format!("Bearer {k}");
    let r = hub.post(
        "/api/v1/hits",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json; charset=utf-8"),
        ],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["batch_id"], "b-2");
    // The same key across batches adds up.
    assert_eq!(totals(db), (2, 10));
    let stored = db
        .open()
        .hits(&khien_store::HitFilter {
            client: Some("192.0.2.1".parse().expect("ip")),
            ..Default::default()
        })
        .expect("hits");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].count, 7);
}

fn gzip_body_is_accepted(db: &TestDb) {
    let k = key(db, "s1", &["hits:write"]);
    let hub = TestHub::start(db, |_| {});
    let auth = format!("Bearer {k}");
    let body = gzip(ndjson(&[hit("s1", "192.0.2.1", 4)]).as_bytes());
    let r = hub.post(
        "/api/v1/hits",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/x-ndjson"),
            ("Content-Encoding", "gzip"),
            ("Idempotency-Key", "gz-1"),
        ],
        &body,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(totals(db), (1, 4));
}

fn retried_batch_is_stored_once(db: &TestDb) {
    let k = key(db, "s1", &["hits:write"]);
    let hub = TestHub::start(db, |_| {});
    let batch = [hit("s1", "192.0.2.1", 2), hit("s1", "192.0.2.2", 3)];
    assert_eq!(hub.send_ndjson(&k, "retry-me", &batch).status, 200);
    let again = hub.send_ndjson(&k, "retry-me", &batch);
    assert_eq!(again.status, 200);
    assert_eq!(
        again.json(),
        json!({"batch_id": "retry-me", "stored": 2, "duplicate": true, "attributed": 0, "rejected": []})
    );
    assert_eq!(totals(db), (2, 5));
}

fn concurrent_submissions_of_one_batch_apply_once(db: &TestDb) {
    let k = key(db, "s1", &["hits:write"]);
    let hub = TestHub::start(db, |_| {});
    let batch: Vec<Hit> = (0..50)
        .map(|i| hit("s1", &format!("198.51.100.{i}"), 1))
        .collect();
    let replies: Vec<Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| hub.send_ndjson(&k, "racing", &batch).json()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let fresh = replies.iter().filter(|r| r["duplicate"] == false).count();
    assert_eq!(fresh, 1, "{replies:?}");
    assert!(replies.iter().all(|r| r["stored"] == 50), "{replies:?}");
    assert_eq!(totals(db), (50, 50));
}

fn missing_wrong_and_revoked_keys_get_401(db: &TestDb) {
    let k = key(db, "s1", &["hits:write"]);
    let hub = TestHub::start(db, |_| {});
    let body = ndjson(&[hit("s1", "192.0.2.1", 1)]);
    let ct = ("Content-Type", "application/x-ndjson");
    let id = ("Idempotency-Key", "b");
    let r = hub.post("/api/v1/hits", &[ct, id], body.as_bytes());
    r.problem(401);
    assert!(
        r.header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer"))
    );
    let mut wrong = k.clone();
    wrong.replace_range(20..21, if &k[20..21] == "A" { "B" } else { "A" });
    for bad in [
        format!("Bearer {wrong}"),
        "Bearer nonsense".to_string(),
        format!("Basic {k}"),
    ] {
        let r = hub.post(
            "/api/v1/hits",
            &[("Authorization", &bad), ct, id],
            body.as_bytes(),
        );
        r.problem(401);
    }
    db.open()
        .revoke_api_key(ApiKeyRef::Name("s1"), None)
        .expect("revoke");
    let r = hub.send_ndjson(&k, "b", &[hit("s1", "192.0.2.1", 1)]);
    r.problem(401);
    let r = hub.get("/api/v1/snapshots/latest", &[]);
    r.problem(401);
    assert_eq!(totals(db), (0, 0));
}

fn wrong_scope_gets_403(db: &TestDb) {
    let reader = key(db, "s1", &["read"]);
    let hub = TestHub::start(db, |_| {});
    let r = hub.send_ndjson(&reader, "b", &[hit("s1", "192.0.2.1", 1)]);
    let p = r.problem(403);
    assert!(
        p["detail"]
            .as_str()
            .is_some_and(|d| d.contains("hits:write"))
    );
    assert_eq!(totals(db), (0, 0));
}

fn malformed_line_gets_400_naming_line_and_field_and_stores_nothing(db: &TestDb) {
    let k = key(db, "s1", &["hits:write"]);
    let hub = TestHub::start(db, |_| {});
    let mut bad: Value = serde_json::to_value(hit("s1", "192.0.2.3", 1)).expect("value");
    bad["count"] = json!("lots");
    let body = format!(
        "{}{}\n{bad}\n",
        ndjson(&[hit("s1", "192.0.2.1", 1)]),
        serde_json::to_string(&hit("s1", "192.0.2.2", 1)).expect("json")
    );
    let auth = format!("Bearer {k}");
    let r = hub.post(
        "/api/v1/hits",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/x-ndjson"),
            ("Idempotency-Key", "bad-1"),
        ],
        body.as_bytes(),
    );
    let p = r.problem(400);
    assert_eq!(p["line"], 3, "{p}");
    assert_eq!(p["field"], "count", "{p}");
    assert_eq!(p["batch_id"], "bad-1", "{p}");
    assert_eq!(totals(db), (0, 0));
    // The id was not used up: the corrected batch goes through.
    let r = hub.send_ndjson(&k, "bad-1", &[hit("s1", "192.0.2.1", 1)]);
    assert_eq!(r.json()["duplicate"], false);
    // A line that is no JSON at all: the line, no field.
    let r = hub.post(
        "/api/v1/hits",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/x-ndjson"),
            ("Idempotency-Key", "bad-2"),
        ],
        b"{\"bucket\": oops}\n",
    );
    let p = r.problem(400);
    assert_eq!(p["line"], 1);
    assert!(p.get("field").is_none(), "{p}");
}

fn json_body_error_names_the_index(db: &TestDb) {
    let k = key(db, "s1", &["hits:write"]);
    let hub = TestHub::start(db, |_| {});
    let mut bad = serde_json::to_value(hit("s1", "192.0.2.3", 1)).expect("value");
    bad["client"] = json!("not-an-address");
    let body = json!({"batch_id": "j", "hits": [hit("s1", "192.0.2.1", 1), bad]});
    let auth = format!("Bearer {k}");
    let r = hub.post(
        "/api/v1/hits",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    );
    let p = r.problem(400);
    assert_eq!(
        (p["index"].clone(), p["field"].clone()),
        (json!(1), json!("client"))
    );
    assert_eq!(totals(db), (0, 0));
}

fn sensor_mismatch_gets_422(db: &TestDb) {
    let k = key(db, "s1", &["hits:write"]);
    let hub = TestHub::start(db, |_| {});
    let r = hub.send_ndjson(
        &k,
        "b",
        &[
            hit("s1", "192.0.2.1", 1),
            hit("someone-else", "192.0.2.2", 1),
        ],
    );
    let p = r.problem(422);
    assert_eq!(
        (p["line"].clone(), p["field"].clone()),
        (json!(2), json!("sensor"))
    );
    assert_eq!(totals(db), (0, 0));
}

fn gzip_bomb_and_oversized_body_get_413(db: &TestDb) {
    let k = key(db, "s1", &["hits:write"]);
    let hub = TestHub::start(db, |c| c.max_body_bytes = 64 * 1024);
    let auth = format!("Bearer {k}");
    // 64 MiB of spaces compress to about 64 KiB... of which only the first
    // bytes are ever inflated.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..64 {
        enc.write_all(&chunk).expect("gzip");
    }
    let bomb = enc.finish().expect("gzip");
    assert!(bomb.len() < 64 * 1024, "the bomb itself is under the limit");
    let started = Instant::now();
    let r = hub.post(
        "/api/v1/hits",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/x-ndjson"),
            ("Content-Encoding", "gzip"),
            ("Idempotency-Key", "bomb"),
        ],
        &bomb,
    );
    r.problem(413);
    assert!(started.elapsed() < Duration::from_secs(5));
    // Half as much again as the limit: refused from its Content-Length,
    // and drained so that the client reads the answer.
    let mut many = Vec::new();
    while ndjson(&many).len() < 96 * 1024 {
        many.push(hit("s1", "192.0.2.1", 1));
    }
    let r = hub.send_ndjson(&k, "big", &many);
    r.problem(413);
    assert_eq!(totals(db), (0, 0));
}

fn batch_id_missing_or_too_long_gets_400(db: &TestDb) {
    let k = key(db, "s1", &["hits:write"]);
    let hub = TestHub::start(db, |_| {});
    let auth = format!("Bearer {k}");
    let body = ndjson(&[hit("s1", "192.0.2.1", 1)]);
    let r = hub.post(
        "/api/v1/hits",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/x-ndjson"),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.problem(400)["type"], "urn:khien:problem:missing-batch-id");
    let r = hub.send_ndjson(&k, &"x".repeat(129), &[hit("s1", "192.0.2.1", 1)]);
    assert_eq!(r.problem(400)["type"], "urn:khien:problem:invalid-batch-id");
    let body = json!({"hits": [hit("s1", "192.0.2.1", 1)]});
    let r = hub.post(
        "/api/v1/hits",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    );
    r.problem(400);
    assert_eq!(totals(db), (0, 0));
}

fn unsupported_content_type_gets_415(db: &TestDb) {
    let k = key(db, "s1", &["hits:write"]);
    let hub = TestHub::start(db, |_| {});
    let auth = format!("Bearer {k}");
    let body = ndjson(&[hit("s1", "192.0.2.1", 1)]);
    for headers in [
        vec![("Content-Type", "text/plain")],
        vec![
            ("Content-Type", "application/x-ndjson"),
            ("Content-Encoding", "br"),
        ],
    ] {
        let mut h = vec![("Authorization", auth.as_str()), ("Idempotency-Key", "b")];
        h.extend(headers);
        hub.post("/api/v1/hits", &h, body.as_bytes()).problem(415);
    }
}

fn snapshot_etag_304_and_rebuild_after_import(db: &TestDb) {
    import_domain(db, "evil.example");
    let reader = key(db, "analyst", &["read"]);
    let hub = TestHub::start(db, |c| c.snapshot_refresh_seconds = 1);
    let auth = format!("Bearer {reader}");
    let fetch = |extra: &[(&str, &str)]| {
        let mut h = vec![("Authorization", auth.as_str())];
        h.extend_from_slice(extra);
        hub.get("/api/v1/snapshots/latest", &h)
    };
    // The first build runs at start; wait for it (503 until then).
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        let r = fetch(&[]);
        if r.status == 200 || Instant::now() > deadline {
            break r;
        }
        r.problem(503);
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(first.status, 200);
    assert_eq!(
        first.header("content-type"),
        Some("application/octet-stream")
    );
    let etag = first.header("etag").expect("ETag").to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() == 18,
        "{etag}"
    );
    let snap = khien_matcher::Snapshot::from_bytes(first.body.clone()).expect("loads");
    assert_eq!(format!("\"{:016x}\"", snap.info().checksum), etag);
    assert!(snap.match_domain(b"www.evil.example").is_some());
    assert!(snap.match_domain(b"worse.example").is_none());

    let same = fetch(&[("If-None-Match", &etag)]);
    assert_eq!(same.status, 304);
    assert_eq!(same.header("etag"), Some(etag.as_str()));
    assert!(same.body.is_empty());

    import_domain(db, "worse.example");
    let deadline = Instant::now() + Duration::from_secs(20);
    let rebuilt = loop {
        let r = fetch(&[("If-None-Match", &etag)]);
        if r.status == 200 || Instant::now() > deadline {
            break r;
        }
        assert_eq!(r.status, 304);
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(rebuilt.status, 200, "a new snapshot after the import");
    assert_ne!(rebuilt.header("etag"), Some(etag.as_str()));
    let snap = khien_matcher::Snapshot::from_bytes(rebuilt.body).expect("loads");
    assert!(snap.match_domain(b"worse.example").is_some());
}

fn healthz_and_metrics(db: &TestDb) {
    let k = key(db, "s1", &["hits:write"]);
    let hub = TestHub::start(db, |_| {});
    let r = hub.get("/healthz", &[]);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok\n"[..]));
    assert_eq!(
        hub.send_ndjson(&k, "m-1", &[hit("s1", "192.0.2.1", 1)])
            .status,
        200
    );
    assert_eq!(
        hub.send_ndjson(&k, "m-1", &[hit("s1", "192.0.2.1", 1)])
            .status,
        200
    );
    hub.send_ndjson(&k, "m-2", &[hit("other", "192.0.2.1", 1)])
        .problem(422);
    let r = hub.get("/metrics", &[]);
    assert_eq!(r.status, 200);
    let text = String::from_utf8_lossy(&r.body);
    for line in [
        "hub_hits_received_total 1",
        "hub_hit_batches_total{result=\"stored\"} 1",
        "hub_hit_batches_total{result=\"duplicate\"} 1",
        "hub_hit_batches_total{result=\"rejected\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    assert!(text.contains("hub_snapshot_builds_total"));
    assert!(text.contains("hub_snapshot_indicators"));
    hub.get("/nowhere", &[]).problem(404);
}
