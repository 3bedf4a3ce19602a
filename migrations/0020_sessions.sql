-- Browser sessions of the portal: `POST /v1/auth/session` stores one row and sets an HttpOnly
-- cookie holding the secret; the secret itself is never stored, only its SHA-256. A session ends
-- at `expires_at` (absolute), after an idle period (checked against `last_used_at`), at logout,
-- or with its user.
CREATE TABLE sessions (
    secret_sha256 BYTEA PRIMARY KEY,
    user_id       UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
