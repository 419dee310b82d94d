//! The current snapshot as one file, `DATA/snapshot.bin`: a length-prefixed bincode
//! `SnapshotMeta` followed by the encoded body. Written to a temp file, fsynced, then renamed
//! over the old one, so a crash leaves either the old snapshot or the new, never a torn one.
//! Kept out of sled so multi-megabyte snapshots do not pass through the database's log.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;

use super::{decode, encode};
use crate::types::SnapshotMeta;

pub const FILE_NAME: &str = "snapshot.bin";

pub fn write(path: &Path, meta: &SnapshotMeta, body: &[u8]) -> io::Result<()> {
    let meta_bytes = encode(meta)?;
    let tmp = path.with_extension("bin.tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&(meta_bytes.len() as u64).to_be_bytes())?;
        f.write_all(&meta_bytes)?;
        f.write_all(body)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The stored snapshot, or None if there is none yet.
pub fn read(path: &Path) -> io::Result<Option<(SnapshotMeta, Vec<u8>)>> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut len = [0u8; 8];
    f.read_exact(&mut len)?;
    let len = u64::from_be_bytes(len);
    let file_len = f.metadata()?.len();
    if len > file_len.saturating_sub(8) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is damaged: its header claims {len} bytes of metadata in a {file_len}-byte file", path.display()),
        ));
    }
    let mut meta = vec![0u8; len as usize];
    f.read_exact(&mut meta)?;
    let mut body = Vec::with_capacity((file_len - 8 - len) as usize);
    f.read_to_end(&mut body)?;
    Ok(Some((decode(&meta)?, body)))
}

/// Opens the stored snapshot for streaming its body: the file positioned at the body, the
/// meta, and the body's length.
pub async fn open_body(path: &Path) -> io::Result<(tokio::fs::File, SnapshotMeta, u64)> {
    use tokio::io::AsyncReadExt;
    let mut f = tokio::fs::File::open(path).await?;
    let file_len = f.metadata().await?.len();
    let len = f.read_u64().await?;
    if len > file_len.saturating_sub(8) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is damaged: its header claims {len} bytes of metadata in a {file_len}-byte file", path.display()),
        ));
    }
    let mut meta = vec![0u8; len as usize];
    f.read_exact(&mut meta).await?;
    Ok((f, decode(&meta)?, file_len - 8 - len))
}

/// Size of the stored snapshot in bytes (0 if none).
pub fn size(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}
