//! Maintenance mode, shared by `opsdeck writes` and the console: pause client writes on
//! every node (a replicated admin entry, see the node's `service::admin`) and resume them.

use std::time::Duration;

use color_eyre::eyre::{eyre, Result};
use opsdeck_node::pb::{PauseWritesRequest, ResumeWritesRequest, WritesPaused};
use opsdeck_node::types::limits::key_duration_ms;

use crate::client::ClusterClient;

/// Pauses writes with `reason`, until a resume or for `for_` (at most the key-duration
/// limit, else refused before anything is sent). The reply is the pause now in effect.
pub async fn pause_writes(
    client: &ClusterClient,
    reason: &str,
    for_: Option<Duration>,
) -> Result<WritesPaused> {
    if reason.trim().is_empty() {
        return Err(eyre!(
            "a pause of writes needs a reason (--reason TEXT): every refused write shows it"
        ));
    }
    let for_ms = match for_ {
        Some(d) => key_duration_ms("the pause", d).map_err(|e| eyre!("{e}"))?,
        None => 0,
    };
    let req = PauseWritesRequest {
        reason: reason.to_string(),
        for_ms,
    };
    client
        .call("writes pause", |mut c| {
            let req = req.clone();
            async move { c.pause_writes(req).await }
        })
        .await
}

/// Ends the pause of writes; the reply is the pause it ended.
pub async fn resume_writes(client: &ClusterClient) -> Result<WritesPaused> {
    client
        .call("writes resume", |mut c| async move {
            c.resume_writes(ResumeWritesRequest {}).await
        })
        .await
}

/// `writes paused by KEY since T: REASON (until T)`: one line for status and the banner.
pub fn describe(p: &WritesPaused) -> String {
    let until = p
        .until_unix_ms
        .map(|u| format!(" (until {})", crate::format::utc_seconds(u)))
        .unwrap_or_default();
    format!(
        "writes paused by {} since {}: {}{until}",
        p.by,
        crate::format::utc_seconds(p.since_unix_ms),
        p.reason
    )
}
