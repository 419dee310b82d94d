//! `cluster.toml`: where a dev cluster's nodes are (written by `opsdeck dev`, read by every
//! verb given `--cluster DIR`, and by default from the default dev dir).

use std::path::{Path, PathBuf};

use color_eyre::eyre::{eyre, Result, WrapErr};
use serde::{Deserialize, Serialize};

pub const FILE_NAME: &str = "cluster.toml";
/// The dev cluster's first admin API key (mode 0600), read by verbs and the console.
pub const ADMIN_KEY_FILE: &str = "admin.key";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClusterFile {
    #[serde(rename = "node", default)]
    pub nodes: Vec<NodeEntry>,
    /// The flags `opsdeck dev` started its nodes with, so a node added later
    /// (`add-node --spawn`) runs like the others. Absent in files from before: defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<NodeSettings>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeSettings {
    pub snapshot_every: u64,
    pub keep_logs: u64,
    pub heartbeat_ms: u64,
    pub election_timeout_ms: (u64, u64),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeEntry {
    pub id: u64,
    pub grpc: String,
    pub http: String,
    pub data: PathBuf,
    /// Process id while the dev cluster runs; absent once stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

impl ClusterFile {
    pub fn load(dir: &Path) -> Result<ClusterFile> {
        let path = dir.join(FILE_NAME);
        let text = std::fs::read_to_string(&path).wrap_err_with(|| {
            format!(
                "cannot read {}: no cluster there (start one with `opsdeck dev`, or pass --endpoints)",
                path.display()
            )
        })?;
        let file: ClusterFile = toml::from_str(&text)
            .map_err(|e| eyre!("{} is not a valid cluster file: {}", path.display(), e))?;
        if file.nodes.is_empty() {
            return Err(eyre!("{} lists no nodes", path.display()));
        }
        Ok(file)
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(FILE_NAME);
        let text = toml::to_string_pretty(self)?;
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).wrap_err_with(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path)
            .wrap_err_with(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    pub fn grpc_endpoints(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.grpc.clone()).collect()
    }
}

/// The default dev cluster directory: `$XDG_DATA_HOME/opsdeck/dev`.
pub fn default_dev_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "opsdeck")
        .map(|d| d.data_dir().join("dev"))
        .unwrap_or_else(|| PathBuf::from(".opsdeck-dev"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = ClusterFile {
            nodes: vec![NodeEntry {
                id: 1,
                grpc: "127.0.0.1:7101".into(),
                http: "127.0.0.1:7201".into(),
                data: dir.path().join("n1"),
                pid: Some(42),
            }],
            settings: Some(NodeSettings {
                snapshot_every: 10_000,
                keep_logs: 1_000,
                heartbeat_ms: 50,
                election_timeout_ms: (150, 300),
            }),
        };
        file.save(dir.path()).unwrap();
        assert_eq!(ClusterFile::load(dir.path()).unwrap(), file);

        std::fs::write(dir.path().join(FILE_NAME), "[[node]]\nid = \"one\"\n").unwrap();
        let err = ClusterFile::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("is not a valid cluster file"), "{err}");

        let empty = tempfile::tempdir().unwrap();
        let err = ClusterFile::load(empty.path()).unwrap_err().to_string();
        assert!(err.contains("no cluster there"), "{err}");
    }
}
