//! Group commit: concurrent client commands are gathered into one Raft entry.
//!
//! openraft 0.9 appends one log entry per `client_write` on the leader, so without grouping
//! every client write would cost its own entry, append and apply round. Callers queue their
//! command here; a single task takes everything queued whenever an in-flight slot frees up
//! and proposes it as one entry, then answers each caller from its own result. Under light
//! load a batch is one command (no added latency); under heavy load batches grow by
//! themselves while earlier batches are in flight.
//!
//! A [`PauseGate`] stops new batches from being proposed (leadership transfer needs the log
//! to stand still): commands queued meanwhile wait, they are not failed, and go out as soon
//! as the gate opens again.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use crate::types::{Command, CommandResult};

/// Most commands one entry carries.
pub const MAX_BATCH: usize = 512;
/// Bytes of keys and values one entry carries at most (a single bigger command goes alone).
/// openraft gives each AppendEntries one heartbeat interval, so an entry must be small
/// enough to reach a follower and be fsynced in that time.
pub const MAX_BATCH_BYTES: usize = 1 << 20;
/// Batches proposed but not yet committed at once. Enough to keep the log's fsync and the
/// replication pipeline busy; more would only shrink batches.
pub const MAX_IN_FLIGHT: usize = 4;

/// Error of a proposed batch, shared by every caller in it.
pub type BatchError = crate::error::NodeError;

struct Pending {
    command: Command,
    reply: oneshot::Sender<Result<CommandResult, BatchError>>,
}

/// Where a batch goes: the local Raft, or the leader when this node follows.
pub trait Submit: Send + Sync + 'static {
    fn submit(
        &self,
        commands: Vec<Command>,
    ) -> impl std::future::Future<Output = Result<Vec<CommandResult>, BatchError>> + Send;
}

#[derive(Clone)]
pub struct Proposer {
    queue: mpsc::Sender<Pending>,
    gate: PauseGate,
}

/// Stops proposals while any [`PauseGuard`] lives; counts the proposals that passed it and
/// have not finished, so a pauser can wait for them ([`PauseGate::drained`]).
#[derive(Clone)]
pub struct PauseGate {
    state: Arc<watch::Sender<GateState>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct GateState {
    pauses: usize,
    active: usize,
}

/// A proposal that passed the gate; finished when dropped.
pub struct Pass {
    gate: PauseGate,
}

/// Keeps the gate closed until dropped.
pub struct PauseGuard {
    gate: PauseGate,
}

impl Default for PauseGate {
    fn default() -> Self {
        PauseGate {
            state: Arc::new(watch::channel(GateState::default()).0),
        }
    }
}

impl PauseGate {
    /// Waits while the gate is closed, then counts the caller as active until the
    /// returned [`Pass`] is dropped.
    pub async fn enter(&self) -> Pass {
        let mut rx = self.state.subscribe();
        loop {
            // The sender lives in self, so waiting cannot fail.
            let _ = rx.wait_for(|s| s.pauses == 0).await;
            let mut entered = false;
            self.state.send_if_modified(|s| {
                if s.pauses == 0 {
                    s.active += 1;
                    entered = true;
                }
                entered
            });
            if entered {
                return Pass { gate: self.clone() };
            }
        }
    }

    /// Closes the gate until the guard is dropped (pauses nest).
    pub fn pause(&self) -> PauseGuard {
        self.state.send_modify(|s| s.pauses += 1);
        PauseGuard { gate: self.clone() }
    }

    pub fn is_paused(&self) -> bool {
        self.state.borrow().pauses > 0
    }

    /// Waits until every proposal that passed the gate has finished.
    pub async fn drained(&self) {
        let mut rx = self.state.subscribe();
        let _ = rx.wait_for(|s| s.active == 0).await;
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        self.gate.state.send_modify(|s| s.active -= 1);
    }
}

impl Drop for PauseGuard {
    fn drop(&mut self) {
        self.gate.state.send_modify(|s| s.pauses -= 1);
    }
}

impl Proposer {
    pub fn start<S: Submit>(
        sink: Arc<S>,
        observe_batch: impl Fn(usize) + Send + Sync + 'static,
    ) -> Proposer {
        let (queue, rx) = mpsc::channel(MAX_BATCH * MAX_IN_FLIGHT * 2);
        let gate = PauseGate::default();
        tokio::spawn(run(sink, rx, gate.clone(), observe_batch));
        Proposer { queue, gate }
    }

    /// The gate every proposal of this node passes (forwarded batches too).
    pub fn gate(&self) -> &PauseGate {
        &self.gate
    }

    /// Proposes one command and waits for its own result.
    pub async fn propose(&self, command: Command) -> Result<CommandResult, BatchError> {
        let (reply, rx) = oneshot::channel();
        self.queue
            .send(Pending { command, reply })
            .await
            .map_err(|_| BatchError::ShuttingDown)?;
        rx.await.map_err(|_| BatchError::ShuttingDown)?
    }
}

async fn run<S: Submit>(
    sink: Arc<S>,
    mut rx: mpsc::Receiver<Pending>,
    gate: PauseGate,
    observe_batch: impl Fn(usize),
) {
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    // A command that did not fit the previous batch's byte budget starts the next one.
    let mut carried: Option<Pending> = None;
    loop {
        let first = match carried.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        // While paused, commands keep queueing and go out together afterwards.
        let pass = gate.enter().await;
        // Wait for a slot before gathering: while we wait, more commands queue up.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut bytes = first.command.size_hint();
        let alone = first.command.alone();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH && !alone {
            match rx.try_recv() {
                // A command that must be alone in its entry starts the next batch too.
                Ok(p) if bytes + p.command.size_hint() > MAX_BATCH_BYTES || p.command.alone() => {
                    carried = Some(p);
                    break;
                }
                Ok(p) => {
                    bytes += p.command.size_hint();
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        observe_batch(batch.len());
        let sink = sink.clone();
        tokio::spawn(async move {
            let (commands, replies): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|p| (p.command, p.reply)).unzip();
            let expected = commands.len();
            match sink.submit(commands).await {
                Ok(results) if results.len() == expected => {
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(Ok(result));
                    }
                }
                Ok(results) => {
                    let err = BatchError::Internal(format!(
                        "batch of {expected} commands got {} results",
                        results.len()
                    ));
                    for reply in replies {
                        let _ = reply.send(Err(err.clone()));
                    }
                }
                Err(err) => {
                    for reply in replies {
                        let _ = reply.send(Err(err.clone()));
                    }
                }
            }
            drop(slot);
            drop(pass);
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// Records batch sizes and answers each Put with its position in the batch.
    struct SlowSink {
        batches: std::sync::Mutex<Vec<usize>>,
    }

    impl Submit for SlowSink {
        async fn submit(&self, commands: Vec<Command>) -> Result<Vec<CommandResult>, BatchError> {
            self.batches.lock().unwrap().push(commands.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(commands
                .iter()
                .map(|c| match c {
                    Command::Put { value, .. } => CommandResult::Put {
                        revision: value[0] as u64,
                    },
                    _ => CommandResult::Done,
                })
                .collect())
        }
    }

    #[tokio::test]
    async fn big_values_split_batches_at_the_byte_budget_and_none_is_lost() {
        let sink = Arc::new(SlowSink {
            batches: Default::default(),
        });
        let proposer = Proposer::start(sink.clone(), |_| {});
        let tasks: Vec<_> = (0..40u8)
            .map(|i| {
                let p = proposer.clone();
                tokio::spawn(async move {
                    let mut value = vec![0u8; 256 * 1024];
                    value[0] = i;
                    p.propose(Command::Put {
                        key: format!("k{i}"),
                        value,
                    })
                    .await
                })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            let r = t.await.unwrap().unwrap();
            assert_eq!(r, CommandResult::Put { revision: i as u64 });
        }
        let batches = sink.batches.lock().unwrap().clone();
        assert_eq!(batches.iter().sum::<usize>(), 40);
        // 256 KiB each: at most 3 fit in 1 MiB with their overhead.
        assert!(batches.iter().all(|n| *n <= 3), "{batches:?}");
    }

    /// Records each batch's commands by name, slowly (so commands queue up meanwhile).
    struct NamingSink {
        batches: std::sync::Mutex<Vec<Vec<&'static str>>>,
    }

    impl Submit for NamingSink {
        async fn submit(&self, commands: Vec<Command>) -> Result<Vec<CommandResult>, BatchError> {
            let names = commands.iter().map(Command::op_name).collect();
            self.batches.lock().unwrap().push(names);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(commands.iter().map(|_| CommandResult::Done).collect())
        }
    }

    #[tokio::test]
    async fn a_restore_commit_goes_in_an_entry_of_its_own() {
        let sink = Arc::new(NamingSink {
            batches: Default::default(),
        });
        let proposer = Proposer::start(sink.clone(), |_| {});
        let mut tasks = Vec::new();
        for i in 0..60u8 {
            let p = proposer.clone();
            tasks.push(tokio::spawn(async move {
                let command = if i % 20 == 10 {
                    Command::RestoreCommit {
                        id: format!("r{i}"),
                        actor: "a".into(),
                        at_ms: 1,
                        chunks: 0,
                        pairs: 0,
                    }
                } else {
                    Command::Put {
                        key: format!("k{i}"),
                        value: vec![i],
                    }
                };
                p.propose(command).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let batches = sink.batches.lock().unwrap().clone();
        let with_commit: Vec<_> = batches
            .iter()
            .filter(|b| b.contains(&"restore_commit"))
            .collect();
        assert_eq!(with_commit.len(), 3, "{batches:?}");
        assert!(with_commit.iter().all(|b| b.len() == 1), "{batches:?}");
        assert!(
            batches.iter().any(|b| b.len() > 1),
            "the puts around them still share entries: {batches:?}"
        );
    }

    #[tokio::test]
    async fn concurrent_commands_share_batches_and_get_their_own_results() {
        let sink = Arc::new(SlowSink {
            batches: Default::default(),
        });
        let seen = Arc::new(AtomicUsize::new(0));
        let seen2 = seen.clone();
        let proposer = Proposer::start(sink.clone(), move |n| {
            seen2.fetch_add(n, Ordering::Relaxed);
        });
        let mut tasks = Vec::new();
        for i in 0..200u8 {
            let p = proposer.clone();
            tasks.push(tokio::spawn(async move {
                let r = p
                    .propose(Command::Put {
                        key: format!("k{i}"),
                        value: vec![i],
                    })
                    .await;
                (i, r)
            }));
        }
        for t in tasks {
            let (i, r) = t.await.unwrap();
            assert_eq!(r.unwrap(), CommandResult::Put { revision: i as u64 });
        }
        let batches = sink.batches.lock().unwrap().clone();
        assert_eq!(batches.iter().sum::<usize>(), 200);
        assert_eq!(seen.load(Ordering::Relaxed), 200);
        assert!(
            batches.len() < 100,
            "200 concurrent commands should need far fewer than 100 entries, got {batches:?}"
        );
    }

    #[tokio::test]
    async fn a_paused_gate_holds_commands_back_and_releases_them() {
        let sink = Arc::new(SlowSink {
            batches: Default::default(),
        });
        let proposer = Proposer::start(sink.clone(), |_| {});
        let pause = proposer.gate().pause();
        let p = proposer.clone();
        let task = tokio::spawn(async move {
            p.propose(Command::Put {
                key: "k".into(),
                value: vec![7],
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            sink.batches.lock().unwrap().is_empty(),
            "proposed while paused"
        );
        drop(pause);
        let r = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("released")
            .unwrap();
        assert_eq!(r.unwrap(), CommandResult::Put { revision: 7 });
        tokio::time::timeout(Duration::from_secs(5), proposer.gate().drained())
            .await
            .expect("drained");
    }

    struct FailingSink;
    impl Submit for FailingSink {
        async fn submit(&self, _: Vec<Command>) -> Result<Vec<CommandResult>, BatchError> {
            Err(BatchError::NoLeader)
        }
    }

    #[tokio::test]
    async fn a_failed_batch_fails_every_caller() {
        let proposer = Proposer::start(Arc::new(FailingSink), |_| {});
        let r = proposer.propose(Command::Delete { key: "a".into() }).await;
        assert!(matches!(r, Err(BatchError::NoLeader)));
    }
}
