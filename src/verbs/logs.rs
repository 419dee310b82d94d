//! `opsdeck logs`: every node's recent log records (from its Watch stream), merged by
//! timestamp and filtered by node, level, regex and age; `--follow` then keeps printing
//! new records as they arrive. A node that cannot be reached is reported once on stderr and
//! the others still print.

use std::io::Write;
use std::time::Duration;

use color_eyre::eyre::{eyre, Result};
use opsdeck_node::pb::watch_event::Kind;
use opsdeck_node::pb::{LogRecord, WatchRequest};
use regex::Regex;
use serde_json::json;
use tokio::sync::mpsc;

use super::connect;
use crate::cli::LogsArgs;
use crate::client::NodeRpc;

/// How long a node may take to accept the Watch call and send its history.
const HISTORY_TIMEOUT: Duration = Duration::from_secs(5);

/// What one node's stream yields, in the order it arrives.
enum Item {
    Record(LogRecord),
    /// The node had to skip this many records for us (we read too slowly).
    Dropped {
        endpoint: String,
        records: u64,
    },
    /// The node's history is complete (its first status frame came after it).
    HistoryDone,
    /// The stream failed or ended; said once per node.
    Gone {
        endpoint: String,
        reason: String,
    },
}

struct Filter {
    node: Option<u64>,
    level: tracing::Level,
    grep: Option<Regex>,
    since_ms: Option<i64>,
}

impl Filter {
    fn new(args: &LogsArgs) -> Result<Filter> {
        let grep = match &args.grep {
            // regex explains a syntax error over several lines; its last line says what.
            Some(re) => Some(Regex::new(re).map_err(|e| {
                let why = e.to_string();
                eyre!(
                    "bad --grep {re:?}: {}",
                    why.lines()
                        .last()
                        .unwrap_or_default()
                        .trim_start_matches("error: ")
                )
            })?),
            None => None,
        };
        // A --since longer than the clock can count back means "everything".
        let since_ms = args.since.map(|d| {
            let back = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            crate::format::unix_ms().saturating_sub(back)
        });
        Ok(Filter {
            node: args.node,
            level: args.level,
            grep,
            since_ms,
        })
    }

    fn keeps(&self, r: &LogRecord) -> bool {
        // tracing orders levels by verbosity: ERROR < WARN < INFO < DEBUG < TRACE.
        let level_ok = r
            .level
            .parse::<tracing::Level>()
            .map_or(true, |l| l <= self.level);
        let grep_ok = self.grep.as_ref().is_none_or(|re| {
            re.is_match(&r.message) || re.is_match(&r.target) || re.is_match(&r.fields)
        });
        level_ok
            && grep_ok
            && self.node.is_none_or(|n| r.node_id == n)
            && self.since_ms.is_none_or(|s| r.unix_ms >= s)
    }
}

/// Streams one node's log records into `tx` until the stream ends or `tx` is dropped.
async fn pump(endpoint: String, mut client: NodeRpc, history: u32, tx: mpsc::Sender<Item>) {
    let req = WatchRequest {
        // Frames only mark the end of the history; one a minute is plenty after that.
        status_interval_ms: 60_000,
        logs: true,
        events: false,
        log_history: history,
    };
    let gone = |reason: String| Item::Gone {
        endpoint: endpoint.clone(),
        reason,
    };
    let mut stream = match tokio::time::timeout(HISTORY_TIMEOUT, client.watch(req)).await {
        Ok(Ok(s)) => s.into_inner(),
        Ok(Err(s)) => {
            let _ = tx.send(gone(s.message().to_string())).await;
            return;
        }
        Err(_) => {
            let _ = tx
                .send(gone(format!("no answer within {HISTORY_TIMEOUT:?}")))
                .await;
            return;
        }
    };
    let mut history_done = false;
    loop {
        let item = match stream.message().await {
            Ok(Some(ev)) => match ev.kind {
                Some(Kind::Log(r)) => Item::Record(r),
                Some(Kind::Dropped(d)) => Item::Dropped {
                    endpoint: endpoint.clone(),
                    records: d.records,
                },
                Some(Kind::Status(_)) if !history_done => {
                    history_done = true;
                    Item::HistoryDone
                }
                _ => continue,
            },
            Ok(None) => gone("the node closed the stream".into()),
            Err(s) => gone(s.message().to_string()),
        };
        let last = matches!(item, Item::Gone { .. });
        if tx.send(item).await.is_err() || last {
            return;
        }
    }
}

/// `HH:MM:SS.mmm` (UTC) of a Unix time in milliseconds.
fn clock(unix_ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(unix_ms.max(0) as u64);
    let stamp = crate::format::rfc3339(humantime::format_rfc3339_millis(t))
        .unwrap_or_else(|| crate::format::AFTER_9999.into());
    stamp.get(11..23).unwrap_or(&stamp).to_string()
}

/// Columns of the terminal on stdout, if it is one.
fn terminal_width() -> Option<usize> {
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ only fills the struct we pass.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_col > 0).then_some(size.ws_col as usize)
}

fn line(r: &LogRecord, width: Option<usize>) -> String {
    let mut text = format!(
        "{} n{} {:<5} {}: {}",
        clock(r.unix_ms),
        r.node_id,
        r.level,
        r.target,
        r.message
    );
    if !r.fields.is_empty() {
        text.push(' ');
        text.push_str(&r.fields);
    }
    let text = text.replace(['\n', '\r'], " ");
    match width {
        Some(w) if text.chars().count() > w => {
            let mut cut: String = text.chars().take(w.saturating_sub(1)).collect();
            cut.push('…');
            cut
        }
        _ => text,
    }
}

fn record_json(r: &LogRecord) -> serde_json::Value {
    json!({
        "unix_ms": r.unix_ms, "node": r.node_id, "seq": r.seq, "level": r.level,
        "target": r.target, "message": r.message, "fields": r.fields,
    })
}

struct Printer {
    json: bool,
    width: Option<usize>,
    out: std::io::Stdout,
}

impl Printer {
    fn record(&mut self, r: &LogRecord) -> std::io::Result<()> {
        let text = match self.json {
            true => record_json(r).to_string(),
            false => line(r, self.width),
        };
        writeln!(self.out, "{text}")
    }

    fn dropped(&mut self, endpoint: &str, records: u64) -> std::io::Result<()> {
        let text = match self.json {
            true => json!({ "endpoint": endpoint, "dropped": records }).to_string(),
            false => format!("-- {endpoint}: dropped {records} records (reading too slowly)"),
        };
        writeln!(self.out, "{text}")
    }
}

pub async fn run(args: LogsArgs) -> Result<()> {
    let filter = Filter::new(&args)?;
    let client = connect(&args.cluster)?;
    let clients = client.node_clients();
    let nodes = clients.len();
    let (tx, mut rx) = mpsc::channel::<Item>(4096);
    for (endpoint, c) in clients {
        tokio::spawn(pump(endpoint, c, args.history, tx.clone()));
    }
    drop(tx);
    let mut printer = Printer {
        json: args.cluster.json(),
        width: terminal_width(),
        out: std::io::stdout(),
    };

    // The history: everything each node sends before its first status frame, sorted.
    let mut history = Vec::new();
    let (mut done, mut gone) = (0, 0);
    let deadline = tokio::time::Instant::now() + 2 * HISTORY_TIMEOUT;
    while done + gone < nodes {
        let Ok(item) = tokio::time::timeout_at(deadline, rx.recv()).await else {
            eprintln!(
                "{} of {nodes} nodes did not finish sending their history in time",
                nodes - done - gone
            );
            break;
        };
        match item {
            Some(Item::Record(r)) => history.push(r),
            Some(Item::Dropped { endpoint, records }) => printer.dropped(&endpoint, records)?,
            Some(Item::HistoryDone) => done += 1,
            Some(Item::Gone { endpoint, reason }) => {
                gone += 1;
                eprintln!("{endpoint}: unreachable: {reason}");
            }
            None => break,
        }
    }
    if gone == nodes {
        return Err(eyre!(
            "logs: no node answered at {} (is the cluster running?)",
            client.endpoints().join(", ")
        ));
    }
    history.sort_by_key(|r| (r.unix_ms, r.node_id, r.seq));
    for r in history.iter().filter(|r| filter.keeps(r)) {
        printer.record(r)?;
    }
    printer.out.flush()?;
    if !args.follow {
        return Ok(());
    }

    // Live records, in order of arrival, until Ctrl-C or every stream has ended.
    loop {
        let item = tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            item = rx.recv() => item,
        };
        match item {
            Some(Item::Record(r)) if filter.keeps(&r) => printer.record(&r)?,
            Some(Item::Dropped { endpoint, records }) => printer.dropped(&endpoint, records)?,
            Some(Item::Gone { endpoint, reason }) => {
                eprintln!("{endpoint}: stream ended: {reason}")
            }
            Some(_) => continue,
            None => return Err(eyre!("logs: every node's stream has ended")),
        }
        printer.out.flush()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(level: &str, message: &str) -> LogRecord {
        LogRecord {
            node_id: 2,
            seq: 1,
            unix_ms: 1_700_000_000_123,
            level: level.into(),
            target: "opsdeck_node::server".into(),
            message: message.into(),
            fields: "id=2".into(),
        }
    }

    #[test]
    fn level_means_that_level_and_above() {
        let f = Filter {
            node: None,
            level: tracing::Level::WARN,
            grep: None,
            since_ms: None,
        };
        assert!(f.keeps(&rec("ERROR", "x")));
        assert!(f.keeps(&rec("WARN", "x")));
        assert!(!f.keeps(&rec("INFO", "x")));
    }

    #[test]
    fn a_line_fits_the_width_and_shows_time_node_level_target() {
        let l = line(&rec("INFO", "node started"), None);
        assert_eq!(
            l,
            "22:13:20.123 n2 INFO  opsdeck_node::server: node started id=2"
        );
        assert_eq!(
            line(&rec("INFO", "node started"), Some(20)).chars().count(),
            20
        );
    }

    #[test]
    fn a_since_longer_than_the_clock_keeps_everything() {
        let cli = <crate::cli::Cli as clap::Parser>::try_parse_from([
            "opsdeck",
            "logs",
            "--since",
            "500000000000y",
        ])
        .expect("parses");
        let crate::cli::Command::Logs(args) = cli.command else {
            panic!("not the logs verb");
        };
        let f = Filter::new(&args).expect("a filter");
        assert!(f.keeps(&rec("INFO", "x")));
    }
}
