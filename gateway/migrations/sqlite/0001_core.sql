-- The gateway core: staff, customers, tickets and their conversations.
-- Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    name          TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('agent','lead','supervisor','approver','admin')),
    password_hash TEXT    NOT NULL,
    capacity      INTEGER NOT NULL CHECK (capacity > 0),
    active        INTEGER NOT NULL DEFAULT 1,
    created_at    INTEGER NOT NULL
);

-- Login sessions; only the SHA-256 of the bearer token is kept.
CREATE TABLE sessions (
    token_hash BLOB    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE customers (
    id          INTEGER PRIMARY KEY,
    site        TEXT    NOT NULL,
    external_id TEXT,
    name        TEXT    NOT NULL,
    email       TEXT,
    phone       TEXT,
    verified    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
-- A verified identity from a site maps to one customer, so their history follows them.
CREATE UNIQUE INDEX customers_identity ON customers(site, external_id) WHERE external_id IS NOT NULL;

CREATE TABLE visitors (
    token_hash  BLOB    PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);

CREATE TABLE tickets (
    id                INTEGER PRIMARY KEY,
    customer_id       INTEGER NOT NULL REFERENCES customers(id),
    status            TEXT    NOT NULL CHECK (status IN ('queued','assigned','resolved','closed')),
    priority          TEXT    NOT NULL CHECK (priority IN ('low','normal','high','urgent')),
    subject           TEXT    NOT NULL,
    agent_id          INTEGER REFERENCES users(id),
    created_at        INTEGER NOT NULL,
    queued_at         INTEGER NOT NULL,
    first_response_at INTEGER,
    resolved_at       INTEGER,
    closed_at         INTEGER,
    reopened          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX tickets_status ON tickets(status, queued_at);
CREATE INDEX tickets_agent ON tickets(agent_id, status);
CREATE INDEX tickets_customer ON tickets(customer_id, created_at);

-- One conversation per ticket; last_seq is the counter that makes sequence numbers gap-free.
CREATE TABLE conversations (
    id                INTEGER PRIMARY KEY,
    ticket_id         INTEGER NOT NULL UNIQUE REFERENCES tickets(id),
    last_seq          INTEGER NOT NULL DEFAULT 0,
    customer_read_seq INTEGER NOT NULL DEFAULT 0,
    agent_read_seq    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE messages (
    conversation_id INTEGER NOT NULL REFERENCES conversations(id),
    seq             INTEGER NOT NULL,
    at              INTEGER NOT NULL,
    author_kind     TEXT    NOT NULL CHECK (author_kind IN ('customer','agent','system')),
    author_id       INTEGER,
    author_name     TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    client_id       TEXT,
    PRIMARY KEY (conversation_id, seq)
) WITHOUT ROWID;
-- A retried send with the same client id finds the message it already stored.
CREATE UNIQUE INDEX messages_client ON messages(author_kind, author_id, client_id) WHERE client_id IS NOT NULL;

CREATE TABLE notes (
    id         INTEGER PRIMARY KEY,
    ticket_id  INTEGER NOT NULL REFERENCES tickets(id),
    at         INTEGER NOT NULL,
    author_id  INTEGER NOT NULL REFERENCES users(id),
    body       TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    UNIQUE (author_id, client_id)
);
CREATE INDEX notes_ticket ON notes(ticket_id, id);

-- Small named values: the pending bootstrap secret's hash, site secrets created on first run.
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
