//! `opsdeck check`: are the replicas the same? Compares the nodes' state digests at one
//! applied index they all hold ([`crate::ops::check`]) and prints "replicas agree at index
//! N: DIGEST" or which node differs. Exit status: 0 agree, 8 a node differs, 4 fewer than
//! two nodes answered (or they hold no index in common); unreachable nodes are listed.

use std::time::Duration;

use color_eyre::eyre::Result;

use super::connect;
use crate::cli::ClusterArgs;
use crate::client::digests::{short, Outcome};
use crate::client::failure::{Class, Failure};
use crate::ops::check::{check, Report};

/// The most one node is waited for per question: a dead node must not hold the check up.
pub const PER_NODE: Duration = Duration::from_secs(2);

pub async fn run(args: &ClusterArgs) -> Result<()> {
    let client = connect(args)?;
    let report = check(&client, args.timeout.min(PER_NODE)).await;
    if args.json() {
        super::print_json(&report)?;
    }
    verdict(&report, !args.json())
}

/// Prints the report for people when `print_it`, and turns it into the exit status: 0
/// agree, 8 a node differs, 4 no verdict.
pub fn verdict(report: &Report, print_it: bool) -> Result<()> {
    if print_it {
        print(report);
    }
    match &report.outcome {
        Outcome::Agree { .. } => Ok(()),
        Outcome::Diverged { index, differing } => Err(Failure::new(
            Class::Diverged,
            format!(
                "check: replicas diverge at index {index}: node(s) {} differ",
                ids(differing)
            ),
        )
        .into()),
        Outcome::Inconclusive { reason } => {
            Err(Failure::new(Class::Unavailable, format!("check: {reason}")).into())
        }
    }
}

fn ids(ids: &[u64]) -> String {
    ids.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn print(report: &Report) {
    match &report.outcome {
        Outcome::Agree { index, digest } => println!(
            "replicas agree at index {index}: {} ({} nodes)",
            short(digest),
            report.nodes.len()
        ),
        Outcome::Diverged { index, differing } => {
            println!(
                "replicas DIVERGE at index {index}: node(s) {} differ",
                ids(differing)
            );
            for n in &report.nodes {
                let mark = if differing.contains(&n.node_id) {
                    "✗"
                } else {
                    " "
                };
                println!(
                    "  {mark} node {} ({}): {} (Merkle root {})",
                    n.node_id,
                    n.endpoint,
                    short(&n.digest),
                    short(&n.merkle_root)
                );
            }
        }
        Outcome::Inconclusive { reason } => println!("no verdict: {reason}"),
    }
    for m in &report.unreachable {
        println!("unreachable: {}: {}", m.endpoint, m.reason);
    }
}
