//! Domain types of users, API tokens and role bindings.

use chrono::{DateTime, Utc};

use super::{ApiTokenId, UserId};
use crate::auth::{Identity, Role};

/// A user as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    /// Identity (the JWT `sub`).
    pub id: UserId,
    /// Unique name.
    pub username: String,
    /// argon2id PHC string; `None` when the user cannot log in with a password.
    pub password_hash: Option<String>,
    /// May do everything everywhere.
    pub platform_admin: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
}

impl UserRecord {
    /// The identity this user authenticates as.
    pub fn identity(&self) -> Identity {
        Identity {
            user_id: self.id,
            username: self.username.clone(),
            platform_admin: self.platform_admin,
        }
    }
}

/// An API token's metadata (its secret is never stored, only its SHA-256).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiTokenRecord {
    /// Identity.
    pub id: ApiTokenId,
    /// Its user.
    pub user_id: UserId,
    /// Unique per user.
    pub name: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// When it stops working; `None`: never.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it last authenticated a request.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A user's role in a workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleBindingRecord {
    /// The user's name.
    pub username: String,
    /// The workspace's name.
    pub workspace: String,
    /// The role.
    pub role: Role,
    /// When granted (or last changed).
    pub created_at: DateTime<Utc>,
}
