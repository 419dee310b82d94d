//! One task per node: keeps a Watch stream open, forwards what arrives, and when the stream
//! fails reports the error and reconnects with capped exponential backoff. The UI only ever
//! receives from the channel, so a dead or slow node can never block it; a UI that falls
//! behind makes the task wait, and the node then tells us how many log records it dropped.
//! One more task polls the key list for the Keys pane, only while that pane is shown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opsdeck_node::pb::{ListKeysRequest, WatchRequest};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tonic::Code;

use super::model::{KeysError, Update};
use crate::client::{describe, ClusterClient, NodeRpc};
use crate::format::unix_ms;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Log records asked for on (re)connect; duplicates are skipped by the model.
const LOG_HISTORY: u32 = 2_000;
/// How often the key list is asked for while the Keys pane is shown.
pub const KEYS_EVERY: Duration = Duration::from_secs(5);

/// A live node sends a frame every interval; a stream silent this long counts as dead.
pub fn stall(status_interval: Duration) -> Duration {
    status_interval * 3 + Duration::from_secs(2)
}

fn refused(code: Code) -> bool {
    matches!(code, Code::Unauthenticated | Code::PermissionDenied)
}

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
    let stall = stall(status_interval);
    let mut backoff = MIN_BACKOFF;
    loop {
        let request = WatchRequest {
            status_interval_ms: interval_ms,
            logs: true,
            events: true,
            log_history: LOG_HISTORY,
        };
        let (error, refused) =
            match tokio::time::timeout(CONNECT_TIMEOUT, client.watch(request)).await {
                Err(_) => (format!("no answer within {CONNECT_TIMEOUT:?}"), false),
                Ok(Err(status)) => (describe(&status), refused(status.code())),
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
                            Ok(Ok(None)) => break ("the node ended the stream".to_string(), false),
                            Ok(Err(status)) => break (describe(&status), refused(status.code())),
                            Err(_) => break (format!("no status frame for {stall:?}"), false),
                        }
                    }
                }
            };
        if tx
            .send(Update::Down {
                node,
                at: unix_ms(),
                error,
                refused,
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

/// Asks the cluster for its API keys every [`KEYS_EVERY`] while `wanted` is true (the Keys
/// pane is on screen), through the console's cluster client (any node; it forwards to the
/// leader). Needs an admin key; a refusal is reported like any other failure, flagged.
pub fn spawn_keys(
    client: Arc<ClusterClient>,
    mut wanted: watch::Receiver<bool>,
    tx: mpsc::Sender<Update>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if wanted.wait_for(|w| *w).await.is_err() {
                return; // the console quit
            }
            let was_refused = Arc::new(AtomicBool::new(false));
            let result = client
                .call("keys list", |mut c| {
                    let was_refused = was_refused.clone();
                    async move {
                        let answer = c.list_keys(ListKeysRequest {}).await;
                        if let Err(status) = &answer {
                            was_refused.store(refused(status.code()), Ordering::Relaxed);
                        }
                        answer
                    }
                })
                .await
                .map(|reply| reply.keys)
                .map_err(|e| KeysError {
                    message: e.to_string(),
                    refused: was_refused.load(Ordering::Relaxed),
                });
            let update = Update::Keys {
                at: unix_ms(),
                result,
            };
            if tx.send(update).await.is_err() {
                return;
            }
            tokio::time::sleep(KEYS_EVERY).await;
        }
    })
}
