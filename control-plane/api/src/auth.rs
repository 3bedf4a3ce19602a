//! Wire types of authentication and authorization: token exchange, the JWKS, users, API tokens
//! and role bindings.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /v1/auth/token`: what is exchanged for an access token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "grant_type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TokenRequest {
    /// A username and password.
    Password {
        /// The username.
        username: String,
        /// The password.
        password: String,
    },
    /// An API token (from `POST /v1/users/{username}/api-tokens`, or the admin token file).
    ApiToken {
        /// The API token's secret.
        token: String,
    },
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenRequest::Password { username, .. } => f
                .debug_struct("Password")
                .field("username", username)
                .finish_non_exhaustive(),
            TokenRequest::ApiToken { .. } => f.write_str("ApiToken { .. }"),
        }
    }
}

/// A short-lived access token (a JWT) to send as `Authorization: Bearer <access_token>`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// The JWT.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// `POST /v1/auth/oauth2/token`: an OAuth 2.0 client-credentials request (RFC 6749 §4.4), sent
/// as `application/x-www-form-urlencoded`, as the Java client's `OAuthBearerLoginCallbackHandler`
/// and librdkafka's `sasl.oauthbearer.method=oidc` send it. The client is an hdi user: its id is
/// the username and its secret one of that user's API tokens, in HTTP Basic authentication
/// (RFC 6749 §2.3.1) or in the body, not both.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClientCredentialsRequest {
    /// `client_credentials`.
    pub grant_type: String,
    /// The username, when it is not in the `Authorization: Basic` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// An API token of that user, when it is not in the `Authorization: Basic` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Not supported (an access token carries its user's roles): absent or empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl std::fmt::Debug for ClientCredentialsRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentialsRequest")
            .field("grant_type", &self.grant_type)
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// The error codes of an OAuth 2.0 token endpoint (RFC 6749 §5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OAuthErrorCode {
    /// A parameter is missing, repeated or malformed, or the body is not form-encoded.
    InvalidRequest,
    /// Unknown client, a secret that is not an unexpired API token of that user, or no client
    /// authentication at all (answered 401).
    InvalidClient,
    /// `grant_type` is not `client_credentials`.
    UnsupportedGrantType,
    /// A scope was asked for.
    InvalidScope,
}

/// An OAuth 2.0 error answer (RFC 6749 §5.2), what OAuth clients parse (not a problem document).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OAuthError {
    /// The error code.
    pub error: OAuthErrorCode,
    /// What was wrong, for a person.
    pub error_description: String,
}

/// One public key of the JWKS (RFC 7517; Ed25519 keys are `OKP`, RFC 8037).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Jwk {
    /// Key type: `OKP`.
    pub kty: String,
    /// Curve: `Ed25519`.
    pub crv: String,
    /// The public key, unpadded base64url.
    pub x: String,
    /// Key id, as in the tokens' `kid` header.
    pub kid: String,
    /// Algorithm: `EdDSA`.
    pub alg: String,
    /// Use: `sig`.
    #[serde(rename = "use")]
    pub key_use: String,
}

/// `GET /.well-known/jwks.json`: the keys access tokens are signed with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

/// `POST /v1/users`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserCreate {
    /// 1-64 lowercase letters, digits, `.`, `_`, `-`.
    pub username: String,
    /// At least 12 characters.
    pub password: String,
}

impl std::fmt::Debug for UserCreate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserCreate")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct User {
    /// Identity (the `sub` of its access tokens).
    pub id: Uuid,
    /// Unique name.
    pub username: String,
    /// May do everything in every workspace.
    pub platform_admin: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// A page of users.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserList {
    /// Users by name.
    pub items: Vec<User>,
    /// Pass as `page_token` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// `POST /v1/users/{username}/api-tokens`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiTokenCreate {
    /// Unique per user: 1-64 letters, digits, `.`, `_`, `-`.
    pub name: String,
    /// Lifetime in days (1-3650); absent: 90. Every API token expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
}

/// An API token as listed: never its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiToken {
    /// Identity.
    pub id: Uuid,
    /// Its name (unique per user).
    pub name: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// When it stops working; absent: never (tokens made before expiry was required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// When it last authenticated a request; absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A user's API tokens, by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiTokenList {
    /// The tokens.
    pub items: Vec<ApiToken>,
}

/// A created API token. The secret is shown only in this answer.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiTokenCreated {
    /// Identity.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its user.
    pub username: String,
    /// The secret: exchange it at `POST /v1/auth/token` or send it as a bearer token.
    pub token: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// When it stops working; absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for ApiTokenCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiTokenCreated")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A role in a workspace; each includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads clusters, operations and topics.
    Viewer,
    /// Also creates, changes and deletes clusters and topics.
    Operator,
    /// Also manages the workspace's role bindings.
    Admin,
}

/// `PUT /v1/workspaces/{ws}/role-bindings/{username}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBindingPut {
    /// The role to grant.
    pub role: Role,
}

/// A user's role in a workspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoleBinding {
    /// The workspace.
    pub workspace: String,
    /// The user.
    pub username: String,
    /// The role.
    pub role: Role,
    /// Granted (or last changed).
    pub created_at: DateTime<Utc>,
}

/// A workspace's role bindings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoleBindingList {
    /// Bindings by username.
    pub items: Vec<RoleBinding>,
}

/// `POST /v1/auth/session`: the portal's login, with a username and password or with an API
/// token (how the built-in platform admin, which has no password, signs in).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged, deny_unknown_fields)]
pub enum SessionCreate {
    /// A username and password.
    Password {
        /// The username.
        username: String,
        /// The password.
        password: String,
    },
    /// An API token (e.g. the admin token `cargo xtask up` prints).
    ApiToken {
        /// The token's secret.
        api_token: String,
    },
}

impl std::fmt::Debug for SessionCreate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionCreate::Password { username, .. } => f
                .debug_struct("SessionCreate::Password")
                .field("username", username)
                .finish_non_exhaustive(),
            SessionCreate::ApiToken { .. } => f
                .debug_struct("SessionCreate::ApiToken")
                .finish_non_exhaustive(),
        }
    }
}

/// The caller's role in one workspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkspaceRole {
    /// The workspace.
    pub workspace: String,
    /// The role.
    pub role: Role,
}

/// `GET /v1/me`: who the caller is and what it may do, the one source a client shows its
/// controls from (the server still checks every call).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Me {
    /// The username.
    pub username: String,
    /// A platform admin may do everything in every workspace, with or without a role there.
    pub platform_admin: bool,
    /// The caller's role in each workspace where it has one, by workspace name.
    pub workspaces: Vec<WorkspaceRole>,
}
