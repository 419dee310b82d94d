//! The one place that measures the node for status frames: process RSS and CPU, disk use,
//! per-operation figures and GC figures, refreshed every [`SAMPLE_INTERVAL`] on the blocking
//! pool and published through a `watch` channel. Status calls, Watch subscribers and
//! `/metrics` all read the latest sample, so N observers cost the node nothing extra.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sysinfo::{DiskRefreshKind, Disks, Pid, ProcessRefreshKind, ProcessesToUpdate, System};
use tokio::sync::{watch, Notify};

use super::ops::OpRecorder;
use crate::clock::unix_millis;
use crate::pb;
use crate::store::disk_guard::data_dir_bytes;
use crate::store::housekeeping::Housekeeping;
use crate::store::log_store::LogDisk;
use crate::store::snapshot_file;

pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(500);
/// The data dir is walked at most this often (it may hold many files).
const WALK_INTERVAL: Duration = Duration::from_secs(5);

/// Figures that are costly to take; everything in a status frame besides Raft's state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    pub unix_ms: i64,
    pub uptime_ms: u64,
    pub rss_bytes: u64,
    pub cpu_percent: f32,
    pub ops: Vec<pb::OpStats>,
    pub errors: Vec<pb::ErrorCount>,
    pub sled_size_on_disk: u64,
    pub data_dir_bytes: u64,
    pub fs_total_bytes: u64,
    pub fs_free_bytes: u64,
    pub gc: pb::GcStatus,
}

/// What the sampler measures.
pub struct Sources {
    pub db: sled::Db,
    pub data_dir: PathBuf,
    pub log: LogDisk,
    pub housekeeping: Arc<Housekeeping>,
    pub ops: Arc<OpRecorder>,
}

/// Handle to the sampler task: the latest sample, and a way to ask for a full one now.
#[derive(Clone)]
pub struct Sampler {
    latest: watch::Receiver<Arc<Sample>>,
    full_now: Arc<Notify>,
}

impl Sampler {
    /// Takes a first sample, then refreshes it every [`SAMPLE_INTERVAL`] until `stop`.
    pub async fn start(sources: Sources, mut stop: watch::Receiver<bool>) -> Sampler {
        let (mut probe, first) = match run_blocking(Probe::new(sources), true).await {
            Some((p, s)) => (Some(p), s),
            None => (None, Sample::default()),
        };
        let (tx, latest) = watch::channel(Arc::new(first));
        let full_now = Arc::new(Notify::new());
        let wake = full_now.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while let Some(p) = probe.take() {
                let full = tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    _ = tick.tick() => false,
                    _ = wake.notified() => true,
                };
                let Some((p, sample)) = run_blocking(p, full).await else {
                    return;
                };
                probe = Some(p);
                if tx.send(Arc::new(sample)).is_err() {
                    return;
                }
            }
        });
        Sampler { latest, full_now }
    }

    pub fn latest(&self) -> Arc<Sample> {
        self.latest.borrow().clone()
    }

    /// Asks for a sample with a fresh walk of the data dir and waits (up to 5 s) for it.
    pub async fn refresh_full(&self) -> Arc<Sample> {
        let mut rx = self.latest.clone();
        rx.mark_unchanged();
        self.full_now.notify_one();
        let _ = tokio::time::timeout(Duration::from_secs(5), rx.changed()).await;
        self.latest()
    }
}

async fn run_blocking(mut probe: Probe, full: bool) -> Option<(Probe, Sample)> {
    let outcome = tokio::task::spawn_blocking(move || {
        let s = probe.sample(full);
        (probe, s)
    })
    .await;
    // If sampling panicked, the node keeps serving with the last figures.
    outcome
        .map_err(|e| tracing::error!(error = %e, "status sampler failed; figures stay stale"))
        .ok()
}

struct Probe {
    sources: Sources,
    started: Instant,
    pid: Option<Pid>,
    system: System,
    disks: Disks,
    /// Index in `disks` of the filesystem holding the data dir.
    disk: Option<usize>,
    last_walk: Option<Instant>,
    dir_bytes: u64,
}

impl Probe {
    fn new(sources: Sources) -> Probe {
        let disks = Disks::new_with_refreshed_list_specifics(DiskRefreshKind::nothing());
        let canonical = std::fs::canonicalize(&sources.data_dir).unwrap_or_default();
        let disk = disks
            .list()
            .iter()
            .enumerate()
            .filter(|(_, d)| canonical.starts_with(d.mount_point()))
            .max_by_key(|(_, d)| d.mount_point().as_os_str().len())
            .map(|(i, _)| i);
        Probe {
            sources,
            started: Instant::now(),
            pid: sysinfo::get_current_pid().ok(),
            system: System::new(),
            disks,
            disk,
            last_walk: None,
            dir_bytes: 0,
        }
    }

    fn sample(&mut self, full: bool) -> Sample {
        let (rss_bytes, cpu_percent) = match self.pid {
            Some(pid) => {
                self.system.refresh_processes_specifics(
                    ProcessesToUpdate::Some(&[pid]),
                    false,
                    ProcessRefreshKind::nothing().with_memory().with_cpu(),
                );
                self.system
                    .process(pid)
                    .map(|p| (p.memory(), p.cpu_usage()))
                    .unwrap_or_default()
            }
            None => (0, 0.0),
        };
        let (fs_total_bytes, fs_free_bytes) = match self.disk {
            Some(i) => {
                let d = &mut self.disks.list_mut()[i];
                d.refresh_specifics(DiskRefreshKind::nothing().with_storage());
                (d.total_space(), d.available_space())
            }
            None => (0, 0),
        };
        if full || self.last_walk.is_none_or(|t| t.elapsed() >= WALK_INTERVAL) {
            self.dir_bytes = data_dir_bytes(&self.sources.data_dir);
            self.last_walk = Some(Instant::now());
        }
        let (ops, errors) = self.sources.ops.snapshot();
        Sample {
            unix_ms: unix_millis(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            rss_bytes,
            cpu_percent,
            ops,
            errors,
            sled_size_on_disk: self.sources.db.size_on_disk().unwrap_or(0),
            data_dir_bytes: self.dir_bytes,
            fs_total_bytes,
            fs_free_bytes,
            gc: gc_status(
                &self.sources.log,
                &self.sources.housekeeping,
                &self.sources.data_dir,
            ),
        }
    }
}

/// Log extent, the last snapshot, purge and compact, and a snapshot being written now.
pub fn gc_status(log: &LogDisk, hk: &Housekeeping, data_dir: &Path) -> pb::GcStatus {
    let extent = log.extent().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read the raft log extent");
        None
    });
    let snapshot = hk.snapshot();
    let purge = hk.purge();
    let compact = hk.compact();
    pb::GcStatus {
        log_entries: extent.map(|(f, l)| l - f + 1).unwrap_or(0),
        first_log_index: extent.map(|(f, _)| f),
        last_log_index: extent.map(|(_, l)| l),
        last_snapshot_index: snapshot.and_then(|s| s.index),
        last_snapshot_bytes: snapshot.map(|s| s.bytes).unwrap_or(0),
        last_snapshot_millis: snapshot.map(|s| s.millis).unwrap_or(0),
        last_snapshot_unix_ms: snapshot.map(|s| s.unix_ms),
        last_purge_index: purge.map(|p| p.upto),
        last_purge_entries: purge.map(|p| p.entries).unwrap_or(0),
        sled_bytes_before_compact: compact.map(|c| c.sled_bytes_before).unwrap_or(0),
        sled_bytes_after_compact: compact.map(|c| c.sled_bytes_after).unwrap_or(0),
        ..snapshot_in_progress(data_dir, snapshot.map(|s| s.bytes).unwrap_or(0))
    }
}

/// The snapshot being written in `data_dir`, read off its side file (built or received
/// outside any lock, so this costs one `stat` per sample and no hook in the stores).
fn snapshot_in_progress(data_dir: &Path, expected: u64) -> pb::GcStatus {
    let path = data_dir.join(snapshot_file::FILE_NAME);
    for (kind, suffix) in [
        ("building", snapshot_file::BUILDING_SUFFIX),
        ("receiving", snapshot_file::RECEIVING_SUFFIX),
    ] {
        if let Ok(m) = std::fs::metadata(path.with_extension(suffix)) {
            return pb::GcStatus {
                snapshot_in_progress: kind.into(),
                snapshot_progress_bytes: m.len(),
                snapshot_progress_expected: expected,
                ..Default::default()
            };
        }
    }
    pb::GcStatus::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_side_file_is_reported_as_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(snapshot_file::FILE_NAME);
        assert_eq!(
            snapshot_in_progress(dir.path(), 10).snapshot_in_progress,
            ""
        );
        std::fs::write(
            path.with_extension(snapshot_file::RECEIVING_SUFFIX),
            [0u8; 300],
        )
        .unwrap();
        let gc = snapshot_in_progress(dir.path(), 1000);
        assert_eq!(
            (
                gc.snapshot_in_progress.as_str(),
                gc.snapshot_progress_bytes,
                gc.snapshot_progress_expected
            ),
            ("receiving", 300, 1000)
        );
        std::fs::write(
            path.with_extension(snapshot_file::BUILDING_SUFFIX),
            [0u8; 5],
        )
        .unwrap();
        assert_eq!(
            snapshot_in_progress(dir.path(), 0).snapshot_in_progress,
            "building"
        );
    }
}
