-- Step-up verification, second round: the language each customer's code emails are written in.
-- Times are milliseconds since the Unix epoch (UTC).

-- The customer's language, from the widget (`lang` at POST /api/visitor) or their signed
-- identity (`locale`); without a row, the site's language and then the configured default apply.
CREATE TABLE verification_languages (
    customer_id BIGINT PRIMARY KEY REFERENCES customers(id),
    language    TEXT   NOT NULL,
    updated_at  BIGINT NOT NULL
);
