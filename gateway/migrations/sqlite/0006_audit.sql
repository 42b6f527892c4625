-- The tamper-evident audit log and access grants.
--
-- audit_log: one row per security event, numbered 1, 2, 3, … (seq) and chained: hash is
-- SHA-256 over the row's canonical encoding and the previous row's hash (recorder::audit).
-- Rows are only ever inserted; `deskgate audit verify` detects any row edited, deleted,
-- reordered or inserted. No message bodies, codes or keys are ever written here.
CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    actor_id    INTEGER,
    actor_role  TEXT,
    action      TEXT    NOT NULL,
    outcome     TEXT    NOT NULL,
    customer_id INTEGER,
    object_kind TEXT,
    object_id   INTEGER,
    detail      TEXT,
    ip          TEXT,
    user_agent  TEXT,
    request_id  TEXT,
    hash        BLOB    NOT NULL
);
-- "Who looked at customer X last month" is one range scan of this index.
CREATE INDEX audit_customer ON audit_log(customer_id, at) WHERE customer_id IS NOT NULL;
CREATE INDEX audit_actor ON audit_log(actor_id, at) WHERE actor_id IS NOT NULL;
CREATE INDEX audit_object ON audit_log(object_kind, object_id, at) WHERE object_kind IS NOT NULL;
CREATE INDEX audit_action ON audit_log(action, at);
CREATE INDEX audit_at ON audit_log(at);

-- Signed heads of the chain: entry `seq` has hash `hash`, signed with the Ed25519 checkpoint
-- key that lives outside this database.
CREATE TABLE audit_checkpoints (
    seq       INTEGER PRIMARY KEY,
    hash      BLOB    NOT NULL,
    at        INTEGER NOT NULL,
    key_id    TEXT    NOT NULL,
    signature BLOB    NOT NULL
);

-- Access grants: a request for one closed object (a ticket's transcript; later a recording),
-- its review by someone else, and the time-limited access it gives its requester.
CREATE TABLE access_grants (
    id           INTEGER PRIMARY KEY,
    object_kind  TEXT    NOT NULL CHECK (object_kind IN ('transcript','recording')),
    object_id    INTEGER NOT NULL,
    requester_id INTEGER NOT NULL REFERENCES users(id),
    reason       TEXT    NOT NULL,
    duration_ms  INTEGER NOT NULL CHECK (duration_ms > 0),
    status       TEXT    NOT NULL CHECK (status IN ('pending','approved','denied','expired','revoked')),
    requested_at INTEGER NOT NULL,
    review_by    INTEGER NOT NULL,
    reviewer_id  INTEGER REFERENCES users(id),
    reviewed_at  INTEGER,
    review_note  TEXT,
    expires_at   INTEGER,
    ended_by     INTEGER REFERENCES users(id),
    ended_at     INTEGER,
    CHECK (reviewer_id IS NULL OR reviewer_id <> requester_id)
);
CREATE INDEX access_grants_requester ON access_grants(requester_id, id);
CREATE INDEX access_grants_open ON access_grants(status, review_by, expires_at);
