-- Appending a message is one statement. These triggers keep the conversation's counter and the
-- ticket's first response time in step inside that statement.

CREATE FUNCTION messages_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conversations SET last_seq = NEW.seq WHERE id = NEW.conversation_id;
    IF NEW.author_kind = 'agent' THEN
        UPDATE tickets SET first_response_at = NEW.at
        WHERE id = (SELECT ticket_id FROM conversations WHERE id = NEW.conversation_id)
          AND first_response_at IS NULL;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER messages_after_insert AFTER INSERT ON messages
FOR EACH ROW EXECUTE FUNCTION messages_after_insert();
