-- Authentication and authorization: the control plane's JWT signing keys, users, their API tokens
-- and their roles per workspace.

-- Keys the control plane signs JWTs with. Exactly one is active (the one new tokens are signed
-- with); every row is published in the JWKS so tokens signed by an older key verify until it is
-- deleted. The private key is PKCS#8 DER, the public key the raw key bytes (32 for Ed25519).
CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    algorithm   TEXT NOT NULL CHECK (algorithm IN ('EdDSA')),
    private_key BYTEA NOT NULL,
    public_key  BYTEA NOT NULL,
    active      BOOLEAN NOT NULL DEFAULT true,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- The active key is a singleton: concurrent first starts race on this index, one insert wins.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((true)) WHERE active;

CREATE TABLE users (
    id             UUID PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE,
    -- PHC string of an argon2id hash; NULL for users who cannot log in with a password (the
    -- built-in `admin`, which has only its API token).
    password_hash  TEXT,
    platform_admin BOOLEAN NOT NULL DEFAULT false,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
    id            UUID PRIMARY KEY,
    user_id       UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    -- SHA-256 of the secret; the secret itself is shown once and never stored.
    secret_sha256 BYTEA NOT NULL UNIQUE,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ,
    last_used_at  TIMESTAMPTZ,
    UNIQUE (user_id, name)
);

CREATE TABLE role_bindings (
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    workspace_id UUID NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    role         TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, workspace_id)
);
CREATE INDEX role_bindings_by_workspace ON role_bindings (workspace_id);
