//! Which cluster a verb or the console talks to, and with which key: the endpoints (given,
//! or read from a dev cluster's `cluster.toml`), the API key (a file, `$OPSDECK_API_KEY`, or
//! the config's or the dev cluster's `admin.key`), TLS, and how long to retry, completed
//! from `config.toml` and its contexts (`with_config`). Plain data, so the CLI's flags and
//! the console fill it the same way.

use std::path::{Path, PathBuf};
use std::time::Duration;

use color_eyre::eyre::{eyre, Result, WrapErr};

use super::cluster_file::{default_dev_dir, ClusterFile, ADMIN_KEY_FILE, FILE_NAME};
use super::{ApiKey, ClusterClient};
use crate::config::{Config, DEV_CONTEXT};

/// The key in `path`; a missing file is None unless `required` (it was named).
fn read_key(path: &Path, required: bool) -> Result<Option<ApiKey>> {
    match std::fs::read_to_string(path) {
        Ok(secret) => {
            if let Some(warning) = readable_by_others(path)? {
                eprintln!("{warning}");
            }
            ApiKey::new(&secret)
                .map(Some)
                .wrap_err_with(|| format!("bad key file {}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(eyre!(
            "cannot read the key file {}: {e} (it must belong to you: `chmod 600 {}` as its owner)",
            path.display(),
            path.display()
        )),
        Err(e) => Err(eyre!(
            "cannot read the key file {}: {e} (pass --key-file PATH or set OPSDECK_API_KEY)",
            path.display()
        )),
    }
}

#[derive(Debug, Clone, Default)]
pub struct Target {
    /// gRPC addresses of cluster nodes; when empty, the dev cluster dir's.
    pub endpoints: Vec<String>,
    /// Directory of a dev cluster; None means the default dev dir.
    pub cluster_dir: Option<PathBuf>,
    /// File holding the API key (`--key-file`: above `$OPSDECK_API_KEY`).
    pub key_file: Option<PathBuf>,
    /// The config's (or the context's) key file: below `$OPSDECK_API_KEY`.
    pub config_key_file: Option<PathBuf>,
    /// CA certificate (PEM) to trust for TLS.
    pub tls_ca: Option<PathBuf>,
    /// How long to keep retrying while no node answers or no leader is elected.
    pub timeout: Duration,
    /// The config context this target came from (None: flags or the top-level keys).
    pub context: Option<String>,
    /// The config (or context) says `read_only = true`.
    pub read_only: bool,
}

/// Refuses a key file that others can read, and warns about one its group can: the key is a
/// password, only its owner should read it (as ssh does with private keys).
pub fn readable_by_others(path: &Path) -> Result<Option<String>> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(None);
    };
    let mode = meta.permissions().mode() & 0o777;
    let p = path.display();
    if mode & 0o004 != 0 {
        return Err(eyre!(
            "refusing the key file {p}: every user can read it (mode {mode:04o}); run `chmod 600 {p}`"
        ));
    }
    Ok((mode & 0o070 != 0).then(|| {
        format!(
            "warning: the key file {p} can be read by other users (mode {mode:04o}); \
             run `chmod 600 {p}`"
        )
    }))
}

impl Target {
    fn dir(&self) -> PathBuf {
        self.cluster_dir.clone().unwrap_or_else(default_dev_dir)
    }

    /// Node `id`'s data dir when this is a dev cluster (its cluster.toml records it).
    pub fn dev_data_dir(&self, id: u64) -> Option<PathBuf> {
        if !self.endpoints.is_empty() {
            return None;
        }
        let file = ClusterFile::load(&self.dir()).ok()?;
        file.nodes.into_iter().find(|n| n.id == id).map(|n| n.data)
    }

    /// `self` (what the flags and environment say) completed from the config: the context
    /// `chosen` (`--context` / `$OPSDECK_CONTEXT`), else the file's `current_context`, else
    /// its top-level keys. Endpoints or a dev dir given as flags replace the context's (and
    /// the target is then no context's); a flag's key file or CA wins over the file's.
    pub fn with_config(mut self, config: &Config, chosen: Option<&str>) -> Result<Target> {
        let context = config.select(chosen)?;
        let given = !self.endpoints.is_empty() || self.cluster_dir.is_some();
        let cluster = match &context {
            Some(c) => c.cluster.clone(),
            None => config.top(),
        };
        if !given {
            self.endpoints = cluster.endpoints.unwrap_or_default();
            self.cluster_dir = cluster.dev_dir;
            self.context = context.map(|c| c.name);
        }
        if self.tls_ca.is_none() {
            self.tls_ca = cluster.tls_ca;
        }
        self.config_key_file = cluster.key_file;
        self.read_only = cluster.read_only.unwrap_or(false);
        Ok(self)
    }

    /// A short name for this cluster, for the console's status line and its questions: the
    /// context's name, `dev` for the default dev dir, `dev:NAME` for another dev dir NAME,
    /// else the first endpoint (and how many more).
    pub fn label(&self) -> String {
        if let Some(c) = &self.context {
            return c.clone();
        }
        match (self.endpoints.as_slice(), &self.cluster_dir) {
            ([], None) => DEV_CONTEXT.into(),
            ([], Some(dir)) if *dir == default_dev_dir() => DEV_CONTEXT.into(),
            // Short, for questions at 80 columns: `dev:` and the dir's name.
            ([], Some(dir)) => format!(
                "{DEV_CONTEXT}:{}",
                dir.file_name()
                    .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into())
            ),
            ([one], _) => one.clone(),
            ([first, rest @ ..], _) => format!("{first}+{}", rest.len()),
        }
    }

    /// The endpoints: the given ones, else the cluster file of the cluster dir.
    pub fn endpoints(&self) -> Result<Vec<String>> {
        if !self.endpoints.is_empty() {
            return Ok(self.endpoints.clone());
        }
        Ok(ClusterFile::load(&self.dir())?.grpc_endpoints())
    }

    /// The API key: `--key-file`, else `$OPSDECK_API_KEY`, else the config's key file, else
    /// the `admin.key` of the cluster dir when there is one.
    pub fn key(&self) -> Result<ApiKey> {
        if let Some(path) = &self.key_file {
            return read_key(path, true).map(|k| k.unwrap_or_else(ApiKey::none));
        }
        if let Ok(secret) = std::env::var("OPSDECK_API_KEY") {
            if !secret.trim().is_empty() {
                return ApiKey::new(&secret).wrap_err("bad $OPSDECK_API_KEY");
            }
        }
        if let Some(path) = &self.config_key_file {
            return read_key(path, true).map(|k| k.unwrap_or_else(ApiKey::none));
        }
        Ok(read_key(&self.dir().join(ADMIN_KEY_FILE), false)?.unwrap_or_else(ApiKey::none))
    }

    /// The dev cluster dir this target is: only when no endpoints are given and the dir
    /// holds a cluster file.
    pub fn dev_dir(&self) -> Option<PathBuf> {
        if !self.endpoints.is_empty() {
            return None;
        }
        let dir = self.dir();
        dir.join(FILE_NAME).exists().then_some(dir)
    }

    /// A client for the target (TLS set up first when a CA is given).
    pub fn connect(&self) -> Result<ClusterClient> {
        if let Some(ca) = &self.tls_ca {
            opsdeck_node::transport::tls::use_client_tls(ca).map_err(|e| eyre!("{e}"))?;
        }
        ClusterClient::new(&self.endpoints()?, self.timeout, self.key()?)
    }
}
