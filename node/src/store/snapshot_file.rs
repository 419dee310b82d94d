//! The current snapshot as one file, `DATA/snapshot.bin`: a big-endian u64 length, the
//! bincode `SnapshotMeta`, then the body: a little-endian u64 pair count and each pair as
//! length-prefixed key and value (bincode's encoding of `Vec<(Vec<u8>, Vec<u8>)>`, the same
//! payload a backup carries, read by [`crate::backup::format::PairReader`]).
//!
//! Snapshots are written and read as streams, never held in memory whole: a new one is
//! written to a side file (`.building` by this node, `.recv` when received from the
//! leader), fsynced, then renamed over the old one, so a crash leaves either the old
//! snapshot or the new, never a torn one. The whole file (header included) is what
//! openraft ships to a follower in chunks, so the follower stores exactly what the leader
//! has. Kept out of sled so large snapshots do not pass through the database's log.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{decode, encode};
use crate::backup::format::PairReader;
use crate::types::SnapshotMeta;

pub const FILE_NAME: &str = "snapshot.bin";
/// A snapshot this node is building.
pub const BUILDING_SUFFIX: &str = "bin.building";
/// A snapshot being received from the leader.
pub const RECEIVING_SUFFIX: &str = "bin.recv";
/// A snapshot's metadata is membership and ids: far below this.
const MAX_META: u64 = 16 * 1024 * 1024;
/// Buffer between the pairs and the file.
const WRITE_BUFFER: usize = 1024 * 1024;

/// The side files a crash can leave next to `path` (the snapshot file): a half-built or
/// half-received snapshot, and the temp file of older releases.
pub fn leftovers(path: &Path) -> Vec<PathBuf> {
    [BUILDING_SUFFIX, RECEIVING_SUFFIX, "bin.tmp"]
        .iter()
        .map(|s| path.with_extension(s))
        .filter(|p| p.exists())
        .collect()
}

/// Writes a snapshot pair by pair: the header first, a placeholder count, then the pairs;
/// `finish` fills in the count and makes the file durable.
pub struct SnapshotWriter {
    out: BufWriter<File>,
    count_at: u64,
    pairs: u64,
    bytes: u64,
}

impl SnapshotWriter {
    pub fn create(path: &Path, meta: &SnapshotMeta) -> io::Result<SnapshotWriter> {
        let meta_bytes = encode(meta)?;
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, File::create(path)?);
        out.write_all(&(meta_bytes.len() as u64).to_be_bytes())?;
        out.write_all(&meta_bytes)?;
        let count_at = 8 + meta_bytes.len() as u64;
        out.write_all(&0u64.to_le_bytes())?;
        Ok(SnapshotWriter {
            out,
            count_at,
            pairs: 0,
            bytes: count_at + 8,
        })
    }

    pub fn pair(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        crate::fail_io!("snapshot::write", e => e);
        for item in [key, value] {
            self.out.write_all(&(item.len() as u64).to_le_bytes())?;
            self.out.write_all(item)?;
        }
        self.pairs += 1;
        self.bytes += 16 + (key.len() + value.len()) as u64;
        Ok(())
    }

    /// Fills in the pair count and fsyncs; answers the file's size.
    pub fn finish(self) -> io::Result<u64> {
        let mut file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(self.count_at))?;
        file.write_all(&self.pairs.to_le_bytes())?;
        file.sync_all()?;
        Ok(self.bytes)
    }
}

/// Makes `side` (a finished `.building` or `.recv` file) the snapshot at `path`: renamed
/// over it, and the directory fsynced so the rename survives a crash.
pub fn promote(side: &Path, path: &Path) -> io::Result<()> {
    fs::rename(side, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The header of a snapshot file: its metadata, and the byte offset where the body starts.
fn read_header(f: &mut impl Read, file_len: u64, path: &Path) -> io::Result<(SnapshotMeta, u64)> {
    let mut len = [0u8; 8];
    f.read_exact(&mut len)?;
    let len = u64::from_be_bytes(len);
    if len > file_len.saturating_sub(8) || len > MAX_META {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is damaged: its header claims {len} bytes of metadata in a {file_len}-byte file",
                path.display()
            ),
        ));
    }
    let mut meta = vec![0u8; len as usize];
    f.read_exact(&mut meta)?;
    Ok((decode(&meta)?, 8 + len))
}

/// The stored snapshot's metadata and file size, or None if there is none yet.
pub fn read_meta(path: &Path) -> io::Result<Option<(SnapshotMeta, u64)>> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let file_len = f.metadata()?.len();
    let (meta, _) = read_header(&mut f, file_len, path)?;
    Ok(Some((meta, file_len)))
}

/// The pairs of the snapshot file at `path`, read as a stream, with its metadata.
pub fn pairs(path: &Path) -> io::Result<(SnapshotMeta, PairReader<BufReader<File>>)> {
    let mut f = File::open(path)?;
    let file_len = f.metadata()?.len();
    let (meta, _) = read_header(&mut f, file_len, path)?;
    Ok((
        meta,
        PairReader::new(BufReader::with_capacity(WRITE_BUFFER, f))?,
    ))
}

/// Reads a snapshot file through and checks its framing: as many pairs as it says, each
/// within the item limit, and nothing after them. Answers its metadata and pair count. A
/// snapshot from the leader is checked this way before anything is replaced with it.
pub fn check(path: &Path) -> io::Result<(SnapshotMeta, u64)> {
    let (meta, mut reader) = pairs(path)?;
    let total = reader.total();
    for pair in reader.by_ref() {
        pair?;
    }
    let mut rest = [0u8; 1];
    if reader.into_inner().read(&mut rest)? != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} has bytes after its last pair", path.display()),
        ));
    }
    Ok((meta, total))
}

/// Opens the stored snapshot for streaming its body: the file positioned at the body, the
/// meta, and the body's length.
pub async fn open_body(path: &Path) -> io::Result<(tokio::fs::File, SnapshotMeta, u64)> {
    let mut f = File::open(path)?;
    let file_len = f.metadata()?.len();
    let (meta, offset) = read_header(&mut f, file_len, path)?;
    let mut f = tokio::fs::File::from_std(f);
    tokio::io::AsyncSeekExt::seek(&mut f, SeekFrom::Start(offset)).await?;
    Ok((f, meta, file_len - offset))
}

/// Size of the stored snapshot in bytes (0 if none).
pub fn size(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_snapshot_reads_back_pair_by_pair_and_checks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let side = path.with_extension(BUILDING_SUFFIX);
        let meta = SnapshotMeta::default();
        let mut w = SnapshotWriter::create(&side, &meta).unwrap();
        w.pair(b"d/a", b"1").unwrap();
        w.pair(b"d/b", &[7u8; 3000]).unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(bytes, fs::metadata(&side).unwrap().len());
        assert_eq!(leftovers(&path), vec![side.clone()]);
        promote(&side, &path).unwrap();
        assert!(leftovers(&path).is_empty());
        assert_eq!(check(&path).unwrap(), (meta.clone(), 2));
        let (_, reader) = pairs(&path).unwrap();
        let got: Vec<_> = reader.map(|p| p.unwrap()).collect();
        assert_eq!(got[0], (b"d/a".to_vec(), b"1".to_vec()));
        assert_eq!(got[1].1.len(), 3000);
        assert_eq!(read_meta(&path).unwrap().map(|(_, n)| n), Some(bytes));

        // A truncated file, or one with bytes after its pairs, fails the check.
        let full = fs::read(&path).unwrap();
        fs::write(&path, &full[..full.len() - 10]).unwrap();
        assert!(check(&path).is_err());
        fs::write(&path, [full.as_slice(), b"x"].concat()).unwrap();
        assert!(check(&path)
            .unwrap_err()
            .to_string()
            .contains("after its last pair"));
    }
}
