-- Attachments: a file a customer or an agent added to a conversation; the PostgreSQL twin of
-- migrations/sqlite/0009_attachments.sql. Each one is carried by a message of the conversation
-- (its sequence number), whose sealed body is the file's name, so resume, history and
-- transcripts list it like any other message.
--
-- `content` is the file sealed with the conversation's data key in the STREAM construction
-- (recorder::stream: 64 KiB segments, counter and last-segment flag in each nonce; associated
-- data: conversation, attachment id, kind `attachment`). Destroying the conversation's data key
-- (retention) makes it unreadable with the rest of the transcript; the rows stay.
-- Ids are chosen by the store (they are part of the sealed content's identity).
CREATE TABLE attachments (
    id              BIGINT PRIMARY KEY,
    conversation_id BIGINT NOT NULL REFERENCES conversations(id),
    seq             BIGINT NOT NULL,
    -- One of the allowed types, checked against the file's first bytes on upload.
    content_type    TEXT   NOT NULL,
    -- Bytes of the file in clear; with the segment size it fixes the sealed length exactly.
    size            BIGINT NOT NULL CHECK (size >= 0),
    content         BYTEA  NOT NULL,
    created_at      BIGINT NOT NULL,
    UNIQUE (conversation_id, seq)
);
-- Sealed content does not compress; storing it uncompressed lets substring() read one
-- segment without decompressing the whole value.
ALTER TABLE attachments ALTER COLUMN content SET STORAGE EXTERNAL;
