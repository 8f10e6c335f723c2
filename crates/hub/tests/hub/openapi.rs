//! The OpenAPI document: generated from the code, served at
//! `/api/openapi.json`, and compared with the committed snapshot so that
//! every API change shows in review. `KHIEN_UPDATE_SNAPSHOTS=1` rewrites
//! the snapshot.

use super::*;

hub_tests!(openapi_document_is_served_and_matches_the_snapshot);

fn openapi_document_is_served_and_matches_the_snapshot(db: &TestDb) {
    let hub = TestHub::start(db, |_| {});
    let r = hub.get("/api/openapi.json", &[]);
    assert_eq!(r.status, 200);
    let served: Value = r.json();
    assert_eq!(served["openapi"], "3.1.0");
    let paths = served["paths"].as_object().unwrap();
    for p in [
        "/api/v1/session",
        "/api/v1/setup",
        "/api/v1/organizations",
        "/api/v1/users/{id}",
        "/api/v1/api-keys/{id}",
        "/api/v1/audit",
        "/api/v1/subscribers/{id}",
        "/api/v1/attribution",
        "/api/v1/cases/{id}/transition",
        "/api/v1/stats/cases",
        "/api/v1/lookup/self",
        "/api/v1/lookup/indicator",
        "/api/v1/hits",
        "/api/v1/snapshots/latest",
    ] {
        assert!(paths.contains_key(p), "{p} is documented");
    }
    let text = khien_hub::openapi_json();
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/openapi.json");
    if std::env::var("KHIEN_UPDATE_SNAPSHOTS").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("{text}\n")).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if let Some((i, (old, new))) = committed
        .lines()
        .zip(text.lines())
        .enumerate()
        .find(|(_, (a, b))| a != b)
    {
        panic!(
            "the API changed at line {}: {old:?} became {new:?}; review the difference \
             (git diff after a run with KHIEN_UPDATE_SNAPSHOTS=1)",
            i + 1
        );
    }
    assert_eq!(
        committed.trim_end().lines().count(),
        text.trim_end().lines().count(),
        "the API changed at its end; rerun with KHIEN_UPDATE_SNAPSHOTS=1 and review"
    );
    assert_eq!(served, serde_json::from_str::<Value>(&text).unwrap());
}
