-- Appending a message is one statement: INSERT … SELECT last_seq + 1. These triggers keep the
-- conversation's counter and the ticket's first response time in step inside that statement.

CREATE TRIGGER messages_advance_seq AFTER INSERT ON messages
BEGIN
    UPDATE conversations SET last_seq = NEW.seq WHERE id = NEW.conversation_id;
END;

CREATE TRIGGER messages_first_response AFTER INSERT ON messages
WHEN NEW.author_kind = 'agent'
BEGIN
    UPDATE tickets SET first_response_at = NEW.at
    WHERE id = (SELECT ticket_id FROM conversations WHERE id = NEW.conversation_id)
      AND first_response_at IS NULL;
END;
