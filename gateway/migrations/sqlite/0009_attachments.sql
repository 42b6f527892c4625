-- Attachments: a file a customer or an agent added to a conversation. Each one is carried by a
-- message of the conversation (its sequence number), whose sealed body is the file's name, so
-- resume, history and transcripts list it like any other message.
--
-- `content` is the file sealed with the conversation's data key in the STREAM construction
-- (recorder::stream: 64 KiB segments, counter and last-segment flag in each nonce; associated
-- data: conversation, attachment id, kind `attachment`). Destroying the conversation's data key
-- (retention) makes it unreadable with the rest of the transcript; the rows stay.
CREATE TABLE attachments (
    id              INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id),
    seq             INTEGER NOT NULL,
    -- One of the allowed types, checked against the file's first bytes on upload.
    content_type    TEXT    NOT NULL,
    -- Bytes of the file in clear; with the segment size it fixes the sealed length exactly.
    size            INTEGER NOT NULL CHECK (size >= 0),
    content         BLOB    NOT NULL,
    created_at      INTEGER NOT NULL,
    UNIQUE (conversation_id, seq)
);
