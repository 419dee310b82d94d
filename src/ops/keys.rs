//! API key operations the console and the CLI share.

use std::time::Duration;

use color_eyre::eyre::{eyre, Result};
use opsdeck_node::pb::{NewKeyReply, RotateKeyRequest};
use opsdeck_node::types::limits::key_duration_ms;

use crate::client::ClusterClient;

/// Rotates key `id`: a successor with the same role and tenants; the old key stays valid
/// for `grace` (at most `limits::MAX_KEY_DURATION`, else refused before anything is sent).
/// The reply holds the new secret, shown once.
pub async fn rotate_key(
    client: &ClusterClient,
    id: String,
    grace: Duration,
) -> Result<NewKeyReply> {
    let req = RotateKeyRequest {
        id,
        grace_ms: key_duration_ms("the grace period", grace).map_err(|e| eyre!("{e}"))?,
    };
    client
        .call("keys rotate", |mut c| {
            let req = req.clone();
            async move { c.rotate_key(req).await }
        })
        .await
}
