//! The hdictl config file: named contexts (control-plane URL and credential) and the current one.
//!
//! The same JSON format is written by `cargo xtask up`: `{"current_context": "local", "contexts":
//! {"local": {"api_url": "http://127.0.0.1:7420", "token": "..."}}}`. A plain `token` is sent as
//! the bearer as it is (the control plane takes a non-JWT bearer as an API token). `hdictl login`
//! writes an `api_token` instead, which each command exchanges for a short-lived access token,
//! cached in `access_token` until shortly before `access_token_expires_at`. The file is written
//! with mode 0600.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use serde::{Deserialize, Serialize};

/// One control plane and the credentials for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// Base URL of the control plane.
    pub api_url: String,
    /// Bearer token, sent as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// API token exchanged at `POST /v1/auth/token` for an access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_token: Option<String>,
    /// The cached access token (a JWT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// When the cached access token expires (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_expires_at: Option<i64>,
    /// The workspace commands use when `--workspace` is not given (default `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
}

/// The whole config file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextFile {
    /// The context used when none is named.
    #[serde(default)]
    pub current_context: Option<String>,
    /// Contexts by name.
    #[serde(default)]
    pub contexts: BTreeMap<String, Context>,
}

/// `$XDG_CONFIG_HOME/hdi/config.json`, else `$HOME/.config/hdi/config.json`.
pub fn default_path() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("hdi/config.json"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            anyhow!("neither HDI_CONFIG, XDG_CONFIG_HOME nor HOME is set; pass --config FILE")
        })?;
    Ok(PathBuf::from(home).join(".config/hdi/config.json"))
}

impl ContextFile {
    /// Reads and decodes the file.
    pub fn load(path: &Path) -> anyhow::Result<ContextFile> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => bail!(
                "no hdictl config at {}: run `cargo xtask up` (local platform) or pass --config",
                path.display()
            ),
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", path.display()));
            }
        };
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a valid hdictl config", path.display()))
    }

    /// Reads the file, or an empty one if it does not exist.
    pub fn load_or_default(path: &Path) -> anyhow::Result<ContextFile> {
        if path.exists() {
            ContextFile::load(path)
        } else {
            Ok(ContextFile::default())
        }
    }

    /// Writes the file atomically (a temporary file renamed over it), readable by its owner only.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        let tmp = path.with_extension("json.tmp");
        {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            file.write_all(text.as_bytes())
                .with_context(|| format!("cannot write {}", tmp.display()))?;
        }
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
    }

    /// The named context, or the current one.
    pub fn select(&self, name: Option<&str>) -> anyhow::Result<(String, &Context)> {
        let name = match name {
            Some(name) => name.to_owned(),
            None => self
                .current_context
                .clone()
                .ok_or_else(|| anyhow!("no current_context; pass --context"))?,
        };
        let context = self.contexts.get(&name).ok_or_else(|| {
            let known: Vec<&str> = self.contexts.keys().map(String::as_str).collect();
            anyhow!(
                "no context named {name:?} (known: {})",
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            )
        })?;
        Ok((name, context))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_current_or_named_context() {
        let file: ContextFile = serde_json::from_str(
            r#"{"current_context":"local","contexts":{"local":{"api_url":"http://a"},"prod":{"api_url":"http://b","token":"t"}}}"#,
        )
        .unwrap();
        assert_eq!(file.select(None).unwrap().1.api_url, "http://a");
        assert_eq!(
            file.select(Some("prod")).unwrap().1.token.as_deref(),
            Some("t")
        );
        let err = file.select(Some("dev")).unwrap_err().to_string();
        assert!(
            err.contains("no context named \"dev\" (known: local, prod)"),
            "{err}"
        );
        assert!(ContextFile::default().select(None).is_err());
    }
}
