-- Step-up verification (issue 4): customer challenges, the daily failure counter, what each
-- verification authorised, tickets flagged for step-up, and the staff second factor.
-- Times are milliseconds since the Unix epoch (UTC).

-- One code sent to a customer for one ticket and one action. The code itself is never
-- stored: only HMAC-SHA256 under the server key, over a per-challenge salt.
CREATE TABLE verification_challenges (
    id             INTEGER PRIMARY KEY,
    ticket_id      INTEGER NOT NULL REFERENCES tickets(id),
    customer_id    INTEGER NOT NULL REFERENCES customers(id),
    agent_id       INTEGER NOT NULL REFERENCES users(id),
    action         TEXT    NOT NULL,
    state          TEXT    NOT NULL CHECK (state IN ('pending','approved','expired','canceled','max_attempts')),
    attempts       INTEGER NOT NULL DEFAULT 0,
    resends        INTEGER NOT NULL DEFAULT 0,
    destination    TEXT    NOT NULL,
    salt           BLOB    NOT NULL,
    code_hash      BLOB    NOT NULL,
    created_at     INTEGER NOT NULL,
    sent_at        INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    verified_until INTEGER,
    closed_at      INTEGER
);
CREATE INDEX verification_challenges_ticket ON verification_challenges(ticket_id, action, state);

-- Wrong codes per customer per day (days since the epoch, UTC): the daily lock-out.
CREATE TABLE verification_failures (
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    day         INTEGER NOT NULL,
    failures    INTEGER NOT NULL,
    PRIMARY KEY (customer_id, day)
) WITHOUT ROWID;

-- Sensitive actions the gateway allowed, and the verification that allowed each.
CREATE TABLE verification_actions (
    id           INTEGER PRIMARY KEY,
    ticket_id    INTEGER NOT NULL REFERENCES tickets(id),
    action       TEXT    NOT NULL,
    agent_id     INTEGER NOT NULL REFERENCES users(id),
    challenge_id INTEGER NOT NULL REFERENCES verification_challenges(id),
    at           INTEGER NOT NULL
);

-- Tickets whose first message matched a risk phrase.
CREATE TABLE verification_flags (
    ticket_id INTEGER PRIMARY KEY REFERENCES tickets(id),
    phrase    TEXT    NOT NULL,
    at        INTEGER NOT NULL
);

-- Staff TOTP: the seed sealed with AES-256-GCM under the server key, the last accepted step
-- (a code of that step or an earlier one is a replay), and consecutive failures.
CREATE TABLE staff_totp (
    user_id         INTEGER PRIMARY KEY REFERENCES users(id),
    sealed_seed     BLOB    NOT NULL,
    confirmed       INTEGER NOT NULL DEFAULT 0,
    last_step       INTEGER,
    failures        INTEGER NOT NULL DEFAULT 0,
    last_failure_at INTEGER,
    created_at      INTEGER NOT NULL
);

-- One-time recovery codes, as keyed hashes.
CREATE TABLE staff_recovery_codes (
    user_id    INTEGER NOT NULL REFERENCES users(id),
    code_hash  BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    used_at    INTEGER,
    PRIMARY KEY (user_id, code_hash)
) WITHOUT ROWID;

-- A login of a user who must enrol a second factor first: such a session opens only the
-- enrolment endpoints, never the API or a WebSocket.
ALTER TABLE sessions ADD COLUMN enrolment_only INTEGER NOT NULL DEFAULT 0;
