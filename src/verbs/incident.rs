//! `opsdeck incident report|ack|silence`: the incident report ([`crate::ops::incident`]),
//! with one evaluation of the built-in alert rules for what is active now; and the alert
//! notes (ack, silence) recorded in the cluster's audit trail.

use std::time::Duration;

use color_eyre::eyre::{eyre, Result};
use serde_json::json;

use crate::alerts::{Evaluator, Rules, State};
use crate::cli::IncidentAction;
use crate::format as fmt;
use crate::ops::incident::{annotate, gather, render, write_file, Note};

/// Longest silence recorded (as the console's `:silence`).
const MAX_SILENCE: Duration = Duration::from_secs(7 * 24 * 3600);

pub async fn run(action: IncidentAction) -> Result<()> {
    match action {
        IncidentAction::Report {
            since,
            out,
            cluster,
        } => {
            let target = cluster.target()?;
            let client = target.connect()?;
            let data = gather(&client, &target.label(), since, Vec::new(), active_once).await?;
            for m in &data.not_answering {
                eprintln!(
                    "warning: {} did not answer; the report lists it: {}",
                    m.endpoint, m.reason
                );
            }
            if cluster.json() {
                return super::print_json(&data);
            }
            let text = render(&data);
            match out {
                Some(path) => {
                    let path = write_file(&path, &text)?;
                    println!(
                        "wrote {} ({} entries, {} to {})",
                        path.display(),
                        data.entries.len(),
                        fmt::utc_seconds(data.from_ms),
                        fmt::utc_seconds(data.to_ms)
                    );
                }
                None => print!("{text}"),
            }
            Ok(())
        }
        IncidentAction::Ack {
            alert,
            note,
            cluster,
        } => {
            check_rule(&alert.rule)?;
            let client = cluster.target()?.connect()?;
            let id = alert.alert_id();
            let at = annotate(&client, Note::Ack, &id, None, &note).await?;
            if cluster.json() {
                return super::print_json(
                    &json!({ "acknowledged": id, "at": fmt::utc_seconds(at) }),
                );
            }
            println!(
                "acknowledged {id} at {} (recorded in the audit trail)",
                fmt::utc_seconds(at)
            );
            Ok(())
        }
        IncidentAction::Silence {
            alert,
            for_,
            note,
            cluster,
        } => {
            check_rule(&alert.rule)?;
            if for_ > MAX_SILENCE {
                return Err(eyre!(
                    "a silence lasts at most 7d (--for {})",
                    humantime::format_duration(for_)
                ));
            }
            let client = cluster.target()?.connect()?;
            let id = alert.alert_id();
            let (kind, until) = if for_.is_zero() {
                (Note::Unsilence, None)
            } else {
                let now = opsdeck_node::clock::unix_millis();
                (
                    Note::Silence,
                    Some(now.saturating_add(for_.as_millis() as i64)),
                )
            };
            let at = annotate(&client, kind, &id, until, &note).await?;
            if cluster.json() {
                return super::print_json(&json!({
                    "alert": id,
                    "silenced_until": until.map(fmt::utc_seconds),
                    "at": fmt::utc_seconds(at),
                }));
            }
            match until {
                Some(u) => println!(
                    "silenced {id} until {} (recorded in the audit trail; consoles mute it from their own evaluation)",
                    fmt::utc_seconds(u)
                ),
                None => println!("lifted the silence of {id} (recorded in the audit trail)"),
            }
            Ok(())
        }
    }
}

/// A rule name as the rules files write them (the built-in ones, or a user's).
fn check_rule(rule: &str) -> Result<()> {
    let ok = !rule.is_empty()
        && rule.len() <= 64
        && rule
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        let names: Vec<String> = Rules::defaults()
            .rules()
            .iter()
            .map(|r| r.name.clone())
            .collect();
        Err(eyre!(
            "bad rule name {rule:?}: a rule is named in lowercase letters, digits and _ (built in: {})",
            names.join(", ")
        ))
    }
}

/// The alerts whose condition holds now, from one evaluation of the built-in rules (one
/// look cannot tell pending from firing: a rule's `for` needs a history).
fn active_once(reports: &[crate::client::NodeReport]) -> Vec<String> {
    let mut ev = Evaluator::new(Rules::defaults());
    ev.observe(opsdeck_node::clock::unix_millis(), reports);
    ev.alerts()
        .iter()
        .filter(|a| matches!(a.state, State::Pending | State::Firing))
        .map(|a| format!("{} [{}]", a.id, a.severity))
        .collect()
}
