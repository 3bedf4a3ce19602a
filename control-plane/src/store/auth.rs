//! Rows of `signing_keys`, `users`, `api_tokens` and `role_bindings`.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, StoreError};
use crate::auth::jwt::KeyMaterial;
use crate::auth::{Identity, Role};
use crate::model::{
    ApiTokenId, ApiTokenRecord, RoleBindingRecord, UserId, UserRecord, WorkspaceId, WorkspaceRecord,
};

fn query_error(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { context, source }
}

fn conflict_or(
    context: &'static str,
    what: impl FnOnce() -> String,
) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| match &source {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict { what: what() }
        }
        _ => StoreError::Query { context, source },
    }
}

struct KeyRow {
    kid: String,
    private_key: Vec<u8>,
    public_key: Vec<u8>,
    active: bool,
}

struct UserRow {
    id: Uuid,
    username: String,
    password_hash: Option<String>,
    platform_admin: bool,
    created_at: DateTime<Utc>,
}

impl From<UserRow> for UserRecord {
    fn from(row: UserRow) -> UserRecord {
        UserRecord {
            id: UserId::from_uuid(row.id),
            username: row.username,
            password_hash: row.password_hash,
            platform_admin: row.platform_admin,
            created_at: row.created_at,
        }
    }
}

struct IdentityRow {
    id: Uuid,
    username: String,
    platform_admin: bool,
}

struct TokenRow {
    id: Uuid,
    user_id: Uuid,
    name: String,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
}

impl From<TokenRow> for ApiTokenRecord {
    fn from(row: TokenRow) -> ApiTokenRecord {
        ApiTokenRecord {
            id: ApiTokenId::from_uuid(row.id),
            user_id: UserId::from_uuid(row.user_id),
            name: row.name,
            created_at: row.created_at,
            expires_at: row.expires_at,
            last_used_at: row.last_used_at,
        }
    }
}

struct BindingRow {
    username: String,
    workspace: String,
    role: String,
    created_at: DateTime<Utc>,
}

impl BindingRow {
    fn record(self) -> Result<RoleBindingRecord, StoreError> {
        Ok(RoleBindingRecord {
            role: role(&self.role)?,
            username: self.username,
            workspace: self.workspace,
            created_at: self.created_at,
        })
    }
}

fn role(text: &str) -> Result<Role, StoreError> {
    Role::parse(text).ok_or_else(|| StoreError::Corrupt {
        column: "role_bindings.role",
        value: text.to_owned(),
    })
}

impl Store {
    /// Every signing key, the active one first (`None` when there is none yet).
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn signing_keys(
        &self,
    ) -> Result<(Option<KeyMaterial>, Vec<KeyMaterial>), StoreError> {
        let rows = sqlx::query_as!(
            KeyRow,
            "SELECT kid, private_key, public_key, active FROM signing_keys \
             WHERE algorithm = 'EdDSA' ORDER BY created_at DESC"
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("signing_keys"))?;
        let mut active = None;
        let mut others = Vec::new();
        for row in rows {
            let key = KeyMaterial {
                kid: row.kid,
                private_pkcs8: row.private_key,
                public: row.public_key,
            };
            if row.active && active.is_none() {
                active = Some(key);
            } else {
                others.push(key);
            }
        }
        Ok((active, others))
    }

    /// Inserts `key` as the active signing key unless one is already active (then nothing
    /// changes: several control planes starting at once all end up with the winner's key).
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn signing_key_insert_if_none(&self, key: &KeyMaterial) -> Result<(), StoreError> {
        sqlx::query!(
            "INSERT INTO signing_keys (kid, algorithm, private_key, public_key, active) \
             VALUES ($1, 'EdDSA', $2, $3, true) ON CONFLICT DO NOTHING",
            key.kid,
            key.private_pkcs8,
            key.public
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("signing_key_insert_if_none"))?;
        Ok(())
    }

    /// The built-in platform admin `username` with no way to log in (no password, no token):
    /// an identity the platform's own components act as (the Kubernetes operator). Created if
    /// missing.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn system_user(&self, username: &str) -> Result<Identity, StoreError> {
        let row = sqlx::query_as!(
            IdentityRow,
            "INSERT INTO users (id, username, platform_admin) VALUES ($1, $2, true) \
             ON CONFLICT (username) DO UPDATE SET platform_admin = true \
             RETURNING id, username, platform_admin",
            Uuid::new_v4(),
            username
        )
        .fetch_one(&self.pool)
        .await
        .map_err(query_error("system_user"))?;
        Ok(Identity {
            user_id: UserId::from_uuid(row.id),
            username: row.username,
            platform_admin: row.platform_admin,
        })
    }

    /// Creates or updates the built-in platform admin `username` and makes `secret_sha256` its API
    /// token `token_name` (replacing the previous secret of that name), in one transaction.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn bootstrap_admin(
        &self,
        username: &str,
        token_name: &str,
        secret_sha256: &[u8],
    ) -> Result<Identity, StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query_error("bootstrap_admin"))?;
        let row = sqlx::query_as!(
            IdentityRow,
            "INSERT INTO users (id, username, platform_admin) VALUES ($1, $2, true) \
             ON CONFLICT (username) DO UPDATE SET platform_admin = true \
             RETURNING id, username, platform_admin",
            Uuid::new_v4(),
            username
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(query_error("bootstrap_admin user"))?;
        // Another user's token with the same secret would be ambiguous: the secret is the admin's.
        sqlx::query!(
            "DELETE FROM api_tokens WHERE secret_sha256 = $1 AND user_id <> $2",
            secret_sha256,
            row.id
        )
        .execute(&mut *tx)
        .await
        .map_err(query_error("bootstrap_admin clear"))?;
        sqlx::query!(
            "INSERT INTO api_tokens (id, user_id, name, secret_sha256) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, name) DO UPDATE \
             SET secret_sha256 = EXCLUDED.secret_sha256, expires_at = NULL",
            Uuid::new_v4(),
            row.id,
            token_name,
            secret_sha256
        )
        .execute(&mut *tx)
        .await
        .map_err(query_error("bootstrap_admin token"))?;
        tx.commit()
            .await
            .map_err(query_error("bootstrap_admin commit"))?;
        Ok(Identity {
            user_id: UserId::from_uuid(row.id),
            username: row.username,
            platform_admin: row.platform_admin,
        })
    }

    /// Inserts a user.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the name is taken.
    pub async fn user_insert(
        &self,
        username: &str,
        password_hash: &str,
        platform_admin: bool,
    ) -> Result<UserRecord, StoreError> {
        let row = sqlx::query_as!(
            UserRow,
            "INSERT INTO users (id, username, password_hash, platform_admin) VALUES ($1, $2, $3, $4) \
             RETURNING id, username, password_hash, platform_admin, created_at",
            Uuid::new_v4(),
            username,
            password_hash,
            platform_admin
        )
        .fetch_one(&self.pool)
        .await
        .map_err(conflict_or("user_insert", || format!("user {username:?}")))?;
        Ok(row.into())
    }

    /// A user by id.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query_as!(
            UserRow,
            "SELECT id, username, password_hash, platform_admin, created_at FROM users WHERE id = $1",
            id.into_uuid()
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("user_by_id"))?;
        Ok(row.map(Into::into))
    }

    /// A user by name.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query_as!(
            UserRow,
            "SELECT id, username, password_hash, platform_admin, created_at FROM users \
             WHERE username = $1",
            username
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("user_by_name"))?;
        Ok(row.map(Into::into))
    }

    /// Up to `limit` users by name after `after`.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn users_list(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<UserRecord>, StoreError> {
        let rows = sqlx::query_as!(
            UserRow,
            "SELECT id, username, password_hash, platform_admin, created_at FROM users \
             WHERE ($1::text IS NULL OR username > $1) ORDER BY username LIMIT $2",
            after,
            i64::from(limit)
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("users_list"))?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Deletes a user with its API tokens and role bindings; false when there was none.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn user_delete(&self, username: &str) -> Result<bool, StoreError> {
        let done = sqlx::query!("DELETE FROM users WHERE username = $1", username)
            .execute(&self.pool)
            .await
            .map_err(query_error("user_delete"))?;
        Ok(done.rows_affected() > 0)
    }

    /// Inserts an API token of `user`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the user has a token of that name.
    pub async fn api_token_insert(
        &self,
        user: UserId,
        name: &str,
        secret_sha256: &[u8],
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<ApiTokenRecord, StoreError> {
        let row = sqlx::query_as!(
            TokenRow,
            "INSERT INTO api_tokens (id, user_id, name, secret_sha256, expires_at) \
             VALUES ($1, $2, $3, $4, $5) \
             RETURNING id, user_id, name, created_at, expires_at, last_used_at",
            Uuid::new_v4(),
            user.into_uuid(),
            name,
            secret_sha256,
            expires_at
        )
        .fetch_one(&self.pool)
        .await
        .map_err(conflict_or("api_token_insert", || {
            format!("API token {name:?}")
        }))?;
        Ok(row.into())
    }

    /// The API tokens of `user`, by name.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn api_tokens_of(&self, user: UserId) -> Result<Vec<ApiTokenRecord>, StoreError> {
        let rows = sqlx::query_as!(
            TokenRow,
            "SELECT id, user_id, name, created_at, expires_at, last_used_at FROM api_tokens \
             WHERE user_id = $1 ORDER BY name",
            user.into_uuid()
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("api_tokens_of"))?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Deletes the API token `name` of `user`; whether there was one.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn api_token_delete(&self, user: UserId, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query!(
            "DELETE FROM api_tokens WHERE user_id = $1 AND name = $2",
            user.into_uuid(),
            name
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("api_token_delete"))?;
        Ok(done.rows_affected() > 0)
    }

    /// The user of the unexpired API token with this digest, marking the token used.
    ///
    /// `last_used_at` moves at most once a minute: a token calling many times a second (a script,
    /// a portal) then costs a read, not a durable write per request.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn api_token_authenticate(
        &self,
        secret_sha256: &[u8],
    ) -> Result<Option<Identity>, StoreError> {
        let row = sqlx::query_as!(
            IdentityRow,
            r#"WITH hit AS (
                 SELECT t.id AS token_id, t.last_used_at, u.id, u.username, u.platform_admin
                   FROM api_tokens t JOIN users u ON u.id = t.user_id
                  WHERE t.secret_sha256 = $1 AND (t.expires_at IS NULL OR t.expires_at > now())
               ), touched AS (
                 UPDATE api_tokens SET last_used_at = now()
                  WHERE id IN (SELECT token_id FROM hit
                                WHERE last_used_at IS NULL
                                   OR last_used_at < now() - interval '1 minute')
               )
               SELECT id AS "id!", username AS "username!", platform_admin AS "platform_admin!"
                 FROM hit"#,
            secret_sha256
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("api_token_authenticate"))?;
        Ok(row.map(|row| Identity {
            user_id: UserId::from_uuid(row.id),
            username: row.username,
            platform_admin: row.platform_admin,
        }))
    }

    /// The role of `user` in the workspace, if any.
    ///
    /// # Errors
    /// [`StoreError::Query`] or [`StoreError::Corrupt`].
    pub async fn role_binding_get(
        &self,
        user: UserId,
        workspace: WorkspaceId,
    ) -> Result<Option<Role>, StoreError> {
        let text = sqlx::query_scalar!(
            "SELECT role FROM role_bindings WHERE user_id = $1 AND workspace_id = $2",
            user.into_uuid(),
            workspace.into_uuid()
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("role_binding_get"))?;
        text.as_deref().map(role).transpose()
    }

    /// Grants `role` to `user` in the workspace (replacing a previous role).
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn role_binding_put(
        &self,
        user: UserId,
        workspace: WorkspaceId,
        role: Role,
    ) -> Result<(), StoreError> {
        sqlx::query!(
            "INSERT INTO role_bindings (user_id, workspace_id, role) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, workspace_id) DO UPDATE SET role = EXCLUDED.role, created_at = now()",
            user.into_uuid(),
            workspace.into_uuid(),
            role.as_str()
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("role_binding_put"))?;
        Ok(())
    }

    /// Removes `user`'s role in the workspace; false when there was none.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn role_binding_delete(
        &self,
        user: UserId,
        workspace: WorkspaceId,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query!(
            "DELETE FROM role_bindings WHERE user_id = $1 AND workspace_id = $2",
            user.into_uuid(),
            workspace.into_uuid()
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("role_binding_delete"))?;
        Ok(done.rows_affected() > 0)
    }

    /// Every role binding of `user`, by workspace name (what `GET /v1/me` answers).
    ///
    /// # Errors
    /// [`StoreError::Query`] or [`StoreError::Corrupt`].
    pub async fn role_bindings_of_user(
        &self,
        user: UserId,
    ) -> Result<Vec<RoleBindingRecord>, StoreError> {
        let rows = sqlx::query_as!(
            BindingRow,
            "SELECT u.username, w.name AS workspace, b.role, b.created_at FROM role_bindings b \
             JOIN users u ON u.id = b.user_id JOIN workspaces w ON w.id = b.workspace_id \
             WHERE b.user_id = $1 ORDER BY w.name",
            user.into_uuid()
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("role_bindings_of_user"))?;
        rows.into_iter().map(BindingRow::record).collect()
    }

    /// Stores a browser session of `user` (the secret's digest) lasting at most `lifetime`, and
    /// deletes the sessions that have ended (expired, or idle longer than `idle`).
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn session_insert(
        &self,
        secret_sha256: &[u8],
        user: UserId,
        lifetime: std::time::Duration,
        idle: std::time::Duration,
    ) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query_error("session_insert"))?;
        sqlx::query!(
            "DELETE FROM sessions WHERE expires_at <= now() \
             OR last_used_at <= now() - make_interval(secs => $1)",
            idle.as_secs_f64()
        )
        .execute(&mut *tx)
        .await
        .map_err(query_error("session_insert"))?;
        sqlx::query!(
            "INSERT INTO sessions (secret_sha256, user_id, expires_at) \
             VALUES ($1, $2, now() + make_interval(secs => $3))",
            secret_sha256,
            user.into_uuid(),
            lifetime.as_secs_f64()
        )
        .execute(&mut *tx)
        .await
        .map_err(query_error("session_insert"))?;
        tx.commit().await.map_err(query_error("session_insert"))
    }

    /// Who holds the live session with this secret digest (not expired, used within `idle`).
    /// `last_used_at` moves at most once every ten seconds, so a polling portal costs a read per
    /// request, not a durable write.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn session_authenticate(
        &self,
        secret_sha256: &[u8],
        idle: std::time::Duration,
    ) -> Result<Option<Identity>, StoreError> {
        let row = sqlx::query_as!(
            IdentityRow,
            r#"WITH hit AS (
                 SELECT s.secret_sha256, s.last_used_at, u.id, u.username, u.platform_admin
                   FROM sessions s JOIN users u ON u.id = s.user_id
                  WHERE s.secret_sha256 = $1 AND s.expires_at > now()
                    AND s.last_used_at > now() - make_interval(secs => $2)
               ), touched AS (
                 UPDATE sessions SET last_used_at = now()
                  WHERE secret_sha256 IN (SELECT secret_sha256 FROM hit
                                           WHERE last_used_at < now() - interval '10 seconds')
               )
               SELECT id AS "id!", username AS "username!", platform_admin AS "platform_admin!"
                 FROM hit"#,
            secret_sha256,
            idle.as_secs_f64()
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("session_authenticate"))?;
        Ok(row.map(|row| Identity {
            user_id: UserId::from_uuid(row.id),
            username: row.username,
            platform_admin: row.platform_admin,
        }))
    }

    /// Ends the session with this secret digest; whether there was one.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn session_delete(&self, secret_sha256: &[u8]) -> Result<bool, StoreError> {
        let done = sqlx::query!(
            "DELETE FROM sessions WHERE secret_sha256 = $1",
            secret_sha256
        )
        .execute(&self.pool)
        .await
        .map_err(query_error("session_delete"))?;
        Ok(done.rows_affected() > 0)
    }

    /// The workspace's role bindings by username.
    ///
    /// # Errors
    /// [`StoreError::Query`] or [`StoreError::Corrupt`].
    pub async fn role_bindings_list(
        &self,
        workspace: WorkspaceId,
    ) -> Result<Vec<RoleBindingRecord>, StoreError> {
        let rows = sqlx::query_as!(
            BindingRow,
            "SELECT u.username, w.name AS workspace, b.role, b.created_at FROM role_bindings b \
             JOIN users u ON u.id = b.user_id JOIN workspaces w ON w.id = b.workspace_id \
             WHERE b.workspace_id = $1 ORDER BY u.username",
            workspace.into_uuid()
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("role_bindings_list"))?;
        rows.into_iter().map(BindingRow::record).collect()
    }

    /// Up to `limit` workspaces by name after `after` in which `user` has a role.
    ///
    /// # Errors
    /// [`StoreError::Query`].
    pub async fn workspaces_list_for_user(
        &self,
        user: UserId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<WorkspaceRecord>, StoreError> {
        let rows = sqlx::query!(
            "SELECT w.id, w.name, w.created_at FROM workspaces w \
             JOIN role_bindings b ON b.workspace_id = w.id AND b.user_id = $1 \
             WHERE ($2::text IS NULL OR w.name > $2) ORDER BY w.name LIMIT $3",
            user.into_uuid(),
            after,
            i64::from(limit)
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("workspaces_list_for_user"))?;
        Ok(rows
            .into_iter()
            .map(|row| WorkspaceRecord {
                id: WorkspaceId::from_uuid(row.id),
                name: row.name,
                created_at: row.created_at,
            })
            .collect())
    }

    /// Inserts a workspace and makes `admin` its admin, in one transaction.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the name is taken.
    pub async fn workspace_insert_with_admin(
        &self,
        name: &str,
        admin: UserId,
    ) -> Result<WorkspaceRecord, StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(query_error("workspace_insert_with_admin"))?;
        let workspace = sqlx::query!(
            "INSERT INTO workspaces (id, name) VALUES ($1, $2) RETURNING id, name, created_at",
            Uuid::new_v4(),
            name
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict_or("workspace_insert", || {
            format!("workspace {name:?}")
        }))?;
        sqlx::query!(
            "INSERT INTO role_bindings (user_id, workspace_id, role) VALUES ($1, $2, 'admin')",
            admin.into_uuid(),
            workspace.id
        )
        .execute(&mut *tx)
        .await
        .map_err(query_error("workspace_insert_with_admin binding"))?;
        tx.commit()
            .await
            .map_err(query_error("workspace_insert_with_admin commit"))?;
        Ok(WorkspaceRecord {
            id: WorkspaceId::from_uuid(workspace.id),
            name: workspace.name,
            created_at: workspace.created_at,
        })
    }
}
