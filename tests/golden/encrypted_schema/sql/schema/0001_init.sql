-- migrate:up
CREATE TABLE notes (
    body TEXT NOT NULL,
    n INTEGER NOT NULL
);
-- aragora:encrypted notes (body)

CREATE TABLE secrets (
    id TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    count INTEGER NOT NULL
);
-- aragora:encrypted secrets (count)
-- aragora:encrypted secrets (missing)
-- aragora:encrypted secrets (value) by (nope)
-- aragora:encryptd secrets (value)

-- migrate:down
DROP TABLE secrets;
DROP TABLE notes;
