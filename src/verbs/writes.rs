//! `opsdeck writes pause|resume`: maintenance mode (needs an admin key).

use color_eyre::eyre::Result;
use opsdeck_node::pb::WritesPaused;
use serde_json::json;

use super::connect;
use crate::cli::WritesAction;
use crate::format as fmt;
use crate::ops::maintenance::{describe, pause_writes, resume_writes};

fn pause_json(p: &WritesPaused, paused: bool) -> serde_json::Value {
    json!({
        "paused": paused,
        "by": p.by,
        "since": fmt::utc_seconds(p.since_unix_ms),
        "reason": p.reason,
        "until": p.until_unix_ms.map(fmt::utc_seconds),
    })
}

pub async fn writes(action: WritesAction) -> Result<()> {
    match action {
        WritesAction::Pause {
            reason,
            for_,
            cluster,
        } => {
            let client = connect(&cluster)?;
            let p = pause_writes(&client, &reason, for_).await?;
            if cluster.json() {
                return super::print_json(&pause_json(&p, true));
            }
            println!("{}", describe(&p));
            println!("every node now refuses client writes (exit status 9); reads go on");
            Ok(())
        }
        WritesAction::Resume { cluster } => {
            let client = connect(&cluster)?;
            let p = resume_writes(&client).await?;
            if cluster.json() {
                return super::print_json(&pause_json(&p, false));
            }
            println!(
                "writes resumed (they were paused by {} since {}: {})",
                p.by,
                fmt::utc_seconds(p.since_unix_ms),
                p.reason
            );
            Ok(())
        }
    }
}
