-- When each staff session was last used, for the idle timeout; NULL until its first use
-- (then it counts from creation).
ALTER TABLE sessions ADD COLUMN last_seen_at BIGINT;
