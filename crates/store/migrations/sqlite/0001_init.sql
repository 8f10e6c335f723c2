-- Indicators: one row per (kind, value) with the aggregate of its sources,
-- kept in columns so that filters and exports never recompute it.
-- Timestamps are unix seconds (UTC); tlp is the rank 0 (clear) .. 4 (red).
CREATE TABLE indicators (
    id             INTEGER PRIMARY KEY,
    kind           TEXT    NOT NULL,
    value          TEXT    NOT NULL,
    confidence     INTEGER NOT NULL,
    tlp            INTEGER NOT NULL,
    family         TEXT,
    threat_type    TEXT    NOT NULL,
    first_seen     INTEGER NOT NULL,
    last_seen      INTEGER NOT NULL,
    expires_at     INTEGER,
    allowlisted_by TEXT,
    UNIQUE (kind, value)
);
CREATE INDEX indicators_family ON indicators (family) WHERE family IS NOT NULL;
-- No index on last_seen or expires_at: almost every row has both, so each
-- would cost every import an index insert (a third of SQLite's import time
-- together), while the readers that filter on them — exports and the daily
-- expiry job — walk the whole table anyway.

-- What each source says; the primary key makes a source's second listing
-- of the same observable an update, never a second row.
CREATE TABLE indicator_sources (
    indicator_id INTEGER NOT NULL REFERENCES indicators (id) ON DELETE CASCADE
                 DEFERRABLE INITIALLY DEFERRED,
    source       TEXT    NOT NULL,
    tlp          INTEGER NOT NULL,
    confidence   INTEGER NOT NULL,
    family       TEXT,
    threat_type  TEXT    NOT NULL,
    reference    TEXT,
    first_seen   INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL,
    expires_at   INTEGER,
    PRIMARY KEY (indicator_id, source)
) WITHOUT ROWID;
-- No index on expires_at here: the expiry job scans this table once per
-- run (a sequential pass), which is cheaper than an index every import
-- pays for.
