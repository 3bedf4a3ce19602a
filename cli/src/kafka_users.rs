//! `hdictl kafka-user` (Kafka users of secured Kafka clusters), `hdictl cluster client-config`
//! (a ready client configuration for librdkafka/kcat, the Java client or kafkajs), and the
//! librdkafka settings `hdictl topic produce|consume` use to reach a secured cluster.
//!
//! Passwords are shown once by the control plane: `create` and `rotate` print them (or, with
//! `--password-file`, write them to a new 0600 file and print nothing secret). Commands that
//! speak Kafka take `--user NAME` with the password from `--password-file FILE` or the
//! environment variable `HDI_KAFKA_PASSWORD`, never from the command line.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand, ValueEnum};
use hdi_api::{
    Client, Cluster, ClusterKind, KafkaAcl, KafkaOperation, KafkaPatternType, KafkaPermission,
    KafkaQuotas, KafkaResourceType, KafkaUser, KafkaUserCreate, KafkaUserCredential,
    KafkaUserPatch,
};

use crate::Format;
use crate::output::{Table, print_value};

/// Who a Kafka client authenticates as.
#[derive(Debug, Clone, Args)]
pub struct LoginArgs {
    /// The Kafka user (see `hdictl kafka-user`) to authenticate as on a secured cluster
    /// (default: yourself, with the context's token, where the cluster offers OAUTHBEARER).
    #[arg(long = "user")]
    pub user: Option<String>,
    /// File holding the user's password (default: the HDI_KAFKA_PASSWORD variable).
    #[arg(long)]
    pub password_file: Option<PathBuf>,
}

impl LoginArgs {
    /// The user and password, if a user is named.
    ///
    /// # Errors
    /// A user without a readable password.
    pub fn login(&self) -> anyhow::Result<Option<(String, String)>> {
        let Some(user) = &self.user else {
            return Ok(None);
        };
        let password = match &self.password_file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --password-file {}", path.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
            None => std::env::var("HDI_KAFKA_PASSWORD").map_err(|_| {
                anyhow::anyhow!(
                    "--user {user} needs its password: --password-file FILE or HDI_KAFKA_PASSWORD"
                )
            })?,
        };
        if password.is_empty() {
            bail!("the password of Kafka user {user} is empty");
        }
        Ok(Some((user.clone(), password)))
    }
}

/// An hdi access token as librdkafka's OAUTHBEARER token: the person's own identity on a
/// cluster with OAUTHBEARER (principal `User:<username>`, ACLs from their roles).
#[derive(Clone)]
pub struct Oauth {
    token: String,
    principal: String,
    expires_ms: i64,
}

impl std::fmt::Debug for Oauth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oauth")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

impl Oauth {
    /// Reads the principal (`name`) and expiry (`exp`) of a JWT; the signature is the
    /// broker's to check.
    ///
    /// # Errors
    /// Not a JWT with those claims.
    pub fn from_jwt(jwt: &str) -> anyhow::Result<Oauth> {
        use base64::Engine as _;
        let payload = jwt
            .split('.')
            .nth(1)
            .context("the access token is not a JWT")?;
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload.trim_end_matches('='))
                .context("the access token's claims are not base64url")?,
        )
        .context("the access token's claims are not JSON")?;
        let principal = claims["name"]
            .as_str()
            .context("the access token has no name claim")?
            .to_owned();
        let exp = claims["exp"]
            .as_i64()
            .context("the access token has no exp claim")?;
        Ok(Oauth {
            token: jwt.to_owned(),
            principal,
            expires_ms: exp.saturating_mul(1000),
        })
    }

    fn kafka_token(&self) -> rdkafka::client::OAuthToken {
        rdkafka::client::OAuthToken {
            token: self.token.clone(),
            principal_name: self.principal.clone(),
            lifetime_ms: self.expires_ms,
        }
    }

    /// librdkafka's token callback: this token, or an error when there is none.
    ///
    /// # Errors
    /// No token.
    pub fn generate(
        oauth: Option<&Oauth>,
    ) -> Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
        oauth
            .map(Oauth::kafka_token)
            .ok_or_else(|| "no hdi access token for OAUTHBEARER".into())
    }
}

/// A consumer context presenting an hdi access token over OAUTHBEARER.
pub struct OauthContext(pub Option<Oauth>);

impl rdkafka::ClientContext for OauthContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn generate_oauth_token(
        &self,
        _config: Option<&str>,
    ) -> Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
        Oauth::generate(self.0.as_ref())
    }
}

impl rdkafka::consumer::ConsumerContext for OauthContext {}

/// librdkafka properties and, for OAUTHBEARER, the token to present.
pub type Access = (Vec<(String, String)>, Option<Oauth>);

/// How a Kafka client of `cluster` authenticates: as a Kafka user when one is named, else as
/// the hdi user itself over OAUTHBEARER when the cluster offers it (with `token`).
///
/// # Errors
/// As [`librdkafka_properties`], or a token that is not a JWT.
pub fn client_access(
    cluster: &Cluster,
    login: Option<&(String, String)>,
    token: Option<&str>,
) -> anyhow::Result<Access> {
    let endpoints = &cluster.status.endpoints;
    let oauth_offered = endpoints.sasl_mechanisms.iter().any(|m| m == "OAUTHBEARER");
    if login.is_none() && oauth_offered {
        let Some(token) = token else {
            bail!(
                "cluster {:?} needs a login: --user NAME, or an hdictl context",
                cluster.name
            );
        };
        let oauth = Oauth::from_jwt(token)?;
        let mut properties = librdkafka_properties(cluster, Some(&(String::new(), String::new())))?;
        properties.retain(|(k, _)| !k.starts_with("sasl."));
        properties.push(("sasl.mechanisms".to_owned(), "OAUTHBEARER".to_owned()));
        return Ok((properties, Some(oauth)));
    }
    Ok((librdkafka_properties(cluster, login)?, None))
}

/// The librdkafka properties that reach `cluster` (bootstrap servers, security protocol, SASL
/// login, CA certificate inline as `ssl.ca.pem`).
///
/// # Errors
/// Not a Kafka cluster, no bootstrap servers yet, or a secured cluster without a login.
pub fn librdkafka_properties(
    cluster: &Cluster,
    login: Option<&(String, String)>,
) -> anyhow::Result<Vec<(String, String)>> {
    let name = &cluster.name;
    if cluster.spec.kind != ClusterKind::Kafka {
        bail!(
            "cluster {name:?} is a {} cluster, not a Kafka cluster",
            cluster.spec.kind
        );
    }
    let endpoints = &cluster.status.endpoints;
    let Some(servers) = endpoints
        .bootstrap_servers
        .clone()
        .filter(|s| !s.is_empty())
    else {
        bail!(
            "cluster {name:?} has no bootstrap servers yet (it is {})",
            cluster.status.state
        );
    };
    let protocol = endpoints
        .security_protocol
        .clone()
        .unwrap_or_else(|| "PLAINTEXT".to_owned());
    let mut properties = vec![
        ("bootstrap.servers".to_owned(), servers),
        ("security.protocol".to_owned(), protocol.clone()),
    ];
    if protocol.starts_with("SASL_") {
        let Some((user, password)) = login else {
            bail!(
                "cluster {name:?} authenticates clients ({protocol}): name a Kafka user with --user \
                 (see `hdictl kafka-user create {name} NAME`)"
            );
        };
        let mechanism = endpoints
            .sasl_mechanisms
            .iter()
            .find(|m| m.starts_with("SCRAM-"))
            .cloned()
            .unwrap_or_else(|| "SCRAM-SHA-512".to_owned());
        properties.extend([
            ("sasl.mechanisms".to_owned(), mechanism),
            ("sasl.username".to_owned(), user.clone()),
            ("sasl.password".to_owned(), password.clone()),
        ]);
    }
    if protocol.ends_with("SSL") {
        let Some(ca) = &endpoints.ca_certificate else {
            bail!(
                "cluster {name:?} has no CA certificate yet (it is {})",
                cluster.status.state
            );
        };
        properties.push(("ssl.ca.pem".to_owned(), ca.clone()));
    }
    Ok(properties)
}

/// `hdictl kafka-user ...`
#[derive(Debug, Subcommand)]
pub enum KafkaUserCommand {
    /// Create a Kafka user with a new password (shown once) and its ACLs.
    Create {
        /// Kafka cluster name.
        cluster: String,
        /// User name (principal `User:NAME`).
        name: String,
        #[command(flatten)]
        acls: AclArgs,
        #[command(flatten)]
        quotas: QuotaArgs,
        /// Write the password to this new file (mode 0600) instead of printing it.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// List a cluster's Kafka users.
    List {
        /// Kafka cluster name.
        cluster: String,
    },
    /// Show a Kafka user and its ACLs.
    Show {
        /// Kafka cluster name.
        cluster: String,
        /// User name.
        name: String,
    },
    /// Replace a Kafka user's ACLs.
    SetAcls {
        /// Kafka cluster name.
        cluster: String,
        /// User name.
        name: String,
        #[command(flatten)]
        acls: AclArgs,
    },
    /// Replace a Kafka user's client quotas (none given: no limits).
    SetQuotas {
        /// Kafka cluster name.
        cluster: String,
        /// User name.
        name: String,
        #[command(flatten)]
        quotas: QuotaArgs,
    },
    /// Give a Kafka user a new password (shown once); the old one stops working.
    Rotate {
        /// Kafka cluster name.
        cluster: String,
        /// User name.
        name: String,
        /// Write the password to this new file (mode 0600) instead of printing it.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Delete a Kafka user: its password and ACLs leave the cluster.
    Delete {
        /// Kafka cluster name.
        cluster: String,
        /// User name.
        name: String,
    },
}

/// Client quotas as flags (Kafka's per-principal quotas; a flag left out is no limit).
#[derive(Debug, Clone, Args)]
pub struct QuotaArgs {
    /// Bytes per second the user may produce, per broker.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..=1_000_000_000_000))]
    pub producer_byte_rate: Option<u64>,
    /// Bytes per second the user may fetch, per broker.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..=1_000_000_000_000))]
    pub consumer_byte_rate: Option<u64>,
    /// Percent of one broker thread's time the user's requests may take.
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub request_percentage: Option<u64>,
}

impl QuotaArgs {
    fn quotas(&self) -> KafkaQuotas {
        KafkaQuotas {
            producer_byte_rate: self.producer_byte_rate,
            consumer_byte_rate: self.consumer_byte_rate,
            request_percentage: self.request_percentage,
        }
    }
}

/// A user's quotas as text: `producer_byte_rate=N, ...`, or `none`.
fn quotas_text(quotas: &KafkaQuotas) -> String {
    let set: Vec<String> = [
        ("producer_byte_rate", quotas.producer_byte_rate),
        ("consumer_byte_rate", quotas.consumer_byte_rate),
        ("request_percentage", quotas.request_percentage),
    ]
    .into_iter()
    .filter_map(|(key, value)| Some(format!("{key}={}", value?)))
    .collect();
    if set.is_empty() {
        "none".to_owned()
    } else {
        set.join(", ")
    }
}

/// ACLs as flags: `TYPE:NAME:OP[,OP...]`, TYPE one of topic, group, cluster,
/// transactional-id; a NAME ending in `*` (other than `*` itself) is a prefix.
#[derive(Debug, Clone, Args)]
pub struct AclArgs {
    /// Allow, e.g. `topic:payments:read,describe`, `group:app-*:read`,
    /// `cluster:kafka-cluster:describe` (repeatable).
    #[arg(long = "allow", value_name = "TYPE:NAME:OPS")]
    pub allow: Vec<String>,
    /// Deny (beats any allow), same form (repeatable).
    #[arg(long = "deny", value_name = "TYPE:NAME:OPS")]
    pub deny: Vec<String>,
}

impl AclArgs {
    fn acls(&self) -> anyhow::Result<Vec<KafkaAcl>> {
        let mut acls = Vec::new();
        for (flag, list, permission) in [
            ("--allow", &self.allow, KafkaPermission::Allow),
            ("--deny", &self.deny, KafkaPermission::Deny),
        ] {
            for text in list {
                acls.push(parse_acl(text, permission).with_context(|| format!("{flag} {text:?}"))?);
            }
        }
        Ok(acls)
    }
}

fn parse_acl(text: &str, permission: KafkaPermission) -> anyhow::Result<KafkaAcl> {
    let mut parts = text.splitn(3, ':');
    let (Some(kind), Some(name), Some(ops)) = (parts.next(), parts.next(), parts.next()) else {
        bail!("must be TYPE:NAME:OPS, e.g. topic:payments:read,describe");
    };
    let resource_type = match kind {
        "topic" => KafkaResourceType::Topic,
        "group" => KafkaResourceType::Group,
        "cluster" => KafkaResourceType::Cluster,
        "transactional-id" | "transactional_id" => KafkaResourceType::TransactionalId,
        other => bail!("unknown resource type {other:?} (topic, group, cluster, transactional-id)"),
    };
    let (resource_name, pattern) = match name.strip_suffix('*') {
        Some(prefix) if !prefix.is_empty() => (prefix.to_owned(), KafkaPatternType::Prefixed),
        _ => (name.to_owned(), KafkaPatternType::Literal),
    };
    let operations = ops
        .split(',')
        .map(|op| {
            serde_json::from_value::<KafkaOperation>(serde_json::Value::String(
                op.trim().replace('-', "_"),
            ))
            .map_err(|_| anyhow::anyhow!("unknown operation {op:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(KafkaAcl {
        resource_type,
        resource_name,
        pattern,
        operations,
        permission,
    })
}

fn acl_text(acl: &KafkaAcl) -> String {
    format!(
        "{} {}:{}{}:{}",
        spell(&acl.permission),
        spell(&acl.resource_type),
        acl.resource_name,
        if acl.pattern == KafkaPatternType::Prefixed {
            "*"
        } else {
            ""
        },
        acl.operations
            .iter()
            .map(spell)
            .collect::<Vec<_>>()
            .join(",")
    )
}

/// The serde spelling of one of the API's unit enums, for tables.
fn spell<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        _ => String::new(),
    }
}

fn print_user(user: &KafkaUser) {
    println!("name:        {}", user.name);
    println!("cluster:     {}", user.cluster);
    println!("mechanism:   {}", user.mechanism);
    println!("state:       {}", spell(&user.state));
    println!("created:     {} by {}", user.created_at, user.created_by);
    println!("password:    set {}", user.password_set_at);
    println!("quotas:      {}", quotas_text(&user.quotas));
    println!("acls:");
    for acl in &user.acls {
        println!("  {}", acl_text(acl));
    }
}

/// Writes a password to a new 0600 file (refusing to replace one).
fn write_password(path: &Path, password: &str) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist)", path.display()))?;
    writeln!(file, "{password}").with_context(|| format!("cannot write {}", path.display()))
}

fn show_credential(
    credential: &KafkaUserCredential,
    password_file: Option<&Path>,
    format: Format,
) -> anyhow::Result<()> {
    if let Some(path) = password_file {
        write_password(path, &credential.password)?;
        return match format {
            Format::Table => {
                eprintln!(
                    "the password of {} is in {}",
                    credential.user.name,
                    path.display()
                );
                print_user(&credential.user);
                Ok(())
            }
            _ => print_value(format, &credential.user),
        };
    }
    match format {
        Format::Table => {
            print_user(&credential.user);
            println!("password:    {}", credential.password);
            eprintln!("save the password now: it is not shown again (rotate makes a new one)");
            Ok(())
        }
        _ => print_value(format, credential),
    }
}

/// Changes a Kafka user and shows it as it is now.
async fn patch_user(
    api: &Client,
    workspace: &str,
    cluster: &str,
    name: &str,
    patch: &KafkaUserPatch,
    format: Format,
) -> anyhow::Result<()> {
    let user = api
        .kafka_user_patch(workspace, cluster, name, patch)
        .await?;
    match format {
        Format::Table => print_user(&user),
        _ => print_value(format, &user)?,
    }
    Ok(())
}

/// Runs a Kafka-user command.
pub async fn kafka_user(
    api: &Client,
    workspace: &str,
    command: KafkaUserCommand,
    format: Format,
) -> anyhow::Result<()> {
    match command {
        KafkaUserCommand::Create {
            cluster,
            name,
            acls,
            quotas,
            password_file,
        } => {
            let body = KafkaUserCreate {
                name,
                acls: acls.acls()?,
                quotas: quotas.quotas(),
            };
            if let Some(path) = &password_file
                && path.exists()
            {
                bail!("--password-file {} exists; name a new file", path.display());
            }
            let created = api.kafka_user_create(workspace, &cluster, &body).await?;
            show_credential(&created, password_file.as_deref(), format)?;
        }
        KafkaUserCommand::List { cluster } => {
            let users = api.kafka_users_list(workspace, &cluster).await?.items;
            match format {
                Format::Table => {
                    let mut table =
                        Table::new(["NAME", "MECHANISM", "ACLS", "STATE", "PASSWORD SET"]);
                    for u in &users {
                        table.row([
                            u.name.clone(),
                            u.mechanism.clone(),
                            u.acls.len().to_string(),
                            spell(&u.state),
                            u.password_set_at.to_rfc3339(),
                        ]);
                    }
                    print!("{}", table.render());
                }
                _ => print_value(format, &users)?,
            }
        }
        KafkaUserCommand::Show { cluster, name } => {
            let user = api.kafka_user_get(workspace, &cluster, &name).await?;
            match format {
                Format::Table => print_user(&user),
                _ => print_value(format, &user)?,
            }
        }
        KafkaUserCommand::SetAcls {
            cluster,
            name,
            acls,
        } => {
            let patch = KafkaUserPatch {
                acls: Some(acls.acls()?),
                quotas: None,
            };
            patch_user(api, workspace, &cluster, &name, &patch, format).await?;
        }
        KafkaUserCommand::SetQuotas {
            cluster,
            name,
            quotas,
        } => {
            let patch = KafkaUserPatch {
                acls: None,
                quotas: Some(quotas.quotas()),
            };
            patch_user(api, workspace, &cluster, &name, &patch, format).await?;
        }
        KafkaUserCommand::Rotate {
            cluster,
            name,
            password_file,
        } => {
            if let Some(path) = &password_file
                && path.exists()
            {
                bail!("--password-file {} exists; name a new file", path.display());
            }
            let rotated = api.kafka_user_rotate(workspace, &cluster, &name).await?;
            show_credential(&rotated, password_file.as_deref(), format)?;
        }
        KafkaUserCommand::Delete { cluster, name } => {
            api.kafka_user_delete(workspace, &cluster, &name).await?;
            match format {
                Format::Table => println!("Kafka user {name} deleted from cluster {cluster}"),
                _ => print_value(
                    format,
                    &serde_json::json!({"cluster": cluster, "name": name, "deleted": true}),
                )?,
            }
        }
    }
    Ok(())
}

/// OAUTHBEARER through the control plane's OAuth 2.0 token endpoint (client credentials).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OauthClientArgs {
    /// Authenticate as this hdi user over OAUTHBEARER: the client fetches its own tokens from
    /// the control plane's OAuth 2.0 token endpoint with the username as client id and one of
    /// its API tokens as client secret (librdkafka's `sasl.oauthbearer.method=oidc`, the Java
    /// client's OAuthBearerLoginCallbackHandler).
    #[arg(long, conflicts_with_all = ["user", "password_file"])]
    pub oauth_client: Option<String>,
    /// File holding that user's API token (default: a placeholder to fill in).
    #[arg(long, requires = "oauth_client")]
    pub api_token_file: Option<PathBuf>,
}

/// The OAuth 2.0 token endpoint of the control plane at `base_url`.
pub fn token_endpoint(base_url: &str) -> String {
    format!("{}/v1/auth/oauth2/token", base_url.trim_end_matches('/'))
}

/// librdkafka properties that reach `cluster` as hdi user `client_id` over OAUTHBEARER, with
/// librdkafka fetching tokens from `endpoint` itself.
///
/// # Errors
/// As [`librdkafka_properties`], or the cluster does not offer OAUTHBEARER.
pub fn oidc_properties(
    cluster: &Cluster,
    client_id: &str,
    client_secret: &str,
    endpoint: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    if !cluster
        .status
        .endpoints
        .sasl_mechanisms
        .iter()
        .any(|m| m == "OAUTHBEARER")
    {
        bail!(
            "cluster {:?} does not offer OAUTHBEARER (its mechanisms: {}): use --user with a Kafka user",
            cluster.name,
            cluster.status.endpoints.sasl_mechanisms.join(", ")
        );
    }
    let mut properties = librdkafka_properties(cluster, Some(&(String::new(), String::new())))?;
    properties.retain(|(k, _)| !k.starts_with("sasl."));
    properties.extend(
        [
            ("sasl.mechanisms", "OAUTHBEARER"),
            ("sasl.oauthbearer.method", "oidc"),
            ("sasl.oauthbearer.client.id", client_id),
            ("sasl.oauthbearer.client.secret", client_secret),
            ("sasl.oauthbearer.token.endpoint.url", endpoint),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    Ok(properties)
}

/// A Java client `.properties` text for librdkafka `properties` (SCRAM or OIDC OAUTHBEARER).
fn java_properties(properties: &[(String, String)]) -> String {
    let get = |key: &str| {
        properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let escape = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
    let mut out = format!(
        "bootstrap.servers={}\nsecurity.protocol={}\n",
        get("bootstrap.servers").unwrap_or_default(),
        get("security.protocol").unwrap_or_default()
    );
    match get("sasl.mechanisms").as_deref() {
        Some("OAUTHBEARER") => {
            let endpoint = get("sasl.oauthbearer.token.endpoint.url").unwrap_or_default();
            out.push_str(&format!(
                "# Kafka 4 fetches tokens only from allowed URLs: run the JVM with\n\
                 # -Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={endpoint}\n\
                 sasl.mechanism=OAUTHBEARER\n\
                 sasl.login.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler\n\
                 sasl.oauthbearer.token.endpoint.url={endpoint}\n\
                 sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required clientId=\"{}\" clientSecret=\"{}\";\n",
                escape(&get("sasl.oauthbearer.client.id").unwrap_or_default()),
                escape(&get("sasl.oauthbearer.client.secret").unwrap_or_default())
            ));
        }
        Some(mechanism) => {
            out.push_str(&format!(
                "sasl.mechanism={mechanism}\n\
                 sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"{}\" password=\"{}\";\n",
                escape(&get("sasl.username").unwrap_or_default()),
                escape(&get("sasl.password").unwrap_or_default())
            ));
        }
        None => {}
    }
    if let Some(ca) = get("ssl.ca.location") {
        out.push_str(&format!(
            "ssl.truststore.type=PEM\nssl.truststore.location={ca}\n"
        ));
    }
    out
}

/// Which client a configuration is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClientKind {
    /// librdkafka properties (`kcat -F FILE`, confluent-kafka).
    Librdkafka,
    /// A Java client `.properties` file.
    Java,
    /// A kafkajs `new Kafka({...})` argument (JSON).
    Kafkajs,
}

/// `hdictl cluster client-config CLUSTER [--user NAME] [--client KIND] [--ca-file PATH]`:
/// writes the cluster's CA certificate to `--ca-file` (TLS clusters) and prints a configuration
/// naming it; the password is the one `--password-file`/`HDI_KAFKA_PASSWORD` gives, else a
/// placeholder to fill in.
///
/// # Errors
/// As [`librdkafka_properties`], or the CA file cannot be written.
pub async fn client_config(
    api: &Client,
    workspace: &str,
    cluster: &str,
    login: &LoginArgs,
    oauth: &OauthClientArgs,
    client: ClientKind,
    ca_file: Option<PathBuf>,
) -> anyhow::Result<()> {
    let c = api.cluster_get(workspace, cluster).await?;
    let mut properties = if let Some(client_id) = &oauth.oauth_client {
        if client == ClientKind::Kafkajs {
            bail!(
                "kafkajs has no built-in OAuth client: give its `sasl.oauthBearerProvider` a function that POSTs `grant_type=client_credentials` with HTTP Basic ({client_id}, an API token) to {} and returns {{ value: access_token }}",
                token_endpoint(api.base_url())
            );
        }
        let secret = match &oauth.api_token_file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --api-token-file {}", path.display()))?
                .trim()
                .to_owned(),
            None => format!("<API token of {client_id}>"),
        };
        oidc_properties(&c, client_id, &secret, &token_endpoint(api.base_url()))?
    } else {
        let password = match login.login() {
            Ok(found) => found.map(|(_, p)| p),
            Err(_) => None,
        };
        let user = login.user.clone();
        let placeholder = format!("<password of {}>", user.as_deref().unwrap_or("USER"));
        let pair = user.as_ref().map(|u| {
            (
                u.clone(),
                password.clone().unwrap_or_else(|| placeholder.clone()),
            )
        });
        librdkafka_properties(&c, pair.as_ref())?
    };
    let ca_path = ca_file.unwrap_or_else(|| PathBuf::from(format!("{cluster}-ca.pem")));
    if let Some(index) = properties.iter().position(|(k, _)| k == "ssl.ca.pem") {
        let (_, pem) = properties.remove(index);
        std::fs::write(&ca_path, pem)
            .with_context(|| format!("cannot write the CA certificate to {}", ca_path.display()))?;
        eprintln!("CA certificate written to {}", ca_path.display());
        properties.push(("ssl.ca.location".to_owned(), ca_path.display().to_string()));
    }
    let get = |key: &str| {
        properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    match client {
        ClientKind::Librdkafka => {
            for (key, value) in &properties {
                println!("{key}={value}");
            }
        }
        ClientKind::Java => print!("{}", java_properties(&properties)),
        ClientKind::Kafkajs => {
            let mut config = serde_json::json!({
                "clientId": "hdi-client",
                "brokers": get("bootstrap.servers").unwrap_or_default().split(',').collect::<Vec<_>>(),
            });
            if let Some(ca) = get("ssl.ca.location") {
                config["ssl"] = serde_json::json!({"caFile": ca});
            }
            if let Some(mechanism) = get("sasl.mechanisms") {
                config["sasl"] = serde_json::json!({
                    "mechanism": mechanism.to_lowercase(),
                    "username": get("sasl.username"),
                    "password": get("sasl.password"),
                });
            }
            println!("{}", serde_json::to_string_pretty(&config)?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secured(mechanisms: &[&str]) -> Cluster {
        serde_json::from_value(serde_json::json!({
            "id": "00000000-0000-0000-0000-000000000001",
            "workspace": "default",
            "name": "pay",
            "spec": {"kind": "kafka", "node_pools": []},
            "generation": 1,
            "status": {
                "state": "Running",
                "observed_generation": 1,
                "conditions": [],
                "pools": [],
                "endpoints": {
                    "bootstrap_servers": "127.0.0.1:9093",
                    "security_protocol": "SASL_SSL",
                    "sasl_mechanisms": mechanisms,
                    "ca_certificate": "-----BEGIN CERTIFICATE-----",
                },
                "workloads": [],
            },
            "created_at": "2026-12-05T00:00:00Z",
            "updated_at": "2026-12-05T00:00:00Z",
        }))
        .expect("a cluster")
    }

    #[test]
    fn oauth_client_configs_name_the_token_endpoint() {
        let endpoint = token_endpoint("http://127.0.0.1:7420/");
        assert_eq!(endpoint, "http://127.0.0.1:7420/v1/auth/oauth2/token");
        let c = secured(&["SCRAM-SHA-512", "OAUTHBEARER"]);
        let p = oidc_properties(&c, "svc", "hdi_tok", &endpoint).expect("properties");
        let get = |k: &str| p.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("sasl.mechanisms"), Some("OAUTHBEARER"));
        assert_eq!(get("sasl.oauthbearer.method"), Some("oidc"));
        assert_eq!(get("sasl.oauthbearer.client.id"), Some("svc"));
        assert_eq!(get("sasl.oauthbearer.client.secret"), Some("hdi_tok"));
        assert_eq!(get("sasl.username"), None);
        let java = java_properties(&p);
        assert!(java.contains("sasl.mechanism=OAUTHBEARER\n"), "{java}");
        assert!(
            java.contains(&format!("sasl.oauthbearer.token.endpoint.url={endpoint}\n")),
            "{java}"
        );
        assert!(
            java.contains(
                "OAuthBearerLoginModule required clientId=\"svc\" clientSecret=\"hdi_tok\";"
            ),
            "{java}"
        );
        // A cluster without OAUTHBEARER says so.
        let scram_only = secured(&["SCRAM-SHA-512"]);
        let refused = oidc_properties(&scram_only, "svc", "x", &endpoint).expect_err("refused");
        assert!(
            refused.to_string().contains("does not offer OAUTHBEARER"),
            "{refused}"
        );
        // SCRAM users keep their ScramLoginModule.
        let p = librdkafka_properties(&c, Some(&("carol".into(), "pw\"1".into()))).expect("scram");
        let java = java_properties(&p);
        assert!(
            java.contains("ScramLoginModule required username=\"carol\" password=\"pw\\\"1\";"),
            "{java}"
        );
    }

    #[test]
    fn acl_flags() {
        let acl = parse_acl("topic:pay-*:read,describe", KafkaPermission::Allow).expect("acl");
        assert_eq!(acl.resource_name, "pay-");
        assert_eq!(acl.pattern, KafkaPatternType::Prefixed);
        assert_eq!(
            acl.operations,
            [KafkaOperation::Read, KafkaOperation::Describe]
        );
        assert_eq!(acl_text(&acl), "allow topic:pay-*:read,describe");
        let star = parse_acl("group:*:read", KafkaPermission::Deny).expect("acl");
        assert_eq!(
            (star.resource_name.as_str(), star.pattern),
            ("*", KafkaPatternType::Literal)
        );
        let tx = parse_acl(
            "transactional-id:t:describe-configs",
            KafkaPermission::Allow,
        )
        .expect("acl");
        assert_eq!(tx.operations, [KafkaOperation::DescribeConfigs]);
        assert!(parse_acl("topic:a", KafkaPermission::Allow).is_err());
        assert!(parse_acl("queue:a:read", KafkaPermission::Allow).is_err());
        assert!(parse_acl("topic:a:fly", KafkaPermission::Allow).is_err());
    }
}
