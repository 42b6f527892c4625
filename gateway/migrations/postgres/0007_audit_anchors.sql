-- Checkpoints form a chain of their own: each signs the digest of the one before it
-- (recorder::audit::Checkpoint::digest), so one deleted from the middle breaks the next.
-- NULL for checkpoints signed before this migration (format v1).
ALTER TABLE audit_checkpoints ADD COLUMN prev BYTEA;

-- A list read (GET /api/tickets, the queue, a socket's welcome) is one entry naming every
-- customer it showed: `customers` holds their ids, ascending, comma-separated, and is part of
-- the hashed entry (encoding v2). audit_customers indexes them, so "who looked at customer X"
-- finds listings with the same range scan as single reads (the audit_customer index).
ALTER TABLE audit_log ADD COLUMN customers TEXT;
CREATE TABLE audit_customers (
    customer_id BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    PRIMARY KEY (customer_id, at, seq)
);
