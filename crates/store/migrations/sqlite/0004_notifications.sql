-- Warning subscribers: notifications per case and channel, their attempts,
-- per-day ticket counters, and each organisation's notification policy.

-- The policy as JSON (the hub's NotificationPolicy); absent: the hub's
-- configured default.
CREATE TABLE notification_policies (
    org_id     INTEGER PRIMARY KEY,
    policy     TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);

-- One warning of one case on one channel. round: 1 the first warning, 2 the
-- first reminder … ; status: queued, sent, delivered, failed, acknowledged.
-- next_attempt_at orders the queue (and leases a row to the sender that
-- claimed it); done_at marks a call-queue or bill row handled.
CREATE TABLE notifications (
    id              INTEGER PRIMARY KEY,
    org_id          INTEGER NOT NULL,
    case_id         INTEGER NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    subscriber_id   INTEGER NOT NULL,
    channel         TEXT    NOT NULL,
    language        TEXT    NOT NULL,
    round           INTEGER NOT NULL,
    ticket          TEXT    NOT NULL UNIQUE,
    status          TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    provider_id     TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER,
    delivered_at    INTEGER,
    acknowledged_at INTEGER,
    done_at         INTEGER
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'queued';
CREATE INDEX notifications_case ON notifications (case_id, id);
CREATE INDEX notifications_org ON notifications (org_id, id);
CREATE INDEX notifications_sent ON notifications (org_id, channel, sent_at) WHERE sent_at IS NOT NULL;
CREATE INDEX notifications_subscriber ON notifications (subscriber_id, channel, sent_at);
CREATE INDEX notifications_provider ON notifications (provider_id) WHERE provider_id IS NOT NULL;

CREATE TABLE notification_attempts (
    id              INTEGER PRIMARY KEY,
    notification_id INTEGER NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    at              INTEGER NOT NULL,
    ok              INTEGER NOT NULL,
    error           TEXT
);
CREATE INDEX notification_attempts_notification ON notification_attempts (notification_id, id);

-- The last ticket number given out per day (YYYYMMDD).
CREATE TABLE ticket_days (
    day  TEXT    PRIMARY KEY,
    last INTEGER NOT NULL
) WITHOUT ROWID;

-- Rounds of warnings planned for the current episode, and when the last
-- one was; a reinfection starts over.
ALTER TABLE cases ADD COLUMN notice_round INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cases ADD COLUMN noticed_at INTEGER;
