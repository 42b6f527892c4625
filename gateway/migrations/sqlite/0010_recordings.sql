-- The voice channel: a ticket can be a call, and every call has a recording in the vault.
-- Times are milliseconds since the Unix epoch (UTC).

-- 'chat' for tickets opened by a message, 'call' for tickets opened by a call.
ALTER TABLE tickets ADD COLUMN kind TEXT NOT NULL DEFAULT 'chat' CHECK (kind IN ('chat','call'));

-- One recording per call. The audio itself is a sealed STREAM under <data>/recordings/<id>.dgs
-- (data key 'recording:<id>' in data_keys); this row holds only what is not audio: the
-- layout, and the manifest, sealed with the recording's key (segment hashes, pause intervals,
-- the final entry), which export checks the file against.
CREATE TABLE recordings (
    id             INTEGER PRIMARY KEY,
    ticket_id      INTEGER NOT NULL REFERENCES tickets(id),
    -- The provider's (or the gateway's) call id, as the media stream named it.
    call_id        TEXT    NOT NULL UNIQUE,
    rate           INTEGER NOT NULL CHECK (rate IN (8000, 16000)),
    channels       INTEGER NOT NULL CHECK (channels = 2),
    state          TEXT    NOT NULL CHECK (state IN ('recording','finished','failed')),
    -- Sealed JSON (record kind 'recording.manifest', seq = segments written); rewritten after
    -- every segment, so a crash leaves a manifest without its final entry.
    manifest       BLOB,
    segments       INTEGER NOT NULL DEFAULT 0,
    frames         INTEGER NOT NULL DEFAULT 0,
    started_at     INTEGER NOT NULL,
    ended_at       INTEGER
);
CREATE INDEX recordings_ticket ON recordings(ticket_id);
