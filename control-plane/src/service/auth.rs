//! Authentication and authorization rules: the signing key at start-up, token exchange, who a
//! bearer token is, users, API tokens and role bindings, and the checks every other service call
//! makes ([`Service::authorize`], [`require_platform_admin`]).
//!
//! Access to a workspace is decided from the database on every call (roles are never taken from
//! a token, so revoking one is immediate). A caller without a role in a workspace is told it does
//! not exist (`not_found`); a caller whose role is too weak is told which role it needs
//! (`forbidden`). Platform admins may do everything.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::node::PageRequest;
use super::throttle::Throttled;
use super::{ErrorCode, Service, ServiceError};
use crate::auth::jwt::{IssuedToken, KeyMaterial, PublicJwk, TokenKeys, TokenSettings};
use crate::auth::password::{self, MAX_PASSWORD_LEN, MIN_PASSWORD_LEN};
use crate::auth::{self, AuthError, Identity, Role};
use crate::model::{ApiTokenRecord, RoleBindingRecord, UserRecord, WorkspaceRecord};
use crate::store::StoreError;

/// The built-in platform admin whose API token is the `--admin-token-file` secret.
pub const BOOTSTRAP_ADMIN: &str = "admin";

/// The built-in identity of the Kubernetes operator: the only caller that may change clusters
/// custom resources own. It cannot log in, and no user may be created under its name.
pub const OPERATOR_USER: &str = "hdi-operator";
/// The name of that API token.
const BOOTSTRAP_TOKEN: &str = "admin-token-file";
/// The longest lifetime of an API token.
const MAX_TOKEN_DAYS: u32 = 3650;
/// The lifetime of an API token whose creator gave none: every token expires, so a short-lived
/// access token cannot mint a permanent credential.
const DEFAULT_TOKEN_DAYS: u32 = 90;
/// The largest page of users.
const MAX_PAGE: u32 = 500;
/// The longest a portal session lasts, however busy.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// A portal session unused this long has ended.
pub const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);

/// What a caller offers in exchange for an access token.
#[derive(Clone, PartialEq, Eq)]
pub enum Grant {
    /// A username and password.
    Password {
        /// The username.
        username: String,
        /// The password.
        password: String,
    },
    /// An API token secret.
    ApiToken {
        /// The secret.
        token: String,
    },
    /// OAuth 2.0 client credentials (RFC 6749 §4.4): a username and one of its API tokens.
    ClientCredentials {
        /// The username.
        client_id: String,
        /// An API token secret of that user.
        client_secret: String,
    },
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Grant::Password { username, .. } => f
                .debug_struct("Password")
                .field("username", username)
                .finish_non_exhaustive(),
            Grant::ApiToken { .. } => f.write_str("ApiToken { .. }"),
            Grant::ClientCredentials { client_id, .. } => f
                .debug_struct("ClientCredentials")
                .field("client_id", client_id)
                .finish_non_exhaustive(),
        }
    }
}

/// A created API token: its record and the secret, shown once.
#[derive(Clone, PartialEq, Eq)]
pub struct NewApiToken {
    /// The stored metadata.
    pub record: ApiTokenRecord,
    /// The secret (never stored).
    pub secret: String,
}

impl std::fmt::Debug for NewApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewApiToken")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

fn invalid(field: &str, message: &str) -> ServiceError {
    ServiceError::InvalidField {
        field: field.to_owned(),
        message: message.to_owned(),
    }
}

pub(super) fn internal(context: &'static str, message: String) -> ServiceError {
    ServiceError::Internal(StoreError::Corrupt {
        column: context,
        value: message,
    })
}

/// `forbidden` unless the caller is a platform admin.
///
/// # Errors
/// [`ServiceError::Forbidden`].
pub fn require_platform_admin(caller: &Identity) -> Result<(), ServiceError> {
    if caller.platform_admin {
        Ok(())
    } else {
        Err(ServiceError::Forbidden {
            message: "this needs a platform admin".to_owned(),
        })
    }
}

/// Usernames: 1-64 of lowercase letters, digits, `.`, `_`, `-`, starting with a letter or digit.
fn check_username(name: &str) -> Result<(), ServiceError> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 64
        && bytes
            .first()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.iter().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "username",
            "must be 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
        ))
    }
}

fn check_password(password: &str) -> Result<(), ServiceError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_LEN {
        return Err(invalid(
            "password",
            &format!("must be at least {MIN_PASSWORD_LEN} characters"),
        ));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(invalid(
            "password",
            &format!("must be at most {MAX_PASSWORD_LEN} bytes"),
        ));
    }
    Ok(())
}

fn check_token_name(name: &str) -> Result<(), ServiceError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "name",
            "must be 1-64 letters, digits, '.', '_' or '-'",
        ))
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ServiceError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| internal("password hashing task", e.to_string()))
}

impl Service {
    /// Loads the active signing key, generating and storing one if there is none (several
    /// control planes starting at once agree on one), and makes `admin_token` the API token of
    /// the built-in platform admin [`BOOTSTRAP_ADMIN`].
    ///
    /// # Errors
    /// [`ServiceError::Unavailable`]/[`ServiceError::Internal`] when the database fails or a
    /// stored key is unusable.
    pub async fn auth_start(
        &self,
        settings: TokenSettings,
        admin_token: &str,
    ) -> Result<(), ServiceError> {
        let mut generated = false;
        let keys = loop {
            let (active, others) = self.store.signing_keys().await?;
            if let Some(active) = active {
                break TokenKeys::new(settings, &active, &others)
                    .map_err(|e| internal("signing_keys", crate::error_chain(&e)))?;
            }
            if generated {
                return Err(internal(
                    "signing_keys",
                    "no active key after inserting one".to_owned(),
                ));
            }
            let key = KeyMaterial::generate()
                .map_err(|e| internal("signing_keys", crate::error_chain(&e)))?;
            self.store.signing_key_insert_if_none(&key).await?;
            generated = true;
        };
        tracing::info!(kid = ?keys.jwks().first().map(|k| &k.kid), "JWT signing key loaded");
        if let Ok(mut slot) = self.tokens.write() {
            *slot = Some(Arc::new(keys));
        }
        // Control planes starting together may collide on the unique indexes: try again.
        let digest = auth::digest(admin_token);
        let mut attempt = 0;
        loop {
            match self
                .store
                .bootstrap_admin(BOOTSTRAP_ADMIN, BOOTSTRAP_TOKEN, &digest)
                .await
            {
                Ok(_) => return Ok(()),
                Err(error) if attempt < 3 => {
                    tracing::warn!(%error, "bootstrap of the admin user failed; retrying");
                    attempt += 1;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    fn token_keys(&self) -> Result<Arc<TokenKeys>, ServiceError> {
        self.tokens
            .read()
            .ok()
            .and_then(|slot| slot.clone())
            .ok_or_else(|| internal("signing_keys", "auth_start has not run".to_owned()))
    }

    /// The identity the Kubernetes operator acts as ([`OPERATOR_USER`], a platform admin that
    /// cannot log in), created if missing.
    ///
    /// # Errors
    /// The store failed.
    pub async fn operator_identity(&self) -> Result<Identity, ServiceError> {
        Ok(self.store.system_user(OPERATOR_USER).await?)
    }

    /// The public keys tokens are signed with, for `/.well-known/jwks.json`.
    ///
    /// # Errors
    /// `internal` before [`Service::auth_start`].
    pub fn jwks(&self) -> Result<Vec<PublicJwk>, ServiceError> {
        Ok(self.token_keys()?.jwks().to_vec())
    }

    /// Exchanges a password or an API token for a short-lived access token.
    ///
    /// # Errors
    /// `invalid_credentials` (the same for an unknown user, a wrong password and an unknown or
    /// expired API token).
    pub async fn token_issue(&self, grant: Grant) -> Result<IssuedToken, ServiceError> {
        let keys = self.token_keys()?;
        let identity = match grant {
            Grant::Password { username, password } => {
                self.password_login(username, password, "auth.token")
                    .await?
            }
            Grant::ApiToken { token } => {
                match self
                    .store
                    .api_token_authenticate(&auth::digest(&token))
                    .await?
                {
                    Some(identity) => identity,
                    None => {
                        tracing::warn!("token exchange refused: unknown or expired API token");
                        return Err(ServiceError::InvalidCredentials);
                    }
                }
            }
            Grant::ClientCredentials {
                client_id,
                client_secret,
            } => {
                // A digest and one indexed lookup: no password hash, so no throttle is needed
                // to keep a flood cheap. The token must be the named user's own (compared
                // whole; only what is logged is bounded).
                let found = self
                    .store
                    .api_token_authenticate(&auth::digest(&client_secret))
                    .await?;
                match found {
                    Some(identity) if identity.username == client_id => identity,
                    _ => {
                        let client_id: String = client_id.chars().take(64).collect();
                        tracing::warn!(client_id = %client_id.escape_debug(), "OAuth client credentials refused: not an unexpired API token of that user");
                        let error = ServiceError::InvalidCredentials;
                        let resource = format!("users/{client_id}");
                        self.audit(&client_id, "auth.oauth2_token", &resource, &Err(&error))
                            .await;
                        return Err(error);
                    }
                }
            }
        };
        keys.issue(identity.user_id, &identity.username, Utc::now().timestamp())
            .map_err(|e| internal("signing_keys", crate::error_chain(&e)))
    }

    /// Checks a username and password (throttled per username and in total; failures audited as
    /// `action`): the user's identity.
    ///
    /// # Errors
    /// `rate_limited`, `invalid_credentials`, or a store failure.
    async fn password_login(
        &self,
        username: String,
        password: String,
        action: &str,
    ) -> Result<Identity, ServiceError> {
        // Bounded before it is logged or looked up: the name is outside input.
        let username: String = username.chars().take(64).collect();
        let throttled = |t: Throttled| ServiceError::RateLimited {
            retry_after_secs: t.retry_after.as_secs_f64().ceil() as u64,
            message: if t.locked_out {
                "too many failed logins for this username; retry later".to_owned()
            } else {
                "too many logins at once; retry later".to_owned()
            },
        };
        if let Err(refused) = self.logins.check(&username, Instant::now()) {
            let error = throttled(refused);
            let resource = format!("users/{username}");
            self.audit(&username, action, &resource, &Err(&error)).await;
            return Err(error);
        }
        // A slot before any work: a flood waits briefly, then is refused, never queued.
        let slot = self.logins.hashing_slot().await.map_err(throttled)?;
        let user = if check_username(&username).is_ok() {
            self.store.user_by_name(&username).await?
        } else {
            None
        };
        let stored = user.as_ref().and_then(|u| u.password_hash.clone());
        let password = password.chars().take(MAX_PASSWORD_LEN).collect::<String>();
        let ok = blocking(move || {
            let ok = password::verify(&password, stored.as_deref());
            drop(slot);
            ok
        })
        .await?;
        match user {
            Some(user) if ok => {
                self.logins.succeeded(&username);
                Ok(user.identity())
            }
            _ => {
                self.logins.failed(&username, Instant::now());
                tracing::warn!(username = %username.escape_debug(), "token exchange refused: bad username or password");
                let error = ServiceError::InvalidCredentials;
                let resource = format!("users/{username}");
                self.audit(&username, action, &resource, &Err(&error)).await;
                Err(error)
            }
        }
    }

    /// Logs a user in for the portal with a password or an API token: a new session's secret
    /// (to be set as an HttpOnly cookie; only its digest is stored) and who the user is. Audited
    /// as `auth.session`, refusals too.
    ///
    /// # Errors
    /// `rate_limited`, `invalid_credentials`, or a store failure.
    pub async fn session_create(&self, grant: Grant) -> Result<(String, Identity), ServiceError> {
        let identity = match grant {
            Grant::Password { username, password } => {
                self.password_login(username, password, "auth.session")
                    .await?
            }
            // Not a portal login (the OAuth endpoint's grant).
            Grant::ClientCredentials { .. } => return Err(ServiceError::InvalidCredentials),
            Grant::ApiToken { token } => {
                match self
                    .store
                    .api_token_authenticate(&auth::digest(&token))
                    .await?
                {
                    Some(identity) => identity,
                    None => {
                        tracing::warn!("portal login refused: unknown or expired API token");
                        let error = ServiceError::InvalidCredentials;
                        self.audit("-", "auth.session", "users/-", &Err(&error))
                            .await;
                        return Err(error);
                    }
                }
            }
        };
        let secret = auth::new_session_secret()
            .map_err(|e| internal("session", format!("no random bytes: {e}")))?;
        self.store
            .session_insert(
                &auth::digest(&secret),
                identity.user_id,
                SESSION_LIFETIME,
                SESSION_IDLE,
            )
            .await?;
        let resource = format!("users/{}", identity.username);
        self.audit(&identity.username, "auth.session", &resource, &Ok(()))
            .await;
        Ok((secret, identity))
    }

    /// Who holds the live session with this cookie secret.
    ///
    /// # Errors
    /// [`ServiceError::Unauthenticated`] for no live session; database failures as usual.
    pub async fn session_authenticate(&self, secret: &str) -> Result<Identity, ServiceError> {
        self.store
            .session_authenticate(&auth::digest(secret), SESSION_IDLE)
            .await?
            .ok_or(ServiceError::Unauthenticated(AuthError::UnknownSession))
    }

    /// Ends the session with this cookie secret (logout); ending an ended one is not an error.
    ///
    /// # Errors
    /// Database failures.
    pub async fn session_end(&self, caller: &Identity, secret: &str) -> Result<(), ServiceError> {
        self.store.session_delete(&auth::digest(secret)).await?;
        let resource = format!("users/{}", caller.username);
        self.audit(&caller.username, "auth.logout", &resource, &Ok(()))
            .await;
        Ok(())
    }

    /// The caller and its role in every workspace where it has one (`GET /v1/me`): what a
    /// client needs to show only the controls the server will accept.
    ///
    /// # Errors
    /// Database failures.
    pub async fn me(&self, caller: &Identity) -> Result<Vec<RoleBindingRecord>, ServiceError> {
        Ok(self.store.role_bindings_of_user(caller.user_id).await?)
    }

    /// Who a bearer token is: a JWT of ours (whose user still exists) or, for a token that is not
    /// JWT-shaped, an unexpired API token.
    ///
    /// # Errors
    /// [`ServiceError::Unauthenticated`] with the reason; database failures as usual.
    pub async fn authenticate(&self, token: &str) -> Result<Identity, ServiceError> {
        if auth::is_jwt(token) {
            let keys = self.token_keys()?;
            let (user, _) = keys
                .verify(token)
                .map_err(|reason| ServiceError::Unauthenticated(AuthError::InvalidJwt(reason)))?;
            match self.store.user_by_id(user).await? {
                Some(record) => Ok(record.identity()),
                None => Err(ServiceError::Unauthenticated(AuthError::UnknownUser(user))),
            }
        } else {
            self.store
                .api_token_authenticate(&auth::digest(token))
                .await?
                .ok_or(ServiceError::Unauthenticated(AuthError::UnknownApiToken))
        }
    }

    /// The workspace if the caller holds at least `needed` in it.
    ///
    /// # Errors
    /// `not_found` when the workspace does not exist or the caller has no role in it;
    /// `forbidden` when its role is weaker than `needed`.
    pub async fn authorize(
        &self,
        caller: &Identity,
        workspace: &str,
        needed: Role,
    ) -> Result<WorkspaceRecord, ServiceError> {
        let not_found = || ServiceError::NotFound {
            what: format!("workspace {workspace:?}"),
        };
        let ws = self
            .store
            .workspace_get(workspace)
            .await?
            .ok_or_else(not_found)?;
        if caller.platform_admin {
            return Ok(ws);
        }
        match self.store.role_binding_get(caller.user_id, ws.id).await? {
            None => Err(not_found()),
            Some(role) if role >= needed => Ok(ws),
            Some(role) => Err(ServiceError::Forbidden {
                message: format!(
                    "this needs the {} role in workspace {workspace:?}; {} has {}",
                    needed.as_str(),
                    caller.username,
                    role.as_str()
                ),
            }),
        }
    }

    /// Creates a user (platform admins only).
    ///
    /// # Errors
    /// `forbidden`, `invalid_field` (`username`, `password`), `user_exists`.
    pub async fn user_create(
        &self,
        caller: &Identity,
        username: &str,
        password: &str,
    ) -> Result<UserRecord, ServiceError> {
        let result = async {
            require_platform_admin(caller)?;
            check_username(username)?;
            if username == OPERATOR_USER {
                return Err(ServiceError::Conflict {
                    code: ErrorCode::UserExists,
                    message: format!("{OPERATOR_USER:?} is built in"),
                });
            }
            check_password(password)?;
            // A Kafka user of that name would share the new user's Kafka principal.
            if self.store.kafka_user_name_used(username).await? {
                return Err(ServiceError::Conflict {
                    code: ErrorCode::UserExists,
                    message: format!(
                        "a Kafka user is named {username:?}: it would share this user's Kafka principal"
                    ),
                });
            }
            let password = password.to_owned();
            let hash = blocking(move || password::hash(&password))
                .await?
                .map_err(|e| internal("users.password_hash", crate::error_chain(&e)))?;
            match self.store.user_insert(username, &hash, false).await {
                Ok(user) => Ok(user),
                Err(StoreError::Conflict { what }) => Err(ServiceError::Conflict {
                    code: ErrorCode::UserExists,
                    message: format!("{what} already exists"),
                }),
                Err(other) => Err(other.into()),
            }
        }
        .await;
        self.audited(
            &caller.username,
            "user.create",
            format!("users/{username}"),
            result,
        )
        .await
    }

    /// A page of users by name (platform admins only).
    ///
    /// # Errors
    /// `forbidden`, `invalid_field`.
    pub async fn users_list(
        &self,
        caller: &Identity,
        page: PageRequest,
    ) -> Result<(Vec<UserRecord>, Option<String>), ServiceError> {
        require_platform_admin(caller)?;
        let size = match page.page_size {
            None => 100,
            Some(size) if (1..=MAX_PAGE).contains(&size) => size,
            Some(_) => {
                return Err(invalid(
                    "page_size",
                    &format!("must be between 1 and {MAX_PAGE}"),
                ));
            }
        };
        let after = page
            .page_token
            .as_deref()
            .map(super::node::decode_page_token)
            .transpose()?;
        let mut items = self.store.users_list(after.as_deref(), size + 1).await?;
        let next = if items.len() > size as usize {
            items.truncate(size as usize);
            items
                .last()
                .map(|u| super::node::encode_page_token(&u.username))
        } else {
            None
        };
        Ok((items, next))
    }

    /// Deletes a user with its API tokens and role bindings (platform admins only; the built-in
    /// admin cannot be deleted). Its access tokens stop working at once.
    ///
    /// # Errors
    /// `forbidden`, `not_found`, `user_builtin`.
    pub async fn user_delete(&self, caller: &Identity, username: &str) -> Result<(), ServiceError> {
        let result = async {
            require_platform_admin(caller)?;
            if username == BOOTSTRAP_ADMIN {
                return Err(ServiceError::Conflict {
                    code: ErrorCode::UserBuiltin,
                    message: format!("{BOOTSTRAP_ADMIN:?} is built in and cannot be deleted"),
                });
            }
            if self.store.user_delete(username).await? {
                Ok(())
            } else {
                Err(ServiceError::NotFound {
                    what: format!("user {username:?}"),
                })
            }
        }
        .await;
        self.audited(
            &caller.username,
            "user.delete",
            format!("users/{username}"),
            result,
        )
        .await
    }

    /// Creates an API token for `username` (platform admins, or the user for themself); the
    /// secret is returned once.
    ///
    /// # Errors
    /// `forbidden`, `not_found`, `invalid_field` (`name`, `expires_in_days`), `api_token_exists`.
    pub async fn api_token_create(
        &self,
        caller: &Identity,
        username: &str,
        name: &str,
        expires_in_days: Option<u32>,
    ) -> Result<NewApiToken, ServiceError> {
        let result =
            async {
                if !caller.platform_admin && caller.username != username {
                    return Err(ServiceError::Forbidden {
                        message: "only a platform admin may create API tokens for another user"
                            .to_owned(),
                    });
                }
                check_token_name(name)?;
                let expires_at = match expires_in_days.or(Some(DEFAULT_TOKEN_DAYS)) {
                    None => None,
                    Some(days) if (1..=MAX_TOKEN_DAYS).contains(&days) => {
                        Some(Utc::now() + Duration::from_secs(u64::from(days) * 86_400))
                    }
                    Some(_) => {
                        return Err(invalid(
                            "expires_in_days",
                            &format!("must be between 1 and {MAX_TOKEN_DAYS}"),
                        ));
                    }
                };
                let user = self.store.user_by_name(username).await?.ok_or_else(|| {
                    ServiceError::NotFound {
                        what: format!("user {username:?}"),
                    }
                })?;
                let secret = auth::new_api_token_secret()
                    .map_err(|e| internal("api_tokens.secret", e.to_string()))?;
                match self
                    .store
                    .api_token_insert(user.id, name, &auth::digest(&secret), expires_at)
                    .await
                {
                    Ok(record) => Ok(NewApiToken { record, secret }),
                    Err(StoreError::Conflict { what }) => Err(ServiceError::Conflict {
                        code: ErrorCode::ApiTokenExists,
                        message: format!("{what} already exists for user {username:?}"),
                    }),
                    Err(other) => Err(other.into()),
                }
            }
            .await;
        self.audited(
            &caller.username,
            "api_token.create",
            format!("users/{username}/api-tokens/{name}"),
            result,
        )
        .await
    }

    /// The API tokens of `username` (platform admins, or the user for themself), never their
    /// secrets.
    ///
    /// # Errors
    /// `forbidden`, `not_found`.
    pub async fn api_tokens_list(
        &self,
        caller: &Identity,
        username: &str,
    ) -> Result<Vec<ApiTokenRecord>, ServiceError> {
        let user = self.token_owner(caller, username, "list").await?;
        Ok(self.store.api_tokens_of(user.id).await?)
    }

    /// Revokes the API token `name` of `username` (platform admins, or the user for themself):
    /// it stops working at once (access tokens it was exchanged for live out their minutes).
    ///
    /// # Errors
    /// `forbidden`, `not_found`.
    pub async fn api_token_revoke(
        &self,
        caller: &Identity,
        username: &str,
        name: &str,
    ) -> Result<(), ServiceError> {
        let result = async {
            let user = self.token_owner(caller, username, "revoke").await?;
            if self.store.api_token_delete(user.id, name).await? {
                Ok(())
            } else {
                Err(ServiceError::NotFound {
                    what: format!("API token {name:?} of user {username:?}"),
                })
            }
        }
        .await;
        self.audited(
            &caller.username,
            "api_token.revoke",
            format!("users/{username}/api-tokens/{name}"),
            result,
        )
        .await
    }

    async fn token_owner(
        &self,
        caller: &Identity,
        username: &str,
        verb: &str,
    ) -> Result<crate::model::UserRecord, ServiceError> {
        if !caller.platform_admin && caller.username != username {
            return Err(ServiceError::Forbidden {
                message: format!("only a platform admin may {verb} another user's API tokens"),
            });
        }
        self.store
            .user_by_name(username)
            .await?
            .ok_or_else(|| ServiceError::NotFound {
                what: format!("user {username:?}"),
            })
    }

    /// Grants `username` `role` in the workspace (platform admins and the workspace's admins).
    ///
    /// # Errors
    /// `not_found` (workspace or user), `forbidden`.
    pub async fn role_binding_put(
        &self,
        caller: &Identity,
        workspace: &str,
        username: &str,
        role: Role,
    ) -> Result<RoleBindingRecord, ServiceError> {
        let result = async {
            let ws = self.authorize(caller, workspace, Role::Admin).await?;
            let user = self.user_named(username).await?;
            self.store.role_binding_put(user.id, ws.id, role).await?;
            Ok(RoleBindingRecord {
                username: user.username,
                workspace: ws.name,
                role,
                created_at: Utc::now(),
            })
        }
        .await;
        self.audited(
            &caller.username,
            "role_binding.put",
            format!("workspaces/{workspace}/role-bindings/{username}"),
            result,
        )
        .await
    }

    /// Removes `username`'s role in the workspace (platform admins and the workspace's admins).
    ///
    /// # Errors
    /// `not_found` (workspace, user or binding), `forbidden`.
    pub async fn role_binding_delete(
        &self,
        caller: &Identity,
        workspace: &str,
        username: &str,
    ) -> Result<(), ServiceError> {
        let result = async {
            let ws = self.authorize(caller, workspace, Role::Admin).await?;
            let user = self.user_named(username).await?;
            if self.store.role_binding_delete(user.id, ws.id).await? {
                Ok(())
            } else {
                Err(ServiceError::NotFound {
                    what: format!("role binding of {username:?} in workspace {workspace:?}"),
                })
            }
        }
        .await;
        self.audited(
            &caller.username,
            "role_binding.delete",
            format!("workspaces/{workspace}/role-bindings/{username}"),
            result,
        )
        .await
    }

    /// The workspace's role bindings (platform admins and the workspace's admins).
    ///
    /// # Errors
    /// `not_found`, `forbidden`.
    pub async fn role_bindings_list(
        &self,
        caller: &Identity,
        workspace: &str,
    ) -> Result<Vec<RoleBindingRecord>, ServiceError> {
        let ws = self.authorize(caller, workspace, Role::Admin).await?;
        Ok(self.store.role_bindings_list(ws.id).await?)
    }

    async fn user_named(&self, username: &str) -> Result<UserRecord, ServiceError> {
        self.store
            .user_by_name(username)
            .await?
            .ok_or_else(|| ServiceError::NotFound {
                what: format!("user {username:?}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::model::UserId;

    #[test]
    fn usernames_passwords_and_token_names_are_checked() {
        for good in ["alice", "a", "bob.smith", "ci-bot_2", "0day"] {
            assert!(check_username(good).is_ok(), "{good}");
        }
        for bad in ["", "Alice", "-x", ".x", "a b", "a/b", &"x".repeat(65)] {
            assert!(check_username(bad).is_err(), "{bad}");
        }
        assert!(check_password("short").is_err());
        assert!(check_password("exactly12chr").is_ok());
        assert!(check_password(&"x".repeat(MAX_PASSWORD_LEN + 1)).is_err());
        assert!(check_token_name("ci").is_ok());
        assert!(check_token_name("a/b").is_err());
        assert!(check_token_name("").is_err());
    }

    #[test]
    fn only_platform_admins_pass_the_platform_check() {
        let mut who = Identity {
            user_id: UserId::from_uuid(Uuid::nil()),
            username: "u".into(),
            platform_admin: false,
        };
        assert!(matches!(
            require_platform_admin(&who),
            Err(ServiceError::Forbidden { .. })
        ));
        who.platform_admin = true;
        assert!(require_platform_admin(&who).is_ok());
    }

    #[test]
    fn grants_do_not_print_secrets() {
        let grant = Grant::Password {
            username: "alice".into(),
            password: "hunter2hunter2".into(),
        };
        assert!(!format!("{grant:?}").contains("hunter2"));
        let grant = Grant::ApiToken {
            token: "hdi_secret".into(),
        };
        assert!(!format!("{grant:?}").contains("secret"));
        let grant = Grant::ClientCredentials {
            client_id: "alice".into(),
            client_secret: "hdi_secret".into(),
        };
        let shown = format!("{grant:?}");
        assert!(
            shown.contains("alice") && !shown.contains("hdi_secret"),
            "{shown}"
        );
    }
}
