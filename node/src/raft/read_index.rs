//! Coalesced read barriers on the leader.
//!
//! A linearizable read needs the leader to confirm, with a quorum, that it still leads
//! (openraft's read index), which costs a round of RPCs to the voters. Reads that arrive
//! while one such round is in flight wait for the next round and share it: one round serves
//! every read queued behind it. A read never uses a round that began before it arrived, so
//! each still observes every write acknowledged before it started.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

use crate::error::NodeError;

type Waiter = oneshot::Sender<Result<u64, NodeError>>;

#[derive(Clone)]
pub struct ReadBatcher {
    queue: mpsc::Sender<Waiter>,
}

impl ReadBatcher {
    /// `round` confirms leadership once and returns the log index reads must wait for.
    pub fn start<F, Fut>(round: F) -> ReadBatcher
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<u64, NodeError>> + Send,
    {
        let (queue, mut rx) = mpsc::channel::<Waiter>(4096);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut waiters = vec![first];
                while let Ok(w) = rx.try_recv() {
                    waiters.push(w);
                }
                let result = round().await;
                for w in waiters {
                    let _ = w.send(result.clone());
                }
            }
        });
        ReadBatcher { queue }
    }

    /// The index a read arriving now must see applied before it reads.
    pub async fn read_index(&self) -> Result<u64, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .send(tx)
            .await
            .map_err(|_| NodeError::ShuttingDown)?;
        rx.await.map_err(|_| NodeError::ShuttingDown)?
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn reads_queued_behind_a_round_share_the_next_one() {
        let rounds = Arc::new(AtomicU64::new(0));
        let counter = rounds.clone();
        let batcher = ReadBatcher::start(move || {
            let counter = counter.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(30)).await;
                Ok(counter.fetch_add(1, Ordering::SeqCst) + 1)
            }
        });
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let b = batcher.clone();
            tasks.push(tokio::spawn(async move { b.read_index().await }));
        }
        for t in tasks {
            let index = t.await.unwrap().unwrap();
            assert!(index >= 1);
        }
        assert!(
            rounds.load(Ordering::SeqCst) <= 3,
            "100 concurrent reads took {rounds:?} rounds"
        );
    }

    #[tokio::test]
    async fn a_read_never_uses_a_round_that_started_before_it() {
        let rounds = Arc::new(AtomicU64::new(0));
        let counter = rounds.clone();
        let batcher = ReadBatcher::start(move || {
            let counter = counter.clone();
            async move {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(n)
            }
        });
        let early = {
            let b = batcher.clone();
            tokio::spawn(async move { b.read_index().await })
        };
        // Let the first round start, then arrive while it is in flight.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let late = batcher.read_index().await.unwrap();
        assert_eq!(early.await.unwrap().unwrap(), 1);
        assert_eq!(
            late, 2,
            "a read arriving mid-round must wait for the next round"
        );
    }
}
