-- The vault: everything a customer typed is stored sealed (AES-256-GCM) under a data key of its
-- owner, and the data keys are stored here, wrapped by a version of the keyring (a file outside
-- this database).
--
-- These columns hold sealed bytes (BYTEA since 0001):
--   messages.body, messages.author_name, notes.body, tickets.subject, verification_flags.phrase
--     (sealed with the conversation's key; associated data: conversation, seq or note id, kind)
--   customers.name, customers.email, customers.phone, customers.external_id
--     (sealed with the customer's key)

CREATE TABLE data_keys (
    -- 'conversation:<id>', 'customer:<id>', later 'recording:<id>'; bound into the wrapping.
    owner       TEXT   PRIMARY KEY,
    -- The keyring version that wrapped this key; rewrap moves it, retire needs none left.
    key_version BIGINT NOT NULL,
    wrapped     BYTEA  NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX data_keys_version ON data_keys(key_version);

-- Retention of a transcript: a legal hold keeps it past its expiry; shredded_at records when
-- its data key was destroyed (the rows stay, unreadable).
ALTER TABLE conversations ADD COLUMN legal_hold BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE conversations ADD COLUMN shredded_at BIGINT;

-- Keyed blind indexes (HMAC-SHA256, key in the keyring) replace lookups by plaintext.
ALTER TABLE customers ADD COLUMN external_id_index BYTEA;
ALTER TABLE customers ADD COLUMN email_index BYTEA;
CREATE UNIQUE INDEX customers_identity ON customers(site, external_id_index)
    WHERE external_id_index IS NOT NULL;
CREATE INDEX customers_email ON customers(site, email_index) WHERE email_index IS NOT NULL;
