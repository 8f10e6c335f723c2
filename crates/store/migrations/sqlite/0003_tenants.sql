-- The hub around the ingest core: organisations (tenants), users, sessions,
-- setup tokens, the audit log, subscribers with encrypted contacts, address
-- attribution and infection cases. Hits and hit batches gain the tenant
-- (and hits the subscriber they were attributed to).
-- Times are unix seconds (UTC), as everywhere in the store.

CREATE TABLE organizations (
    id         INTEGER PRIMARY KEY,
    slug       TEXT    NOT NULL UNIQUE,
    name       TEXT    NOT NULL,
    -- national | operator | organization | province | association
    role       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
-- The hub's own organisation: keys and hits from before tenants belong to it;
-- the first start names it from the configuration.
INSERT INTO organizations (id, slug, name, role, created_at)
VALUES (1, 'default', 'Khiên', 'national', 0);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    org_id        INTEGER NOT NULL REFERENCES organizations (id),
    -- The login: an e-mail address, lower-case.
    email         TEXT    NOT NULL UNIQUE,
    display_name  TEXT    NOT NULL,
    -- admin | analyst | viewer
    role          TEXT    NOT NULL,
    language      TEXT    NOT NULL DEFAULT 'vi',
    -- Argon2id in PHC form; NULL until set with a setup token.
    password_hash TEXT,
    created_at    INTEGER NOT NULL,
    disabled_at   INTEGER,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until  INTEGER,
    last_login_at INTEGER
);
CREATE INDEX users_org ON users (org_id, id);

-- A session is found by the keyed hash of its cookie; the cookie itself is
-- never stored.
CREATE TABLE sessions (
    token_hash   TEXT    PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    client       TEXT
) WITHOUT ROWID;
CREATE INDEX sessions_user ON sessions (user_id);

-- One-time tokens that let a user set a password (first start, new users,
-- resets).
CREATE TABLE setup_tokens (
    token_hash TEXT    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
) WITHOUT ROWID;

-- Keys belong to an organisation. hash_scheme says how key_hash was made:
-- 'sha256' for keys from before keyed hashing, 'hmac-sha256' since.
ALTER TABLE api_keys ADD COLUMN org_id INTEGER NOT NULL DEFAULT 1;
ALTER TABLE api_keys ADD COLUMN hash_scheme TEXT NOT NULL DEFAULT 'sha256';
ALTER TABLE api_keys ADD COLUMN created_by INTEGER;
CREATE INDEX api_keys_org ON api_keys (org_id, id);

-- Append-only: every admin action and every read of personal data.
CREATE TABLE audit_events (
    id           INTEGER PRIMARY KEY,
    at           INTEGER NOT NULL,
    -- The organisation whose data or settings were touched.
    org_id       INTEGER,
    -- user:ID, key:ID, cli or system
    actor        TEXT    NOT NULL,
    actor_org_id INTEGER,
    action       TEXT    NOT NULL,
    target       TEXT,
    detail       TEXT,
    client       TEXT
);
CREATE INDEX audit_events_org ON audit_events (org_id, id);
CREATE TRIGGER audit_events_append_only_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER audit_events_append_only_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;

-- An operator's customers. Contact fields are AES-256-GCM ciphertexts made
-- by the hub (key_id names the key); the pseudonym is a keyed hash and the
-- only name a subscriber has outside the operator's tenant.
CREATE TABLE subscribers (
    id          INTEGER PRIMARY KEY,
    org_id      INTEGER NOT NULL REFERENCES organizations (id),
    external_id TEXT    NOT NULL,
    pseudonym   TEXT    NOT NULL UNIQUE,
    language    TEXT    NOT NULL DEFAULT 'vi',
    name_enc    BLOB,
    email_enc   BLOB,
    phone_enc   BLOB,
    address_enc BLOB,
    key_id      TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (org_id, external_id)
);
CREATE INDEX subscribers_org ON subscribers (org_id, id);

-- Other names of a subscriber in attribution files: RADIUS User-Name, a MAC
-- address, a DHCP circuit id. The external id is always one.
CREATE TABLE subscriber_identities (
    org_id        INTEGER NOT NULL,
    identity      TEXT    NOT NULL,
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    PRIMARY KEY (org_id, identity)
) WITHOUT ROWID;

-- Who had which address (or CGNAT port block) when: [start_at, end_at),
-- end_at NULL while open. A row points at a subscriber, or for CGNAT at
-- the inside address, which is attributed in turn. session_key pairs a
-- RADIUS Start with its Interim and Stop, and makes a re-uploaded file
-- harmless.
CREATE TABLE address_assignments (
    id              INTEGER PRIMARY KEY,
    org_id          INTEGER NOT NULL,
    network         TEXT    NOT NULL,
    port_first      INTEGER,
    port_last       INTEGER,
    subscriber_id   INTEGER REFERENCES subscribers (id) ON DELETE CASCADE,
    inside          TEXT,
    start_at        INTEGER NOT NULL,
    end_at          INTEGER,
    source          TEXT    NOT NULL,
    session_key     TEXT    NOT NULL,
    last_event_at   INTEGER NOT NULL,
    calling_station TEXT,
    UNIQUE (org_id, source, session_key)
);
CREATE INDEX address_assignments_org ON address_assignments (org_id, network, start_at);

-- Hits gain their tenant, the subscriber they were attributed to (NULL:
-- nobody held the address then, as far as the operator told) and the
-- client port when the telemetry had one (CGNAT). And they become parts:
-- one row per part a sensor shipped, appended, never updated in place but
-- to attribute it; reads add up the parts of a key (bucket, sensor,
-- client, kind, indicator) with the rule of khien_model::Hit::merge.
-- Appending keeps ingest at the end of the table: an upsert keyed by
-- indicator and client touched a random page of a growing B-tree for every
-- hit, and the WAL wrote each of those pages at every commit.
CREATE TABLE hits_v3 (
    id            INTEGER PRIMARY KEY,
    org_id        INTEGER NOT NULL,
    bucket        INTEGER NOT NULL,
    sensor        TEXT    NOT NULL,
    client        TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    indicator     TEXT    NOT NULL,
    indicator_id  INTEGER,
    family        TEXT,
    threat_type   TEXT    NOT NULL,
    count         INTEGER NOT NULL,
    first_seen    INTEGER NOT NULL,
    last_seen     INTEGER NOT NULL,
    evidence      TEXT,
    received_at   INTEGER NOT NULL,
    client_port   INTEGER,
    subscriber_id INTEGER,
    -- The hit_batches row this part came in (NULL for hits from before).
    batch_row     INTEGER
);
INSERT INTO hits_v3 (org_id, bucket, sensor, client, kind, indicator, indicator_id, family,
                     threat_type, count, first_seen, last_seen, evidence, received_at)
SELECT 1, bucket, sensor, client, kind, indicator, indicator_id, family,
       threat_type, count, first_seen, last_seen, evidence, received_at FROM hits;
DROP TABLE hits;
ALTER TABLE hits_v3 RENAME TO hits;
-- A batch's parts, for the case job, and the parts waiting for attribution
-- data. Both grow at the end as hits arrive; nothing keyed by client or
-- indicator is indexed here, so ingest touches only the table's tail.
CREATE INDEX hits_batch ON hits (batch_row);
CREATE INDEX hits_unattributed ON hits (org_id, bucket) WHERE subscriber_id IS NULL;

-- Per client address and family: when it was last seen reaching an
-- indicator (the public "is my address infected" lookup). Kept by the
-- case job, batches at a time.
CREATE TABLE client_activity (
    client     TEXT    NOT NULL,
    family     TEXT    NOT NULL,
    org_id     INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    count      INTEGER NOT NULL,
    PRIMARY KEY (client, family, org_id)
) WITHOUT ROWID;
INSERT INTO client_activity
SELECT client, COALESCE(family, 'unknown'), org_id, MIN(first_seen), MAX(last_seen),
       MIN(TOTAL(count), 9223372036854775807.0)
FROM hits GROUP BY client, COALESCE(family, 'unknown'), org_id;

-- cases_applied: the case job has applied the batch's attributed hits to
-- cases (in the transaction that set it, so exactly once).
CREATE TABLE hit_batches_v3 (
    id            INTEGER PRIMARY KEY,
    org_id        INTEGER NOT NULL,
    sensor        TEXT    NOT NULL,
    batch_id      TEXT    NOT NULL,
    received_at   INTEGER NOT NULL,
    hit_count     INTEGER NOT NULL,
    cases_applied INTEGER NOT NULL DEFAULT 0,
    UNIQUE (org_id, sensor, batch_id)
);
INSERT INTO hit_batches_v3 (org_id, sensor, batch_id, received_at, hit_count, cases_applied)
SELECT 1, sensor, batch_id, received_at, hit_count, 1 FROM hit_batches;
DROP TABLE hit_batches;
ALTER TABLE hit_batches_v3 RENAME TO hit_batches;
CREATE INDEX hit_batches_pending ON hit_batches (id) WHERE cases_applied = 0;

-- One case per (subscriber, family). active_since is when the current
-- episode began (the first hit, or the hit that reinfected); a resolution
-- records its duration from there.
CREATE TABLE cases (
    id               INTEGER PRIMARY KEY,
    org_id           INTEGER NOT NULL,
    subscriber_id    INTEGER NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    family           TEXT    NOT NULL,
    -- open | notified | acknowledged | resolved | reinfected
    state            TEXT    NOT NULL,
    opened_at        INTEGER NOT NULL,
    active_since     INTEGER NOT NULL,
    first_hit_at     INTEGER NOT NULL,
    last_hit_at      INTEGER NOT NULL,
    hit_count        INTEGER NOT NULL,
    state_changed_at INTEGER NOT NULL,
    resolved_at      INTEGER,
    reinfections     INTEGER NOT NULL DEFAULT 0,
    assignee_id      INTEGER REFERENCES users (id) ON DELETE SET NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (org_id, subscriber_id, family)
);
CREATE INDEX cases_org_id ON cases (org_id, id);
-- No index on (state, last_hit_at): every batch moves last_hit_at of its
-- cases, and the resolution job, which would use it, runs once a minute
-- and scans the table cheaply instead.

-- The timeline: opened, state changes, comments, assignments, notifications.
CREATE TABLE case_events (
    id         INTEGER PRIMARY KEY,
    case_id    INTEGER NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    org_id     INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    from_state TEXT,
    to_state   TEXT,
    actor      TEXT    NOT NULL,
    text       TEXT,
    -- On a resolution: seconds since the episode began.
    duration   INTEGER
);
CREATE INDEX case_events_case ON case_events (case_id, id);
CREATE INDEX case_events_org_state ON case_events (org_id, to_state, at);

-- Hits per case per day; days count from 1970-01-01 in Asia/Ho_Chi_Minh.
CREATE TABLE case_daily_hits (
    case_id INTEGER NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    day     INTEGER NOT NULL,
    count   INTEGER NOT NULL,
    PRIMARY KEY (case_id, day)
) WITHOUT ROWID;

-- Bumped with every change to address_assignments, so that every hub
-- replica knows when to reload its attribution index.
INSERT INTO store_meta (key, value) VALUES ('attribution_generation', 0);
