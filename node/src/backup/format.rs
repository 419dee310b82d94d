//! The backup file: a state-machine snapshot's payload wrapped with a manifest.
//!
//! ```text
//! OPSDECK-BACKUP\n                      magic
//! payload                              manifest.payload_bytes bytes
//! manifest                             JSON
//! u32 big-endian                       manifest length
//! 32 bytes                             SHA-256 of the manifest
//! \nOPSDECK-END\n                      end marker
//! ```
//!
//! The manifest comes last so a backup can be written while it streams in; the end marker
//! makes a truncated file recognisable as such. The payload has its own SHA-256 in the
//! manifest and the manifest has its own checksum, so one flipped byte anywhere is found.
//!
//! The payload is the snapshot body exactly as nodes exchange it: bincode of
//! `Vec<(Vec<u8>, Vec<u8>)>` — a little-endian u64 count, then per pair a u64 length and
//! the key bytes, a u64 length and the value bytes — so it can be read pair by pair.
//!
//! The state digest (see [`crate::sums`]): a snapshot carries the sums of exactly the state
//! it holds (its `m/digest` pair, frozen with the rest), the writer checks them against the
//! pairs and records them in the manifest (`data_digest`, `tenants_digest`, `state_digest`),
//! and [`verify`] sums the payload again pair by pair, in the same bounded memory as the
//! rest of the check. Payload names are the logical ones the digest covers (data as
//! `d/KEY`, quotas `q/`, usage `u/`, keys `k/`, audit `a/`; a staged restore's `r/…` and the
//! `m/` bookkeeping are not covered), so a payload sums exactly as the state machine it came
//! from. A manifest written before backups carried the digest has none; it still verifies
//! (see [`Manifest::has_digest`]).

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::sums::{self, DigestState};

pub const MAGIC: &[u8] = b"OPSDECK-BACKUP\n";
pub const END: &[u8] = b"\nOPSDECK-END\n";
/// The payload and manifest layout this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes after the manifest: its length, its checksum, the end marker.
const TRAILER: u64 = 4 + 32 + END.len() as u64;
/// No key or value in a state machine is this large; a bigger length means damage.
const MAX_ITEM: u64 = 64 * 1024 * 1024;
/// Where user data lives in the state machine (see `store::state_machine`).
const DATA_PREFIX: &[u8] = b"d/";
/// The snapshot's own record of its digest (see `store::state_machine`).
const DIGEST_PAIR: &[u8] = b"m/digest";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Manifest {
    pub format_version: u32,
    /// The cluster the backup was taken on; "" when unknown (a manifest without it).
    #[serde(default)]
    pub cluster_id: String,
    /// The log id the state machine had applied when the snapshot was taken.
    pub applied_term: u64,
    pub applied_index: u64,
    /// Node that served the backup (the leader at the time).
    pub source_node: u64,
    pub membership: Vec<MemberRecord>,
    /// User key-value pairs, and their key + value bytes.
    pub key_count: u64,
    pub data_bytes: u64,
    /// Every pair of the state machine: data, API key hashes, quotas, usage, audit.
    pub pairs: u64,
    pub payload_bytes: u64,
    pub payload_sha256: String,
    pub created_unix_ms: i64,
    /// The state digest at `applied_index`, hex (64 digits): the user data part, the tenant
    /// quotas and usage part, and the total (data + tenants + API keys + audit). Empty in
    /// backups made before backups carried the digest, or from a node that keeps none.
    #[serde(default)]
    pub data_digest: String,
    #[serde(default)]
    pub tenants_digest: String,
    #[serde(default)]
    pub state_digest: String,
}

impl Manifest {
    /// Whether the manifest records the state digest (older backups do not).
    pub fn has_digest(&self) -> bool {
        !self.state_digest.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub id: u64,
    pub grpc: String,
    pub http: String,
    pub voter: bool,
}

/// Why a file is not a usable backup. The message names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The cause is in the message, and deliberately not a `source` too: printed with its
    /// chain (`{:#}`), it would be said twice.
    #[error("{path}: cannot read it: {cause}")]
    Io { path: String, cause: io::Error },
    #[error("{0}")]
    Invalid(String),
}

fn invalid(path: &Path, what: impl std::fmt::Display) -> BackupError {
    BackupError::Invalid(format!("{}: {what}", path.display()))
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> BackupError + '_ {
    move |cause| BackupError::Io {
        path: path.display().to_string(),
        cause,
    }
}

/// Reads a payload pair by pair.
pub struct PairReader<R> {
    inner: R,
    remaining: u64,
    total: u64,
}

impl<R: Read> PairReader<R> {
    pub fn new(mut inner: R) -> io::Result<PairReader<R>> {
        let total = read_u64(&mut inner)?;
        Ok(PairReader {
            inner,
            remaining: total,
            total,
        })
    }

    /// How many pairs the payload says it holds.
    pub fn total(&self) -> u64 {
        self.total
    }

    fn item(&mut self) -> io::Result<Vec<u8>> {
        let len = read_u64(&mut self.inner)?;
        if len > MAX_ITEM {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("an item claims {len} bytes, more than any key or value can hold"),
            ));
        }
        let mut buf = vec![0; len as usize];
        self.inner.read_exact(&mut buf)?;
        Ok(buf)
    }

    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Iterator for PairReader<R> {
    type Item = io::Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        Some(self.item().and_then(|k| Ok((k, self.item()?))))
    }
}

fn read_u64(r: &mut impl Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Figures found by reading a payload through.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PayloadFigures {
    pub sha256: String,
    pub pairs: u64,
    pub key_count: u64,
    pub data_bytes: u64,
    /// The digest's sums of the pairs (index 0: the payload does not say which).
    pub sums: DigestState,
    /// The digest the payload's own `m/digest` pair records, if it has one.
    pub carried: Option<DigestState>,
}

/// The three hex digests a manifest records, of `d`.
fn digest_hexes(d: &DigestState) -> [String; 3] {
    [d.data.hex(), d.tenants.hex(), d.total().hex()]
}

/// Why the sums `found` differ from `recorded` (the three hex digests), if they do.
fn digest_mismatch(found: &DigestState, recorded: [&str; 3], whose: &str) -> Option<String> {
    let names = ["data", "quotas and usage", "state"];
    let found = digest_hexes(found);
    // The total first: it is what `opsdeck check` compares.
    [2, 0, 1].into_iter().find_map(|i| {
        (found[i] != recorded[i]).then(|| {
            format!(
                "payload {} digest {} does not match {whose} {}",
                names[i],
                found[i],
                if recorded[i].is_empty() {
                    "(none)"
                } else {
                    recorded[i]
                }
            )
        })
    })
}

/// Counts what a payload of exactly `len` bytes holds and hashes it. Fails if it does not
/// parse, or parses to a different length.
fn scan_payload(r: impl Read, len: u64) -> io::Result<PayloadFigures> {
    let mut hashing = HashingReader {
        inner: r.take(len),
        hasher: Sha256::new(),
        read: 0,
    };
    let mut figures = PayloadFigures::default();
    let mut pairs = PairReader::new(&mut hashing)?;
    for pair in &mut pairs {
        let (k, v) = pair?;
        figures.pairs += 1;
        if let Some(key) = k.strip_prefix(DATA_PREFIX) {
            figures.key_count += 1;
            figures.data_bytes += (key.len() + v.len()) as u64;
        }
        if k == DIGEST_PAIR {
            figures.carried = Some(DigestState::decode(&v).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("its digest record ({} bytes) is not one", v.len()),
                )
            })?);
        } else if let Some(part) = sums::part_of(&k) {
            figures.sums.change(part, &k, None, Some(&v));
        }
    }
    // Anything after the last pair is damage too.
    io::copy(&mut hashing, &mut io::sink())?;
    if hashing.read != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the payload ends after {} of {len} bytes", hashing.read),
        ));
    }
    figures.sha256 = hex::encode(hashing.hasher.finalize());
    Ok(figures)
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// Checks a backup file without touching any cluster: magic, end marker, manifest checksum
/// and format version, length, payload checksum, that the payload parses to the pairs and
/// keys the manifest records, and that its pairs sum to the state digest the manifest (and
/// the payload's own digest record) hold. Returns the manifest; one without a digest (an
/// older backup) passes on the rest ([`Manifest::has_digest`] tells).
///
/// The checksum says the file is as written; the digest says what was written is the
/// state the cluster had: a payload rewritten with a fresh checksum (by hand or by a bug)
/// is still found.
pub fn verify(path: &Path) -> Result<Manifest, BackupError> {
    let (manifest, mut file) = read_manifest(path)?;
    file.seek(SeekFrom::Start(MAGIC.len() as u64))
        .map_err(io_err(path))?;
    let found = scan_payload(
        BufReader::with_capacity(1 << 20, file),
        manifest.payload_bytes,
    )
    .map_err(|e| invalid(path, format!("the payload is damaged: {e}")))?;
    if found.sha256 != manifest.payload_sha256 {
        return Err(invalid(
            path,
            format!(
                "the payload's SHA-256 is {}, the manifest records {}: the file was damaged after it was written; use another backup",
                found.sha256, manifest.payload_sha256
            ),
        ));
    }
    if (found.pairs, found.key_count, found.data_bytes)
        != (manifest.pairs, manifest.key_count, manifest.data_bytes)
    {
        return Err(invalid(
            path,
            format!(
                "the payload holds {} pairs, {} keys, {} bytes; the manifest records {}, {}, {}",
                found.pairs,
                found.key_count,
                found.data_bytes,
                manifest.pairs,
                manifest.key_count,
                manifest.data_bytes
            ),
        ));
    }
    let altered = |why: String| {
        invalid(
            path,
            format!("{why}: the backup was altered or built wrong; use another backup"),
        )
    };
    if manifest.has_digest() {
        let recorded = [
            manifest.data_digest.as_str(),
            manifest.tenants_digest.as_str(),
            manifest.state_digest.as_str(),
        ];
        if let Some(why) = digest_mismatch(&found.sums, recorded, "the manifest's") {
            return Err(altered(why));
        }
    }
    if let Some(carried) = &found.carried {
        let recorded = digest_hexes(carried);
        let recorded = [&*recorded[0], &*recorded[1], &*recorded[2]];
        if let Some(why) = digest_mismatch(&found.sums, recorded, "the payload's own record") {
            return Err(altered(why));
        }
        if carried.index != manifest.applied_index {
            return Err(altered(format!(
                "the payload's digest is of index {}, the manifest's applied index is {}",
                carried.index, manifest.applied_index
            )));
        }
    }
    Ok(manifest)
}

/// A backup file's pairs, read from disk.
pub type Payload = PairReader<io::Take<BufReader<File>>>;

/// A verified backup's manifest and its pairs, for restoring.
pub fn open_verified(path: &Path) -> Result<(Manifest, Payload), BackupError> {
    let manifest = verify(path)?;
    let mut file = File::open(path).map_err(io_err(path))?;
    file.seek(SeekFrom::Start(MAGIC.len() as u64))
        .map_err(io_err(path))?;
    let payload = BufReader::with_capacity(1 << 20, file).take(manifest.payload_bytes);
    let pairs = PairReader::new(payload).map_err(io_err(path))?;
    Ok((manifest, pairs))
}

/// Reads and checks everything but the payload.
fn read_manifest(path: &Path) -> Result<(Manifest, File), BackupError> {
    if path.is_dir() {
        return Err(BackupError::Invalid(format!(
            "{} is a directory; give the backup file (the one `opsdeck backup --out FILE` wrote)",
            path.display()
        )));
    }
    let mut file = File::open(path).map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    if len == 0 {
        return Err(invalid(path, "the file is empty: not a backup"));
    }
    let mut head = vec![0u8; MAGIC.len().min(len as usize)];
    file.read_exact(&mut head).map_err(io_err(path))?;
    if head != MAGIC {
        return Err(invalid(
            path,
            "not an opsdeck backup (it does not start with the OPSDECK-BACKUP header)",
        ));
    }
    let truncated = || {
        invalid(
            path,
            format!("the file is truncated ({len} bytes, no end marker): the backup did not finish writing or was cut short; use another backup"),
        )
    };
    if len < MAGIC.len() as u64 + TRAILER {
        return Err(truncated());
    }
    let mut trailer = vec![0u8; TRAILER as usize];
    file.seek(SeekFrom::Start(len - TRAILER))
        .map_err(io_err(path))?;
    file.read_exact(&mut trailer).map_err(io_err(path))?;
    if &trailer[36..] != END {
        return Err(truncated());
    }
    let manifest_len = u32::from_be_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]) as u64;
    if manifest_len > len - TRAILER - MAGIC.len() as u64 {
        return Err(invalid(
            path,
            format!("the manifest length ({manifest_len} bytes) does not fit in the file: it is damaged"),
        ));
    }
    let mut manifest_bytes = vec![0u8; manifest_len as usize];
    file.seek(SeekFrom::Start(len - TRAILER - manifest_len))
        .map_err(io_err(path))?;
    file.read_exact(&mut manifest_bytes).map_err(io_err(path))?;
    if Sha256::digest(&manifest_bytes).as_slice() != &trailer[4..36] {
        return Err(invalid(
            path,
            "the manifest's checksum does not match: the file is damaged; use another backup",
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| invalid(path, format!("the manifest is not valid JSON: {e}")))?;
    let version = value.get("format_version").and_then(|v| v.as_u64());
    if version != Some(FORMAT_VERSION as u64) {
        return Err(invalid(
            path,
            format!(
                "backup format version {}; this opsdeck reads version {FORMAT_VERSION}: restore it with the opsdeck release that wrote it",
                version.map_or("unknown".to_string(), |v| v.to_string())
            ),
        ));
    }
    let manifest: Manifest = serde_json::from_value(value)
        .map_err(|e| invalid(path, format!("the manifest is incomplete: {e}")))?;
    // A damaged or forged manifest may claim any payload length: add without overflowing
    // (no file is u64::MAX bytes long, so a saturated sum is refused like any other).
    let expected =
        (MAGIC.len() as u64 + manifest_len + TRAILER).saturating_add(manifest.payload_bytes);
    if expected != len {
        return Err(invalid(
            path,
            format!(
                "the file is {len} bytes but its manifest describes {expected}: it is damaged or truncated; use another backup"
            ),
        ));
    }
    Ok((manifest, file))
}

/// Writes a backup as its payload streams in: to `FILE.partial`, renamed over `FILE` only
/// once the payload checked out, so a failed backup never leaves a file that looks whole.
pub struct BackupWriter {
    path: PathBuf,
    partial: PathBuf,
    file: io::BufWriter<File>,
    written: u64,
}

impl BackupWriter {
    pub fn create(path: &Path) -> Result<BackupWriter, BackupError> {
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let file = File::create(&partial).map_err(io_err(&partial))?;
        let mut file = io::BufWriter::with_capacity(1 << 20, file);
        file.write_all(MAGIC).map_err(io_err(&partial))?;
        Ok(BackupWriter {
            path: path.to_path_buf(),
            partial,
            file,
            written: 0,
        })
    }

    pub fn write(&mut self, chunk: &[u8]) -> Result<(), BackupError> {
        self.written += chunk.len() as u64;
        self.file.write_all(chunk).map_err(io_err(&self.partial))
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    /// Checks the payload against the sender's checksum, appends the manifest (the figures
    /// are counted from the file itself), syncs and renames into place.
    pub fn finish(
        mut self,
        mut manifest: Manifest,
        sender_sha256: &str,
    ) -> Result<Manifest, BackupError> {
        let partial = self.partial.clone();
        let fail = |e: BackupError| {
            let _ = std::fs::remove_file(&partial);
            e
        };
        self.file.flush().map_err(io_err(&partial)).map_err(fail)?;
        let mut file = File::open(&partial)
            .map_err(io_err(&partial))
            .map_err(fail)?;
        file.seek(SeekFrom::Start(MAGIC.len() as u64))
            .map_err(io_err(&partial))
            .map_err(fail)?;
        let found =
            scan_payload(BufReader::with_capacity(1 << 20, file), self.written).map_err(|e| {
                fail(invalid(
                    &partial,
                    format!("the received payload is damaged: {e}"),
                ))
            })?;
        if found.sha256 != sender_sha256 {
            return Err(fail(invalid(
                &partial,
                format!(
                    "received bytes hash to {}, the node sent {sender_sha256}: the transfer was damaged; run the backup again",
                    found.sha256
                ),
            )));
        }
        // The snapshot's own digest record, checked against its pairs: the manifest records
        // the digest of the state the payload holds, at the index the payload is of.
        if let Some(carried) = &found.carried {
            let recorded = digest_hexes(carried);
            let recorded = [&*recorded[0], &*recorded[1], &*recorded[2]];
            let why =
                digest_mismatch(&found.sums, recorded, "the snapshot's own record").or_else(|| {
                    (carried.index != manifest.applied_index).then(|| {
                        format!(
                            "the snapshot's digest is of index {}, the snapshot of index {}",
                            carried.index, manifest.applied_index
                        )
                    })
                });
            if let Some(why) = why {
                return Err(fail(invalid(
                    &partial,
                    format!("{why}: the leader's snapshot is not consistent; run `opsdeck check`, then the backup again"),
                )));
            }
            [
                manifest.data_digest,
                manifest.tenants_digest,
                manifest.state_digest,
            ] = digest_hexes(carried);
        }
        manifest.format_version = FORMAT_VERSION;
        manifest.payload_bytes = self.written;
        manifest.payload_sha256 = found.sha256;
        manifest.pairs = found.pairs;
        manifest.key_count = found.key_count;
        manifest.data_bytes = found.data_bytes;
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| {
            fail(invalid(
                &partial,
                format!("cannot encode the manifest: {e}"),
            ))
        })?;
        let mut tail = Vec::with_capacity(json.len() + TRAILER as usize);
        tail.extend_from_slice(&json);
        tail.extend_from_slice(&(json.len() as u32).to_be_bytes());
        tail.extend_from_slice(&Sha256::digest(&json));
        tail.extend_from_slice(END);
        let written = self
            .file
            .write_all(&tail)
            .and_then(|_| self.file.flush())
            .and_then(|_| self.file.get_ref().sync_all())
            .and_then(|_| std::fs::rename(&self.partial, &self.path));
        written.map_err(io_err(&partial)).map_err(fail)?;
        Ok(manifest)
    }

    /// Gives up: removes the partial file.
    pub fn abandon(self) {
        let _ = std::fs::remove_file(&self.partial);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let owned: Vec<(Vec<u8>, Vec<u8>)> = pairs
            .iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        bincode::serialize(&owned).unwrap()
    }

    type SamplePairs = Vec<(&'static [u8], &'static [u8])>;

    /// The pairs of the sample, and the digest record a snapshot of them at `index` carries.
    fn sample_pairs(index: u64) -> (SamplePairs, Vec<u8>) {
        let pairs: Vec<(&[u8], &[u8])> = vec![
            (b"d/a", b"1"),
            (b"d/bb", b"22"),
            (b"k/x", b"hash"),
            (b"q/t", b"quota"),
            (b"r/d/staged", b"not covered"),
        ];
        let mut sums = DigestState {
            index,
            ..DigestState::default()
        };
        for (k, v) in &pairs {
            if let Some(part) = sums::part_of(k) {
                sums.change(part, k, None, Some(v));
            }
        }
        (pairs, sums.encode())
    }

    fn empty_manifest() -> Manifest {
        Manifest {
            cluster_id: "c1".into(),
            applied_term: 2,
            applied_index: 40,
            source_node: 1,
            created_unix_ms: 7,
            ..Manifest::default()
        }
    }

    fn write_backup(path: &Path, body: &[u8]) -> Result<Manifest, BackupError> {
        let mut w = BackupWriter::create(path).unwrap();
        for chunk in body.chunks(5) {
            w.write(chunk).unwrap();
        }
        let sha = hex::encode(Sha256::digest(body));
        w.finish(empty_manifest(), &sha)
    }

    fn sample(dir: &Path) -> (PathBuf, Vec<u8>) {
        let path = dir.join("b.odb");
        let (mut pairs, record) = sample_pairs(40);
        pairs.push((DIGEST_PAIR, &record));
        let body = payload(&pairs);
        let m = write_backup(&path, &body).unwrap();
        assert_eq!((m.key_count, m.data_bytes, m.pairs), (2, 6, 6));
        assert!(m.has_digest());
        (path, std::fs::read(dir.join("b.odb")).unwrap())
    }

    fn sample_without_digest(dir: &Path) -> (PathBuf, Vec<u8>) {
        let path = dir.join("old.odb");
        let body = payload(&[(b"d/a", b"1"), (b"d/bb", b"22"), (b"k/x", b"hash")]);
        let mut w = BackupWriter::create(&path).unwrap();
        for chunk in body.chunks(5) {
            w.write(chunk).unwrap();
        }
        let sha = hex::encode(Sha256::digest(&body));
        let m = w.finish(empty_manifest(), &sha).unwrap();
        assert_eq!((m.key_count, m.data_bytes, m.pairs), (2, 6, 3));
        assert!(!m.has_digest());
        let bytes = std::fs::read(&path).unwrap();
        (path, bytes)
    }

    /// `good` with its payload replaced by `body` and the manifest's length and checksum
    /// made right (its digest left as it was): a payload edited consistently.
    fn with_payload(good: &[u8], body: &[u8]) -> Vec<u8> {
        let trailer = good.len() - TRAILER as usize;
        let len = u32::from_be_bytes(good[trailer..trailer + 4].try_into().unwrap()) as usize;
        let mut manifest: Manifest = serde_json::from_slice(&good[trailer - len..trailer]).unwrap();
        manifest.payload_bytes = body.len() as u64;
        manifest.payload_sha256 = hex::encode(Sha256::digest(body));
        let json = serde_json::to_vec(&manifest).unwrap();
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(body);
        out.extend_from_slice(&json);
        out.extend_from_slice(&(json.len() as u32).to_be_bytes());
        out.extend_from_slice(&Sha256::digest(&json));
        out.extend_from_slice(END);
        out
    }

    #[test]
    fn the_manifest_records_the_digest_the_payload_sums_to_and_verify_checks_it() {
        let dir = tempfile::tempdir().unwrap();
        let (path, good) = sample(dir.path());
        let m = verify(&path).unwrap();
        let (_, record) = sample_pairs(40);
        let want = DigestState::decode(&record).unwrap();
        assert_eq!(m.state_digest, want.total().hex());
        assert_eq!(m.data_digest, want.data.hex());
        assert_eq!(m.tenants_digest, want.tenants.hex());
        // The data part is of `d/` alone; the staged restore is in no part.
        assert_eq!(
            m.data_digest,
            sums::Digest::of_pair(b"d/a", b"1")
                .plus(sums::Digest::of_pair(b"d/bb", b"22"))
                .hex()
        );

        // One value changed, the payload's checksum and counts made right again, the
        // digest (manifest and payload record) left: refused on the digest.
        let (mut pairs, record) = sample_pairs(40);
        pairs[0] = (b"d/a", b"2");
        pairs.push((DIGEST_PAIR, &record));
        std::fs::write(&path, with_payload(&good, &payload(&pairs))).unwrap();
        let e = verify(&path).unwrap_err().to_string();
        assert!(
            e.contains("payload state digest")
                && e.contains("does not match the manifest's")
                && e.contains("the backup was altered or built wrong"),
            "{e}"
        );
        // A quota changed: the quotas-and-usage part says so... through the total first.
        let (mut pairs, record) = sample_pairs(40);
        pairs[3] = (b"q/t", b"QUOTA");
        pairs.push((DIGEST_PAIR, &record));
        std::fs::write(&path, with_payload(&good, &payload(&pairs))).unwrap();
        assert!(verify(&path)
            .unwrap_err()
            .to_string()
            .contains("state digest"));
        // A pair that is not covered (a staged restore's) changes no digest.
        let (mut pairs, record) = sample_pairs(40);
        pairs[4] = (b"r/d/staged", b"other");
        pairs.push((DIGEST_PAIR, &record));
        std::fs::write(&path, with_payload(&good, &payload(&pairs))).unwrap();
        verify(&path).unwrap();
        // The manifest's digest rewritten to match an edited payload, the payload's own
        // record not: still refused.
        let (mut pairs, record) = sample_pairs(40);
        pairs[0] = (b"d/a", b"2");
        let mut edited = DigestState::decode(&record).unwrap();
        edited.change(sums::Part::Data, b"d/a", Some(b"1"), Some(b"2"));
        pairs.push((DIGEST_PAIR, &record));
        let bytes = with_payload(&good, &payload(&pairs));
        let bytes = forged(&bytes, |m| {
            m["data_digest"] = edited.data.hex().into();
            m["state_digest"] = edited.total().hex().into();
        });
        std::fs::write(&path, bytes).unwrap();
        let e = verify(&path).unwrap_err().to_string();
        assert!(e.contains("does not match the payload's own record"), "{e}");
    }

    #[test]
    fn a_backup_from_before_digests_still_verifies_and_says_it_has_none() {
        let dir = tempfile::tempdir().unwrap();
        let (path, good) = sample_without_digest(dir.path());
        assert!(!verify(&path).unwrap().has_digest());
        // As an older release wrote it: no digest fields at all.
        let old = forged(&good, |m| {
            let m = m.as_object_mut().unwrap();
            for f in ["data_digest", "tenants_digest", "state_digest"] {
                m.remove(f);
            }
        });
        std::fs::write(&path, old).unwrap();
        let m = verify(&path).unwrap();
        assert!(!m.has_digest());
        assert_eq!(m.data_digest, "");
    }

    #[test]
    fn the_writer_refuses_a_snapshot_whose_pairs_do_not_sum_to_its_own_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.odb");
        let (mut pairs, record) = sample_pairs(40);
        pairs[1] = (b"d/bb", b"23");
        pairs.push((DIGEST_PAIR, &record));
        let e = write_backup(&path, &payload(&pairs))
            .unwrap_err()
            .to_string();
        assert!(e.contains("the leader's snapshot is not consistent"), "{e}");
        assert!(!path.exists() && !dir.path().join("bad.odb.partial").exists());
        // Of another index than the snapshot's: refused too.
        let (mut pairs, record) = sample_pairs(39);
        pairs.push((DIGEST_PAIR, &record));
        let e = write_backup(&path, &payload(&pairs))
            .unwrap_err()
            .to_string();
        assert!(e.contains("of index 39, the snapshot of index 40"), "{e}");
    }

    #[test]
    fn a_written_backup_verifies_and_reads_back_pair_by_pair() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = sample(dir.path());
        assert!(!dir.path().join("b.odb.partial").exists());
        let m = verify(&path).unwrap();
        assert_eq!(m.applied_index, 40);
        let (_, pairs) = open_verified(&path).unwrap();
        let all: Vec<_> = pairs.map(|p| p.unwrap()).collect();
        assert_eq!(all[1], (b"d/bb".to_vec(), b"22".to_vec()));
        assert_eq!(all.len(), 6);
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (path, good) = sample(dir.path());
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            std::fs::write(&path, &bad).unwrap();
            assert!(verify(&path).is_err(), "flipped byte {i} was not noticed");
        }
        for len in 0..good.len() {
            std::fs::write(&path, &good[..len]).unwrap();
            assert!(
                verify(&path).is_err(),
                "truncation to {len} was not noticed"
            );
        }
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let (path, good) = sample(dir.path());
        std::fs::write(&path, b"").unwrap();
        assert!(verify(&path).unwrap_err().to_string().contains("empty"));
        std::fs::write(&path, &good[..good.len() - 3]).unwrap();
        assert!(verify(&path).unwrap_err().to_string().contains("truncated"));
        std::fs::write(&path, b"PK\x03\x04 a zip file").unwrap();
        assert!(verify(&path)
            .unwrap_err()
            .to_string()
            .contains("not an opsdeck backup"));
        let mut flipped = good.clone();
        flipped[MAGIC.len() + 12] ^= 0x40;
        std::fs::write(&path, &flipped).unwrap();
        assert!(verify(&path).unwrap_err().to_string().contains("damaged"));
    }

    /// `good` with its manifest rewritten by `change` and the checksum, length and end
    /// marker made right again: what someone forging a backup would write.
    fn forged(good: &[u8], change: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let trailer = good.len() - TRAILER as usize;
        let len = u32::from_be_bytes(good[trailer..trailer + 4].try_into().unwrap()) as usize;
        let start = trailer - len;
        let mut manifest: serde_json::Value =
            serde_json::from_slice(&good[start..trailer]).unwrap();
        change(&mut manifest);
        let json = serde_json::to_vec(&manifest).unwrap();
        let mut out = good[..start].to_vec();
        out.extend_from_slice(&json);
        out.extend_from_slice(&(json.len() as u32).to_be_bytes());
        out.extend_from_slice(&Sha256::digest(&json));
        out.extend_from_slice(END);
        out
    }

    /// Regression (found while writing the backup_file fuzz target, confirmed by it): a
    /// manifest claiming a payload near u64::MAX bytes overflowed the length check (a panic
    /// where overflow checks are on, as in debug builds and the fuzz build).
    #[test]
    fn a_manifest_claiming_an_impossible_payload_length_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (path, good) = sample(dir.path());
        for claim in [u64::MAX, u64::MAX - 10, u64::MAX / 2] {
            std::fs::write(&path, forged(&good, |m| m["payload_bytes"] = claim.into())).unwrap();
            let e = verify(&path).unwrap_err().to_string();
            assert!(e.contains("but its manifest describes"), "{e}");
        }
        // The same rewrite without a change still verifies: the forgery helper is faithful.
        std::fs::write(&path, forged(&good, |_| {})).unwrap();
        verify(&path).unwrap();
    }

    mod corruption {
        //! Random damage to a real backup (made with the writer) is always refused with an
        //! error naming the file, never a panic.
        use super::*;
        use proptest::prelude::*;

        /// One change to the file's bytes.
        #[derive(Debug, Clone)]
        enum Damage {
            /// XOR a byte (at `pos % len`) with a non-zero mask.
            Flip(usize, u8),
            /// Cut the file to `pos % len` bytes.
            Truncate(usize),
            /// Insert bytes at `pos % (len + 1)`.
            Insert(usize, Vec<u8>),
        }

        fn damage() -> impl Strategy<Value = Damage> {
            prop_oneof![
                (any::<usize>(), 1..=255u8).prop_map(|(p, m)| Damage::Flip(p, m)),
                any::<usize>().prop_map(Damage::Truncate),
                (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
                    .prop_map(|(p, b)| Damage::Insert(p, b)),
            ]
        }

        fn apply(file: &mut Vec<u8>, d: &Damage) {
            match d {
                Damage::Flip(p, m) if !file.is_empty() => {
                    let i = p % file.len();
                    file[i] ^= m;
                }
                Damage::Flip(..) => {}
                Damage::Truncate(p) => file.truncate(p % file.len().max(1)),
                Damage::Insert(p, b) => {
                    let i = p % (file.len() + 1);
                    file.splice(i..i, b.iter().copied());
                }
            }
        }

        /// One shared real backup per test binary.
        fn good() -> &'static (tempfile::TempDir, Vec<u8>) {
            static GOOD: std::sync::OnceLock<(tempfile::TempDir, Vec<u8>)> =
                std::sync::OnceLock::new();
            GOOD.get_or_init(|| {
                let dir = tempfile::tempdir().unwrap();
                let (_, bytes) = sample(dir.path());
                (dir, bytes)
            })
        }

        fn refused(bytes: &[u8]) -> Result<(), TestCaseError> {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("damaged.odb");
            std::fs::write(&path, bytes).unwrap();
            let shown = path.display().to_string();
            match verify(&path) {
                Ok(m) => return Err(TestCaseError::fail(format!("accepted: {m:?}"))),
                Err(e) => prop_assert!(e.to_string().contains(&shown), "{e}"),
            }
            prop_assert!(open_verified(&path).is_err());
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn one_flip_truncation_or_insertion_is_refused(d in damage()) {
                let mut bytes = good().1.clone();
                apply(&mut bytes, &d);
                refused(&bytes)?;
            }

            #[test]
            fn several_changes_are_refused(ds in prop::collection::vec(damage(), 1..6)) {
                let good = &good().1;
                let mut bytes = good.clone();
                for d in &ds {
                    apply(&mut bytes, d);
                }
                // Changes may cancel out (the same byte flipped twice).
                if &bytes != good {
                    refused(&bytes)?;
                }
            }

            #[test]
            fn arbitrary_bytes_after_the_header_are_refused(
                tail in prop::collection::vec(any::<u8>(), 0..512)
            ) {
                let mut bytes = MAGIC.to_vec();
                bytes.extend_from_slice(&tail);
                refused(&bytes)?;
            }
        }
    }
}
