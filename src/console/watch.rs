//! One task per node: keeps a Watch stream open, forwards what arrives, and when the stream
//! fails reports the error and reconnects with capped exponential backoff. The UI only ever
//! receives from the channel, so a dead or slow node can never block it; a UI that falls
//! behind makes the task wait, and the node then tells us how many log records it dropped.

use std::time::Duration;

use opsdeck_node::pb::WatchRequest;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::format::unix_ms;
use super::model::Update;
use crate::client::{describe, NodeRpc};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Log records asked for on (re)connect; duplicates are skipped by the model.
const LOG_HISTORY: u32 = 2_000;

pub fn spawn(
    node: usize,
    client: NodeRpc,
    status_interval: Duration,
    tx: mpsc::Sender<Update>,
) -> JoinHandle<()> {
    tokio::spawn(watch_node(node, client, status_interval, tx))
}

async fn watch_node(
    node: usize,
    mut client: NodeRpc,
    status_interval: Duration,
    tx: mpsc::Sender<Update>,
) {
    let interval_ms = status_interval.as_millis().clamp(100, 60_000) as u32;
    // A live node sends a frame every interval; three missed ones mean it is stuck.
    let stall = status_interval * 3 + Duration::from_secs(2);
    let mut backoff = MIN_BACKOFF;
    loop {
        let request = WatchRequest {
            status_interval_ms: interval_ms,
            logs: true,
            events: true,
            log_history: LOG_HISTORY,
        };
        let error = match tokio::time::timeout(CONNECT_TIMEOUT, client.watch(request)).await {
            Err(_) => format!("no answer within {CONNECT_TIMEOUT:?}"),
            Ok(Err(status)) => describe(&status),
            Ok(Ok(response)) => {
                let mut stream = response.into_inner();
                loop {
                    match tokio::time::timeout(stall, stream.message()).await {
                        Ok(Ok(Some(event))) => {
                            backoff = MIN_BACKOFF;
                            let update = Update::Event {
                                node,
                                at: unix_ms(),
                                event: Box::new(event),
                            };
                            if tx.send(update).await.is_err() {
                                return; // the console quit
                            }
                        }
                        Ok(Ok(None)) => break "the node ended the stream".to_string(),
                        Ok(Err(status)) => break describe(&status),
                        Err(_) => break format!("no status frame for {stall:?}"),
                    }
                }
            }
        };
        if tx
            .send(Update::Down {
                node,
                at: unix_ms(),
                error,
            })
            .await
            .is_err()
        {
            return;
        }
        // Jitter keeps a restarted cluster from being hit by every console at once.
        let jitter = Duration::from_millis(rand::random::<u64>() % 200);
        tokio::time::sleep(backoff + jitter).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
