//! Backup files as `opsdeck verify-backup FILE` and `opsdeck restore FILE` read them
//! (node/src/backup/format.rs): `verify`, then for a file that verifies `open_verified` and
//! every payload pair read through, and the manifest described as the verbs print it.
//!
//! Input, one of:
//! - a whole file (anything not starting with `PARTS`), written as is;
//! - `PARTS FLAGS LEN PAYLOAD MANIFEST`: the target assembles a well-formed file around the
//!   fuzzer's payload (LEN: u32 little-endian, clamped to what is there) and manifest JSON,
//!   with the manifest checksum, length and end marker right, so mutations get past the
//!   SHA-256 checks to the manifest and payload parsing. FLAGS bit 0 sets the manifest's
//!   `payload_bytes` to the payload's real length, bit 1 its `payload_sha256` to the
//!   payload's real hash (when the manifest is a JSON object).
//!
//! A file that verifies must read back whole with the counts its manifest records; a file
//! that does not must be refused with an error naming the file.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use opsdeck_node::backup::format::{self, END, MAGIC};
use sha2::{Digest, Sha256};

const PARTS: &[u8] = b"PARTS";

fn file() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("opsdeck-fuzz-backup-")
            .tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .expect("temp dir");
        let path = dir.path().join("fuzz.odb");
        (dir, path)
    });
    path
}

/// `PARTS ...` → a file with a correct manifest checksum; None for a whole file.
fn assemble(data: &[u8]) -> Option<Vec<u8>> {
    let rest = data.strip_prefix(PARTS)?;
    let (&flags, rest) = rest.split_first()?;
    if rest.len() < 4 {
        return None;
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let rest = &rest[4..];
    let (payload, manifest) = rest.split_at(len.min(rest.len()));
    let mut manifest = manifest.to_vec();
    if flags & 0b11 != 0 {
        if let Ok(serde_json::Value::Object(mut m)) = serde_json::from_slice(&manifest) {
            if flags & 0b01 != 0 {
                m.insert("payload_bytes".into(), (payload.len() as u64).into());
            }
            if flags & 0b10 != 0 {
                m.insert(
                    "payload_sha256".into(),
                    hex::encode(Sha256::digest(payload)).into(),
                );
            }
            manifest = serde_json::to_vec(&m).expect("a JSON object encodes");
        }
    }
    let mut out = Vec::with_capacity(MAGIC.len() + payload.len() + manifest.len() + 64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(payload);
    out.extend_from_slice(&manifest);
    out.extend_from_slice(&(manifest.len() as u32).to_be_bytes());
    out.extend_from_slice(&Sha256::digest(&manifest));
    out.extend_from_slice(END);
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let path = file();
    match assemble(data) {
        Some(bytes) => std::fs::write(path, bytes),
        None => std::fs::write(path, data),
    }
    .expect("write the temp file");
    match format::verify(path) {
        Ok(m) => {
            // What `verify-backup` and `restore` show of it.
            let _ = opsdeck::ops::backup::describe_manifest(&m);
            let _ = serde_json::to_string_pretty(&m).expect("a manifest encodes");
            let (again, pairs) = format::open_verified(path).expect("a verified backup opens");
            assert_eq!(again, m);
            assert_eq!(pairs.total(), m.pairs);
            let (mut n, mut keys, mut bytes) = (0u64, 0u64, 0u64);
            for pair in pairs {
                let (k, v) = pair.expect("a verified backup's payload reads through");
                n += 1;
                if let Some(key) = k.strip_prefix(b"d/") {
                    keys += 1;
                    bytes += (key.len() + v.len()) as u64;
                }
            }
            assert_eq!((n, keys, bytes), (m.pairs, m.key_count, m.data_bytes));
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&path.display().to_string()),
                "the error does not name the file: {msg}"
            );
        }
    }
});
