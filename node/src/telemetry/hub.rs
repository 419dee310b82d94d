//! A bounded history plus live fan-out: the last `capacity` items are kept for new
//! subscribers, and each published item is broadcast to current ones. A subscriber that
//! falls behind loses items (and learns how many) instead of growing a queue: memory stays
//! bounded and the publisher never waits.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::broadcast;

/// Items a subscriber may fall behind by before it starts losing them.
const LIVE_QUEUE: usize = 1024;

pub struct Hub<T> {
    history: Mutex<VecDeque<T>>,
    capacity: usize,
    live: broadcast::Sender<T>,
}

impl<T: Clone> Hub<T> {
    pub fn new(capacity: usize) -> Hub<T> {
        Hub {
            history: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
            capacity,
            live: broadcast::channel(LIVE_QUEUE).0,
        }
    }

    pub fn publish(&self, item: T) {
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        if history.len() == self.capacity {
            history.pop_front();
        }
        history.push_back(item.clone());
        // Sent under the lock so history and live order agree; no receivers is fine.
        let _ = self.live.send(item);
    }

    /// The retained history and a receiver for everything published after it.
    pub fn subscribe(&self) -> (Vec<T>, broadcast::Receiver<T>) {
        let history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        (history.iter().cloned().collect(), self.live.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn history_is_bounded_and_a_slow_subscriber_is_told_what_it_lost() {
        let hub = Hub::new(3);
        for i in 0..5 {
            hub.publish(i);
        }
        let (history, mut rx) = hub.subscribe();
        assert_eq!(history, vec![2, 3, 4]);
        for i in 0..(LIVE_QUEUE as u64 + 10) {
            hub.publish(i as i32);
        }
        match rx.recv().await {
            Err(broadcast::error::RecvError::Lagged(n)) => assert_eq!(n, 10),
            other => panic!("expected a lag report, got {other:?}"),
        }
        assert_eq!(rx.recv().await.unwrap(), 10);
    }
}
