//! API key operations the console and the CLI share.

use std::time::Duration;

use color_eyre::eyre::Result;
use opsdeck_node::pb::{NewKeyReply, RotateKeyRequest};

use crate::client::ClusterClient;

/// Rotates key `id`: a successor with the same role and tenants; the old key stays valid
/// for `grace`. The reply holds the new secret, shown once.
pub async fn rotate_key(
    client: &ClusterClient,
    id: String,
    grace: Duration,
) -> Result<NewKeyReply> {
    let req = RotateKeyRequest {
        id,
        grace_ms: grace.as_millis() as u64,
    };
    client
        .call("keys rotate", |mut c| {
            let req = req.clone();
            async move { c.rotate_key(req).await }
        })
        .await
}
