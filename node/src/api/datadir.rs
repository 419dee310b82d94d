//! `GET /debug/datadir`: the names, sizes and modification times of the files under this
//! node's data dir — never their contents — for `opsdeck debug bundle`. Admin only
//! (`security::auth::http_need`: everything under `/debug/`), and the handler checks the
//! role again. Bounded: at most [`MAX_DEPTH`] folders deep and [`MAX_ENTRIES`] entries; the
//! answer says when it stopped short (`truncated`).

use std::path::{Path, PathBuf};

use axum::extract::Extension;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

use crate::security::auth::Caller;
use crate::security::keys::Role;

/// Folders below the data dir that are listed (sled keeps its files two levels down).
pub const MAX_DEPTH: usize = 4;
/// Entries listed at most.
pub const MAX_ENTRIES: usize = 5_000;

/// One file or folder, its path relative to the data dir.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub dir: bool,
    pub bytes: u64,
    /// Modification time, Unix milliseconds (None when the filesystem does not say).
    pub mtime_unix_ms: Option<i64>,
}

/// What the route answers.
#[derive(Debug, Serialize)]
pub struct Listing {
    pub data_dir: String,
    pub entries: Vec<Entry>,
    pub truncated: bool,
    /// Entries that could not be read (a file removed while listing, a permission).
    pub errors: Vec<String>,
}

/// The route, to merge into the node's router (inside its key check).
pub fn routes<S: Clone + Send + Sync + 'static>(data_dir: PathBuf) -> Router<S> {
    Router::new().route(
        "/debug/datadir",
        get(move |caller: Extension<Caller>| answer(caller.0, data_dir.clone())),
    )
}

async fn answer(caller: Caller, data_dir: PathBuf) -> Response {
    if caller.role != Role::Admin {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({
                "error": format!(
                    "API key {} has role {}, and the data-dir listing needs admin",
                    caller.key_id, caller.role
                ),
                "kind": "permission_denied",
            })),
        )
            .into_response();
    }
    match tokio::task::spawn_blocking(move || list(&data_dir)).await {
        Ok(listing) => Json(listing).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(
                json!({ "error": format!("listing the data dir failed: {e}"), "kind": "internal" }),
            ),
        )
            .into_response(),
    }
}

/// Lists `root` breadth first, folders before what is in them, within the bounds.
pub fn list(root: &Path) -> Listing {
    let mut listing = Listing {
        data_dir: root.display().to_string(),
        entries: Vec::new(),
        truncated: false,
        errors: Vec::new(),
    };
    let mut queue = std::collections::VecDeque::from([(root.to_path_buf(), 0usize)]);
    while let Some((dir, depth)) = queue.pop_front() {
        let read = match std::fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) => {
                listing.errors.push(format!("{}: {e}", dir.display()));
                continue;
            }
        };
        let mut children: Vec<_> = read.filter_map(|e| e.ok()).collect();
        children.sort_by_key(|e| e.file_name());
        for child in children {
            if listing.entries.len() >= MAX_ENTRIES {
                listing.truncated = true;
                return listing;
            }
            let path = child.path();
            // symlink_metadata: a link is listed as itself, never followed out of the dir.
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    listing.errors.push(format!("{}: {e}", path.display()));
                    continue;
                }
            };
            let mtime_unix_ms = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .and_then(|d| i64::try_from(d.as_millis()).ok());
            let relative = path.strip_prefix(root).unwrap_or(&path);
            listing.entries.push(Entry {
                path: relative.display().to_string(),
                dir: meta.is_dir(),
                bytes: if meta.is_dir() { 0 } else { meta.len() },
                mtime_unix_ms,
            });
            if meta.is_dir() {
                if depth + 1 < MAX_DEPTH {
                    queue.push_back((path, depth + 1));
                } else {
                    listing.truncated = true;
                }
            }
        }
    }
    listing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_names_and_sizes_within_the_depth() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("a.bin"), b"12345").expect("write");
        let mut deep = dir.path().to_path_buf();
        for i in 0..MAX_DEPTH + 1 {
            deep = deep.join(format!("d{i}"));
        }
        std::fs::create_dir_all(&deep).expect("mkdir");
        let l = list(dir.path());
        let a = l.entries.iter().find(|e| e.path == "a.bin").expect("a.bin");
        assert_eq!(a.bytes, 5);
        assert!(!a.dir && a.mtime_unix_ms.is_some());
        assert!(l.entries.iter().any(|e| e.path == "d0" && e.dir));
        assert!(l.truncated, "the folders below the depth are not listed");
        assert_eq!(
            l.entries.iter().filter(|e| e.dir).count(),
            MAX_DEPTH,
            "{:?}",
            l.entries
        );
    }
}
