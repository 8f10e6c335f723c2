-- Hub ingest: exact-host domains, sensor hits, idempotent hit batches, API
-- keys and the indicator generation counter the snapshot builder watches.

-- A domain marked exact-host matches only the name itself, not its
-- subdomains (shared hosting: one bad site among many customers).
ALTER TABLE indicators ADD COLUMN exact_host INTEGER NOT NULL DEFAULT 0;

-- Small named counters. `indicators_generation` is bumped in the same
-- transaction as every write that changes what a snapshot would hold.
CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO store_meta (key, value) VALUES ('indicators_generation', 0);

-- One row per (bucket, sensor, client, kind, indicator): a later part of the
-- same key adds to it (khien_model::Hit::merge). Times are unix seconds;
-- received_at is when the row last received a part.
CREATE TABLE hits (
    bucket       INTEGER NOT NULL,
    sensor       TEXT    NOT NULL,
    client       TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    indicator    TEXT    NOT NULL,
    indicator_id INTEGER,
    family       TEXT,
    threat_type  TEXT    NOT NULL,
    count        INTEGER NOT NULL,
    first_seen   INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL,
    evidence     TEXT,
    received_at  INTEGER NOT NULL,
    PRIMARY KEY (bucket, sensor, client, kind, indicator)
) WITHOUT ROWID;
-- "Which indicators did this subscriber address reach, and when" and
-- "who reached this indicator": the two questions cases are built from.
CREATE INDEX hits_client_bucket ON hits (client, bucket);
CREATE INDEX hits_indicator ON hits (indicator, bucket);

-- One row per accepted batch; the key makes a retried batch a no-op.
CREATE TABLE hit_batches (
    sensor      TEXT    NOT NULL,
    batch_id    TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    hit_count   INTEGER NOT NULL,
    PRIMARY KEY (sensor, batch_id)
) WITHOUT ROWID;

-- API keys: only the SHA-256 of the secret is kept (see crates/store/src/keys.rs).
CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY,
    name         TEXT    NOT NULL,
    prefix       TEXT    NOT NULL,
    key_hash     TEXT    NOT NULL UNIQUE,
    scopes       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER,
    last_used_at INTEGER
);
CREATE INDEX api_keys_prefix ON api_keys (prefix);
CREATE INDEX api_keys_name ON api_keys (name);
