//! A tracing layer that keeps the node's recent log records in a [`Hub`] for Watch
//! subscribers (the console's Logs pane and `opsdeck logs`), and the node's log file.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

use super::hub::Hub;
use super::log_file::LogFileHandle;
use crate::clock::unix_millis;

/// Records kept per node for new subscribers.
pub const LOG_HISTORY: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub seq: u64,
    pub unix_ms: i64,
    pub level: String,
    pub target: String,
    pub message: String,
    /// The event's other fields as `key=value`, in order.
    pub fields: String,
}

pub struct LogHub {
    hub: Hub<LogRecord>,
    seq: AtomicU64,
    file: LogFileHandle,
}

impl LogHub {
    pub fn new() -> Arc<LogHub> {
        Arc::new(LogHub {
            hub: Hub::new(LOG_HISTORY),
            seq: AtomicU64::new(0),
            file: LogFileHandle::default(),
        })
    }

    /// A writer for a fmt layer: `DATA/node.log` once [`LogHub::open_file`] was called.
    pub fn file_writer(&self) -> LogFileHandle {
        self.file.clone()
    }

    /// Starts the log file in the node's data dir (called once the dir is known to be ours).
    pub fn open_file(&self, data_dir: &std::path::Path) {
        self.file.0.open(data_dir);
    }

    pub fn subscribe(&self) -> (Vec<LogRecord>, tokio::sync::broadcast::Receiver<LogRecord>) {
        self.hub.subscribe()
    }

    /// The layer to install in the node's tracing subscriber.
    pub fn layer(self: &Arc<Self>) -> RingLayer {
        RingLayer { hub: self.clone() }
    }
}

pub struct RingLayer {
    hub: Arc<LogHub>,
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Fields {
    fn push(&mut self, field: &Field, value: std::fmt::Arguments<'_>) {
        if field.name() == "message" {
            let _ = self.message.write_fmt(value);
        } else {
            if !self.rest.is_empty() {
                self.rest.push(' ');
            }
            let _ = write!(self.rest, "{}={}", field.name(), value);
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.push(field, format_args!("{value:?}"));
    }
}

impl<S: Subscriber> Layer<S> for RingLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        self.hub.hub.publish(LogRecord {
            seq: self.hub.seq.fetch_add(1, Ordering::Relaxed) + 1,
            unix_ms: unix_millis(),
            level: meta.level().to_string(),
            target: meta.target().to_string(),
            message: fields.message,
            fields: fields.rest,
        });
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn events_are_recorded_with_message_level_target_and_fields() {
        let hub = LogHub::new();
        let subscriber = tracing_subscriber::registry().with(hub.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(node = 2, took_ms = 15, "snapshot {} built", "T1-5");
        });
        let (history, _) = hub.subscribe();
        assert_eq!(history.len(), 1);
        let r = &history[0];
        assert_eq!(r.level, "WARN");
        assert_eq!(r.message, "snapshot T1-5 built");
        assert_eq!(r.fields, "node=2 took_ms=15");
        assert_eq!(r.seq, 1);
        assert!(r.target.contains("logs"));
    }
}
