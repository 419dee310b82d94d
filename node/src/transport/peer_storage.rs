//! How full each peer's disk is, as the peers themselves say it: every Raft reply of a node
//! whose storage is full carries a `opsdeck-storage-full: FREE,NEED` header (bytes), heartbeats
//! included, so the leader knows within a heartbeat when a follower fills up or frees space.
//! The leader reads these to refuse writes that could not commit, to stop sending entries a
//! follower would not keep, and to name the full nodes in its status frame. Since every
//! reply passes here, it also records when each peer last answered (the leader's count of
//! reachable voters).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tonic::metadata::{MetadataMap, MetadataValue};

use crate::error::Pressure;
use crate::types::NodeId;

pub const HEADER: &str = "opsdeck-storage-full";
/// A report older than this is forgotten (the peer stopped answering: it is down or
/// partitioned, which the Raft layer itself deals with).
const STALE: Duration = Duration::from_secs(3);

/// Adds the header to a reply's metadata while this node's storage is full.
pub fn mark(metadata: &mut MetadataMap, pressure: Option<Pressure>) {
    if let Some(p) = pressure {
        if let Ok(v) = MetadataValue::try_from(format!("{},{}", p.free, p.need)) {
            metadata.insert(HEADER, v);
        }
    }
}

/// The pressure a reply's metadata reports (None: not full, or an unreadable header).
pub fn read(metadata: &MetadataMap) -> Option<Pressure> {
    let text = metadata.get(HEADER)?.to_str().ok()?;
    let (free, need) = text.split_once(',')?;
    Some(Pressure {
        free: free.trim().parse().ok()?,
        need: need.trim().parse().ok()?,
    })
}

/// The latest report per peer, and when each peer last answered at all.
#[derive(Default)]
pub struct PeerStorage {
    full: Mutex<BTreeMap<NodeId, (Pressure, Instant)>>,
    answered: Mutex<BTreeMap<NodeId, Instant>>,
}

impl PeerStorage {
    /// Records what a reply from `peer` said: full (with its figures) or not. Every Raft
    /// reply passes here, so it is also when the peer last answered.
    pub fn record(&self, peer: NodeId, pressure: Option<Pressure>) {
        self.answered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(peer, Instant::now());
        let mut peers = self.full.lock().unwrap_or_else(|p| p.into_inner());
        match pressure {
            Some(p) => {
                if !peers.contains_key(&peer) {
                    tracing::warn!(peer, %p, "peer reports its storage full: not sending it entries");
                }
                peers.insert(peer, (p, Instant::now()));
            }
            None => {
                if peers.remove(&peer).is_some() {
                    tracing::info!(peer, "peer's storage has room again");
                }
            }
        }
    }

    /// What `peer` last reported, if it is full and the report is recent.
    pub fn full(&self, peer: NodeId) -> Option<Pressure> {
        let peers = self.full.lock().unwrap_or_else(|p| p.into_inner());
        peers
            .get(&peer)
            .filter(|(_, at)| at.elapsed() < STALE)
            .map(|(p, _)| *p)
    }

    /// Whether `peer` answered one of this node's Raft calls within `window`.
    pub fn answered_within(&self, peer: NodeId, window: Duration) -> bool {
        let answered = self.answered.lock().unwrap_or_else(|p| p.into_inner());
        answered.get(&peer).is_some_and(|at| at.elapsed() <= window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_round_trips_and_garbage_reads_as_not_full() {
        let mut m = MetadataMap::new();
        mark(&mut m, None);
        assert_eq!(read(&m), None);
        let p = Pressure { free: 5, need: 16 };
        mark(&mut m, Some(p));
        assert_eq!(read(&m), Some(p));
        m.insert(HEADER, MetadataValue::from_static("lots,-1"));
        assert_eq!(read(&m), None);
    }

    #[test]
    fn reports_clear_when_the_peer_says_so() {
        let peers = PeerStorage::default();
        let p = Pressure { free: 1, need: 2 };
        peers.record(2, Some(p));
        assert_eq!(peers.full(2), Some(p));
        assert_eq!(peers.full(3), None);
        peers.record(2, None);
        assert_eq!(peers.full(2), None);
    }

    #[test]
    fn a_peer_that_answered_recently_is_reachable() {
        let peers = PeerStorage::default();
        assert!(!peers.answered_within(2, Duration::from_secs(1)));
        peers.record(2, None);
        assert!(peers.answered_within(2, Duration::from_secs(1)));
        assert!(!peers.answered_within(3, Duration::from_secs(1)));
    }
}
