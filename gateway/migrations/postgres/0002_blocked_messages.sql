-- A message the card-number screen withheld is stored as a placeholder in its place, so the
-- conversation keeps gap-free sequence numbers and both sides see that something was withheld.
-- Its body is the placeholder text, never what was typed.
ALTER TABLE messages ADD COLUMN blocked BOOLEAN NOT NULL DEFAULT FALSE;
