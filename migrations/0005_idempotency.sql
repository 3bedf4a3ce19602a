-- Idempotency-Key on POSTs: the first answer to a (caller, key) is stored and replayed to retries.
-- `status` is NULL while the first request is still being served.
CREATE TABLE idempotency_keys (
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash BYTEA NOT NULL,
    status       INTEGER,
    content_type TEXT,
    location     TEXT,
    body         BYTEA,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
