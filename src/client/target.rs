//! Which cluster a verb or the console talks to, and with which key: the endpoints (given,
//! or read from a dev cluster's `cluster.toml`), the API key (a file, `$OPSDECK_API_KEY`, or
//! the dev cluster's `admin.key`), TLS, and how long to retry. Plain data, so the CLI's
//! flags and the console fill it the same way.

use std::path::{Path, PathBuf};
use std::time::Duration;

use color_eyre::eyre::{eyre, Result, WrapErr};

use super::cluster_file::{default_dev_dir, ClusterFile, ADMIN_KEY_FILE, FILE_NAME};
use super::{ApiKey, ClusterClient};

#[derive(Debug, Clone, Default)]
pub struct Target {
    /// gRPC addresses of cluster nodes; when empty, the dev cluster dir's.
    pub endpoints: Vec<String>,
    /// Directory of a dev cluster; None means the default dev dir.
    pub cluster_dir: Option<PathBuf>,
    /// File holding the API key.
    pub key_file: Option<PathBuf>,
    /// CA certificate (PEM) to trust for TLS.
    pub tls_ca: Option<PathBuf>,
    /// How long to keep retrying while no node answers or no leader is elected.
    pub timeout: Duration,
}

/// A warning when the key file at `path` can be read by its group or by others (the key
/// is a password: only its owner should read it). Refusing such a file is a later step.
pub fn readable_by_others(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "warning: the key file {} can be read by other users (mode {mode:04o}); \
             run `chmod 600 {}`",
            path.display(),
            path.display()
        )
    })
}

impl Target {
    fn dir(&self) -> PathBuf {
        self.cluster_dir.clone().unwrap_or_else(default_dev_dir)
    }

    /// The endpoints: the given ones, else the cluster file of the cluster dir.
    pub fn endpoints(&self) -> Result<Vec<String>> {
        if !self.endpoints.is_empty() {
            return Ok(self.endpoints.clone());
        }
        Ok(ClusterFile::load(&self.dir())?.grpc_endpoints())
    }

    /// The API key: the key file, else `$OPSDECK_API_KEY`, else the `admin.key` of the
    /// cluster dir when there is one.
    pub fn key(&self) -> Result<ApiKey> {
        let read = |path: &Path| -> Result<Option<ApiKey>> {
            match std::fs::read_to_string(path) {
                Ok(secret) => {
                    if let Some(warning) = readable_by_others(path) {
                        eprintln!("{warning}");
                    }
                    ApiKey::new(&secret)
                        .map(Some)
                        .wrap_err_with(|| format!("bad key file {}", path.display()))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.key_file.is_none() => {
                    Ok(None)
                }
                Err(e) => Err(eyre!(
                    "cannot read the key file {}: {e} (pass --key-file PATH or set OPSDECK_API_KEY)",
                    path.display()
                )),
            }
        };
        if let Some(path) = &self.key_file {
            return Ok(read(path)?.unwrap_or_else(ApiKey::none));
        }
        if let Ok(secret) = std::env::var("OPSDECK_API_KEY") {
            if !secret.trim().is_empty() {
                return ApiKey::new(&secret).wrap_err("bad $OPSDECK_API_KEY");
            }
        }
        Ok(read(&self.dir().join(ADMIN_KEY_FILE))?.unwrap_or_else(ApiKey::none))
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
