//! `opsdeck debug bundle`: the diagnostics bundle ([`crate::ops::bundle`]), with one
//! evaluation of the built-in alert rules against the status reports it fetched. Prints
//! where it wrote, its size, and which nodes did not answer (also on stderr); exit 0 when
//! the bundle was written, even with nodes down.

use color_eyre::eyre::Result;
use serde_json::{json, Value};

use crate::alerts::{Evaluator, Rules};
use crate::cli::DebugAction;
use crate::ops::bundle::{bundle, Options};

pub async fn run(action: DebugAction) -> Result<()> {
    match action {
        DebugAction::Bundle {
            out,
            since,
            cluster,
        } => {
            let target = cluster.target()?;
            let client = target.connect()?;
            let opts = Options {
                out,
                since,
                label: target.label(),
                tls_ca: target.tls_ca.clone(),
            };
            let json = cluster.json();
            let outcome = bundle(&client, &opts, evaluate_once, |line| {
                if !json {
                    eprintln!("{line}");
                }
            })
            .await?;
            for m in &outcome.missing {
                eprintln!(
                    "warning: {} did not answer and is listed in the manifest: {}",
                    m.endpoint, m.reason
                );
            }
            if json {
                super::print_json(&outcome)?;
            } else {
                println!("{}", outcome.describe());
            }
            Ok(())
        }
    }
}

/// What `opsdeck alerts --json` computes, from one look at `reports`.
fn evaluate_once(reports: &[crate::client::NodeReport]) -> Value {
    let mut ev = Evaluator::new(Rules::defaults());
    ev.observe(opsdeck_node::clock::unix_millis(), reports);
    let alerts: Vec<Value> = ev.alerts().iter().map(crate::alerts::alert_json).collect();
    json!({ "source": "one evaluation of the built-in rules", "rules": ev.rules().origin(), "alerts": alerts })
}
