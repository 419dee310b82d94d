//! The backup file ([`mod@format`]): manifest, checksums, verification and the pair reader,
//! shared by the node (restore chunks) and the CLI (writing, verifying, restoring files).

pub mod format;
