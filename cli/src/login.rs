//! `hdictl login` and the credential handling of every command: a context holding an API token
//! is exchanged for a short-lived access token (JWT), cached in the config file until shortly
//! before it expires.
//!
//! `hdictl login --username U` takes the password from `--password-stdin` or `HDI_PASSWORD`,
//! exchanges it once and creates an API token for the user (named `hdictl-<time>`), which is what
//! the context keeps: the password is never written to disk.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::Args;
use hdi_api::{ApiTokenCreate, Client, TokenRequest};

use crate::context::{Context, ContextFile};

/// A cached access token is renewed when it has less than this many seconds left.
const RENEW_BEFORE_SECS: i64 = 60;

/// Flags of `hdictl login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Base URL of the control plane, e.g. http://127.0.0.1:7420.
    #[arg(long)]
    url: String,
    /// Log in as this user (password from --password-stdin or HDI_PASSWORD).
    #[arg(long, conflicts_with = "api_token_file")]
    username: Option<String>,
    /// Read the password from standard input (first line).
    #[arg(long, requires = "username")]
    password_stdin: bool,
    /// Log in with the API token in this file.
    #[arg(long)]
    api_token_file: Option<PathBuf>,
}

/// Logs in and saves the context `name` (made current).
pub async fn login(
    path: &Path,
    name: &str,
    workspace: Option<String>,
    args: LoginArgs,
) -> anyhow::Result<String> {
    let anonymous = Client::new(&args.url, None)?;
    let (api_token, issued) = match (&args.username, &args.api_token_file) {
        (Some(username), None) => {
            let password = if args.password_stdin {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("cannot read the password from standard input")?;
                text.lines().next().unwrap_or_default().to_owned()
            } else {
                std::env::var("HDI_PASSWORD")
                    .context("no password: pass --password-stdin or set HDI_PASSWORD")?
            };
            let issued = anonymous
                .token_exchange(&TokenRequest::Password {
                    username: username.clone(),
                    password,
                })
                .await?;
            let api = anonymous.with_token(Some(issued.access_token.clone()));
            let created = api
                .api_token_create(
                    username,
                    &ApiTokenCreate {
                        name: format!("hdictl-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%3f")),
                        expires_in_days: None,
                    },
                )
                .await
                .context("cannot create an API token for hdictl")?;
            (created.token, issued)
        }
        (None, Some(file)) => {
            let token = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?
                .trim()
                .to_owned();
            if token.is_empty() {
                bail!("{} is empty", file.display());
            }
            let issued = anonymous
                .token_exchange(&TokenRequest::ApiToken {
                    token: token.clone(),
                })
                .await?;
            (token, issued)
        }
        _ => bail!("pass --username (with --password-stdin or HDI_PASSWORD) or --api-token-file"),
    };
    let mut file = ContextFile::load_or_default(path)?;
    let previous = file.contexts.get(name).and_then(|c| c.workspace.clone());
    file.contexts.insert(
        name.to_owned(),
        Context {
            api_url: anonymous.base_url().to_owned(),
            token: None,
            api_token: Some(api_token),
            access_token: Some(issued.access_token),
            access_token_expires_at: Some(expires_at(issued.expires_in)),
            workspace: workspace.or(previous),
        },
    );
    file.current_context = Some(name.to_owned());
    file.save(path)?;
    Ok(name.to_owned())
}

fn expires_at(expires_in: u64) -> i64 {
    chrono::Utc::now()
        .timestamp()
        .saturating_add(i64::try_from(expires_in).unwrap_or(i64::MAX))
}

/// The bearer to use for a context: its plain `token`, its cached access token while fresh, or a
/// new access token for its API token (then cached in the file at `path`).
pub async fn bearer(path: &Path, name: &str, ctx: &Context) -> anyhow::Result<Option<String>> {
    let Some(api_token) = &ctx.api_token else {
        return Ok(ctx.token.clone());
    };
    let now = chrono::Utc::now().timestamp();
    if let (Some(access), Some(until)) = (&ctx.access_token, ctx.access_token_expires_at)
        && until - RENEW_BEFORE_SECS > now
    {
        return Ok(Some(access.clone()));
    }
    let issued = Client::new(&ctx.api_url, None)?
        .token_exchange(&TokenRequest::ApiToken {
            token: api_token.clone(),
        })
        .await
        .with_context(|| {
            format!("context {name:?}: cannot get an access token (hdictl login again?)")
        })?;
    let mut file = ContextFile::load(path)?;
    if let Some(stored) = file.contexts.get_mut(name) {
        stored.access_token = Some(issued.access_token.clone());
        stored.access_token_expires_at = Some(expires_at(issued.expires_in));
        if let Err(error) = file.save(path) {
            eprintln!("hdictl: warning: cannot cache the access token: {error:#}");
        }
    }
    Ok(Some(issued.access_token))
}
