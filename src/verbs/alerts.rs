//! `opsdeck alerts`: the observer loop over `status_all`, printing a table once or each
//! state change as it happens.

use std::io::Write;
use std::time::{Duration, Instant};

use color_eyre::eyre::{eyre, Result};
use serde_json::{json, Value};

use crate::alerts::notify::{Notifier, Source};
use crate::alerts::{alert_json, AlertState, Evaluator, Rules, Severity, State, Transition};
use crate::cli::{AlertsArgs, ExportFormat};
use crate::client::failure::{Class, Failure};
use crate::format::table::{self, cut};

const WIDTH: usize = 80;

/// At most two units: `45s`, `3m20s`, `2h5m`, `4d3h`.
fn short(d: Duration) -> String {
    let s = d.as_secs();
    let (big, small) = match s {
        0..60 => return format!("{s}s"),
        60..3600 => ((s / 60, "m"), (s % 60, "s")),
        3600..86400 => ((s / 3600, "h"), (s % 3600 / 60, "m")),
        _ => ((s / 86400, "d"), (s % 86400 / 3600, "h")),
    };
    if small.0 == 0 {
        format!("{}{}", big.0, big.1)
    } else {
        format!("{}{}{}{}", big.0, big.1, small.0, small.1)
    }
}

fn since(ms: i64, now_ms: i64) -> Duration {
    Duration::from_millis(now_ms.saturating_sub(ms).max(0) as u64)
}

fn state_word(s: State) -> &'static str {
    match s {
        State::Inactive => "INACTIVE",
        State::Pending => "PENDING",
        State::Firing => "FIRING",
        State::Resolved => "RESOLVED",
    }
}

fn severity_word(a: &AlertState) -> &'static str {
    match a.severity {
        Severity::Info => "info",
        Severity::Warning => "warn",
        Severity::Critical => "crit",
    }
}

/// One line per change, at most 80 columns.
fn transition_line(t: &Transition) -> String {
    let clock = crate::format::utc_seconds(t.at_ms);
    let clock = clock.get(11..).unwrap_or(&clock);
    let a = &t.alert;
    cut(
        &format!(
            "{clock} {:<8} {} {} ({}): {}",
            state_word(t.to),
            severity_word(a),
            a.id.rule,
            a.id.subject,
            a.value()
        ),
        WIDTH,
    )
}

fn transition_json(t: &Transition) -> Value {
    let mut v = alert_json(&t.alert);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("at".into(), json!(crate::format::utc_seconds(t.at_ms)));
        obj.insert("at_ms".into(), json!(t.at_ms));
        obj.insert("from".into(), json!(t.from));
        obj.insert("to".into(), json!(t.to));
    }
    v
}

/// The alerts as an 80-column table. A pending alert's age reads `seen/for`, e.g. `3s/1m`.
fn render_table(alerts: &[AlertState], now_ms: i64) -> String {
    let head: Vec<[String; 4]> = alerts
        .iter()
        .map(|a| {
            let age = match a.state {
                State::Pending => format!(
                    "{}/{}",
                    short(since(a.active_since_ms, now_ms)),
                    short(a.hold)
                ),
                _ => short(since(a.since_ms, now_ms)),
            };
            [
                state_word(a.state).to_string(),
                severity_word(a).to_string(),
                age,
                cut(&format!("{} ({})", a.id.rule, a.id.subject), 34),
            ]
        })
        .collect();
    let used: usize = (0..4)
        .map(|i| {
            head.iter()
                .map(|r| r[i].chars().count())
                .chain([["STATE", "SEV", "AGE", "ALERT"][i].len()])
                .max()
                .unwrap_or(0)
                + 2
        })
        .sum();
    let room = WIDTH.saturating_sub(used).max(10);
    let rows: Vec<Vec<String>> = head
        .into_iter()
        .zip(alerts)
        .map(|(h, a)| {
            let mut row = h.to_vec();
            row.push(cut(&a.value(), room));
            row
        })
        .collect();
    table::render(&["STATE", "SEV", "AGE", "ALERT", "VALUE"], &rows)
}

/// `--check`'s exit status (Nagios): 2 if a critical alert fires, 1 if only warnings do,
/// else 0. Pending and resolved alerts do not count, nor firing info alerts.
pub fn check_status(alerts: &[AlertState]) -> i32 {
    let firing = |s: Severity| {
        alerts
            .iter()
            .any(|a| a.state == State::Firing && a.severity == s)
    };
    if firing(Severity::Critical) {
        2
    } else if firing(Severity::Warning) {
        1
    } else {
        0
    }
}

/// Runs the verb; the exit status (only `--check` makes it other than 0).
pub async fn run(args: &AlertsArgs) -> Result<i32> {
    // A bad rules file is refused before anything is contacted.
    let rules = match &args.rules {
        Some(path) => Rules::load(path)?,
        None => Rules::defaults(),
    };
    if args.print_rules {
        print!("{}", rules.text());
        return Ok(0);
    }
    if let Some(ExportFormat::Prometheus) = args.export {
        let text = crate::alerts::export_prometheus(&rules, &args.job).map_err(|e| eyre!(e))?;
        print!("{text}");
        return Ok(0);
    }
    if args.interval < Duration::from_millis(100) {
        return Err(eyre!(
            "--interval {} is too short: use at least 100ms",
            humantime::format_duration(args.interval)
        ));
    }
    let receivers = args.notify.receivers();
    if !receivers.is_empty() && !args.follow {
        return Err(Failure::new(
            Class::Usage,
            "--alertmanager and --webhook send the changes --follow sees: add --follow",
        )
        .into());
    }
    let client = super::connect(&args.cluster)?;
    // A hung node costs at most this per tick; a stopped one answers at once.
    let ask_timeout = args
        .interval
        .clamp(Duration::from_millis(500), Duration::from_secs(2));
    let mut ev = Evaluator::new(rules);
    let json = args.cluster.json();

    if args.follow {
        let mut tick = tokio::time::interval(args.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stop = crate::verbs::node::shutdown_signal();
        tokio::pin!(stop);
        let names: Vec<String> = receivers.iter().map(ToString::to_string).collect();
        let source = Source {
            cluster: None,
            generator: format!(
                "opsdeck://{}/alerts",
                client
                    .endpoints()
                    .first()
                    .map_or("localhost", String::as_str)
            ),
        };
        let mut notifier = Notifier::start(receivers, source).map_err(|e| eyre!(e))?;
        eprintln!(
            "watching {} with {} rules from {} every {}; Ctrl-C stops",
            client.endpoints().join(", "),
            ev.rules().rules().len(),
            ev.rules().origin(),
            humantime::format_duration(args.interval)
        );
        if !names.is_empty() {
            eprintln!("sending changes to {}", names.join(", "));
        }
        loop {
            tokio::select! {
                _ = &mut stop => return Ok(0),
                _ = tick.tick() => {}
            }
            let reports = tokio::select! {
                _ = &mut stop => return Ok(0),
                r = client.status_all(ask_timeout) => r,
            };
            let now = crate::format::unix_ms();
            let changes = ev.observe(now, &reports);
            if !notifier.is_empty() {
                if notifier.source.cluster.is_none() {
                    notifier.source.cluster = crate::alerts::notify::cluster_of(&reports);
                }
                notifier.observe(now, &changes);
                for line in notifier.news() {
                    eprintln!("{line}");
                }
            }
            let mut out = std::io::stdout().lock();
            for t in changes {
                let line = if json {
                    transition_json(&t).to_string()
                } else {
                    transition_line(&t)
                };
                // The reader went away (`| head`): stop quietly.
                if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                    return Ok(0);
                }
            }
        }
    }

    let started = Instant::now();
    let mut looks = 0u32;
    loop {
        let reports = client.status_all(ask_timeout).await;
        ev.observe(crate::format::unix_ms(), &reports);
        looks += 1;
        let elapsed = started.elapsed();
        if elapsed >= args.observe {
            break;
        }
        tokio::time::sleep(args.interval.min(args.observe - elapsed)).await;
    }
    let now = crate::format::unix_ms();
    let observed = started.elapsed();
    if json {
        let alerts: Vec<Value> = ev.alerts().iter().map(alert_json).collect();
        super::print_json(&json!({
            "rules": ev.rules().origin(),
            "observed_ms": observed.as_millis() as u64,
            "looks": looks,
            "alerts": alerts,
        }))?;
    } else if ev.alerts().is_empty() {
        println!(
            "no alerts ({} rules from {}, {looks} looks over {})",
            ev.rules().rules().len(),
            ev.rules().origin(),
            short(observed)
        );
    } else {
        println!("{}", render_table(ev.alerts(), now));
    }
    Ok(if args.check {
        check_status(ev.alerts())
    } else {
        0
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::NodeReport;

    #[test]
    fn short_durations() {
        let s = |secs| short(Duration::from_secs(secs));
        assert_eq!(
            [s(0), s(59), s(60), s(200), s(3600), s(3700), s(90000)],
            ["0s", "59s", "1m", "3m20s", "1h", "1h1m", "1d1h"]
        );
    }

    #[test]
    fn the_table_and_lines_fit_80_columns() {
        let rules = Rules::parse(
            "[[rule]]\nname = \"a_rule_with_a_rather_long_name_indeed\"\nexpr = \"node_up == 0\"\n\
             for = \"1m\"\nseverity = \"critical\"\n\
             [[rule]]\nname = \"q\"\nexpr = \"quorum_ok == 0\"\nseverity = \"critical\"\n",
            "t.toml",
        )
        .unwrap();
        let mut ev = Evaluator::new(rules);
        let reports: Vec<NodeReport> = (1..=3)
            .map(|i| NodeReport {
                endpoint: format!("very-long-host-name-{i}.example.internal:7101"),
                status: Err("transport error: connection refused (os error 111)".into()),
                refused: false,
            })
            .collect();
        let t0 = 1_800_000_000_000;
        let changes = ev.observe(t0, &reports);
        assert_eq!(changes.len(), 4);
        for t in &changes {
            let line = transition_line(t);
            assert!(line.chars().count() <= WIDTH, "{line}");
            assert!(
                line.contains("PENDING") || line.contains("FIRING"),
                "{line}"
            );
        }
        let table = render_table(ev.alerts(), t0 + 3000);
        for line in table.lines() {
            assert!(line.chars().count() <= WIDTH, "{} > 80: {line}", line.len());
        }
        assert!(table.contains("3s/1m"), "{table}");
        assert!(table.starts_with("STATE"), "{table}");
    }

    #[test]
    fn json_has_numbers_or_null_and_the_subject() {
        let rules = Rules::parse(
            "[[rule]]\nname = \"b\"\nexpr = \"backup_age_h > 24\"\nseverity = \"warning\"\n",
            "t.toml",
        )
        .unwrap();
        let mut ev = Evaluator::new(rules);
        let status = opsdeck_node::pb::NodeStatus {
            id: 1,
            ..Default::default()
        };
        let changes = ev.observe(
            1_800_000_000_000,
            &[NodeReport {
                endpoint: "127.0.0.1:7101".into(),
                status: Ok(status),
                refused: false,
            }],
        );
        let v = transition_json(&changes[0]);
        assert_eq!(v["figures"][0]["value"], Value::Null);
        assert_eq!(v["value"], "no backup known");
        assert_eq!(v["scope"], "cluster");
        assert_eq!(
            (v["from"].as_str(), v["to"].as_str()),
            (Some("inactive"), Some("firing"))
        );
    }
}
