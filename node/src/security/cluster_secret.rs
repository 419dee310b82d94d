//! The secret nodes of one cluster present to each other on Raft and forwarding calls
//! (user API keys never travel between nodes). It lives in `DATA/cluster.secret` (mode
//! 0600): created by the node that bootstraps the cluster, copied to every other member.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::RngCore;
use sha2::{Digest, Sha256};
use tonic::metadata::{Ascii, MetadataValue};

pub const FILE_NAME: &str = "cluster.secret";
/// The gRPC metadata header carrying it.
pub const HEADER: &str = "x-opsdeck-cluster-secret";

#[derive(Clone)]
pub struct ClusterSecret {
    header: MetadataValue<Ascii>,
    hash: [u8; 32],
}

/// Never prints the secret.
impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "no cluster secret at {0}: copy `cluster.secret` from an existing member's data dir \
         (or pass --cluster-secret-file), or start the first node with --init"
    )]
    Missing(PathBuf),
    #[error("cannot read or write the cluster secret {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} does not hold a valid cluster secret (expected 64 hex characters)")]
    Invalid(PathBuf),
}

impl ClusterSecret {
    fn from_text(text: &str, path: &Path) -> Result<ClusterSecret, SecretError> {
        let text = text.trim();
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SecretError::Invalid(path.to_path_buf()));
        }
        let header = text
            .parse()
            .map_err(|_| SecretError::Invalid(path.to_path_buf()))?;
        Ok(ClusterSecret {
            header,
            hash: Sha256::digest(text.as_bytes()).into(),
        })
    }

    pub fn read(path: &Path) -> Result<ClusterSecret, SecretError> {
        match std::fs::read_to_string(path) {
            Ok(text) => ClusterSecret::from_text(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(SecretError::Missing(path.to_path_buf()))
            }
            Err(source) => Err(SecretError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// The data dir's secret: kept if present; else copied from `import`; else created
    /// when `create` (a node bootstrapping a new cluster); else an error saying what to do.
    pub fn load_or_create(
        data_dir: &Path,
        import: Option<&Path>,
        create: bool,
    ) -> Result<ClusterSecret, SecretError> {
        let path = data_dir.join(FILE_NAME);
        match ClusterSecret::read(&path) {
            Err(SecretError::Missing(_)) => {}
            other => return other,
        }
        let text = match import {
            Some(from) => {
                ClusterSecret::read(from)?;
                std::fs::read_to_string(from).map_err(|source| SecretError::Io {
                    path: from.to_path_buf(),
                    source,
                })?
            }
            None if create => generate(),
            None => return Err(SecretError::Missing(path)),
        };
        write_private(&path, text.trim().as_bytes()).map_err(|source| SecretError::Io {
            path: path.clone(),
            source,
        })?;
        ClusterSecret::read(&path)
    }

    pub fn header(&self) -> &MetadataValue<Ascii> {
        &self.header
    }

    /// Whether `presented` is this secret.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let h: [u8; 32] = Sha256::digest(presented).into();
        h == self.hash
    }
}

/// A new random secret as 64 hex characters.
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Writes `data` to `path` readable by the owner only (created 0600, then renamed into
/// place so a crash never leaves half a file).
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(data)?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Adds the cluster secret to outgoing node-to-node calls.
#[derive(Clone)]
pub struct SecretInterceptor(pub ClusterSecret);

impl tonic::service::Interceptor for SecretInterceptor {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert(HEADER, self.0.header.clone());
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_private_and_refused_when_missing_or_bad() {
        let dir = tempfile::tempdir().unwrap();
        let err = ClusterSecret::load_or_create(dir.path(), None, false).unwrap_err();
        assert!(err.to_string().contains("copy `cluster.secret`"), "{err}");
        let a = ClusterSecret::load_or_create(dir.path(), None, true).unwrap();
        let path = dir.path().join(FILE_NAME);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = ClusterSecret::load_or_create(dir.path(), None, true).unwrap();
        assert_eq!(a.header(), b.header());
        assert!(a.matches(a.header().as_bytes()) && !a.matches(b"nope"));

        let other = tempfile::tempdir().unwrap();
        let c = ClusterSecret::load_or_create(other.path(), Some(&path), false).unwrap();
        assert_eq!(c.header(), a.header());

        std::fs::write(&path, "short").unwrap();
        let err = ClusterSecret::read(&path).unwrap_err();
        assert!(err.to_string().contains("64 hex"), "{err}");
    }
}
