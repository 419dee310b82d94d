//! `opsdeck dev`: starts (or resumes) a local cluster, then opens the console on it; quitting
//! the console stops the cluster unless `--keep`.

use std::time::Duration;

use color_eyre::eyre::Result;

use crate::cli::{ClusterArgs, ConsoleArgs, DevArgs};
use crate::client::cluster_file::default_dev_dir;
use crate::ops::dev_cluster::DevCluster;

pub async fn run(args: DevArgs) -> Result<()> {
    // A bad keymap or theme is refused before any node starts.
    let mut console_args = ConsoleArgs {
        cluster: ClusterArgs {
            cluster: Some(args.dir.clone().unwrap_or_else(default_dev_dir)),
            timeout: Duration::from_secs(10),
            ..ClusterArgs::default()
        },
        keymap: args.keymap.clone(),
        theme: args.theme.clone(),
        ..ConsoleArgs::default()
    };
    let settings = if args.headless {
        None
    } else {
        crate::console::require_terminal("pass --headless to run the cluster without it")?;
        Some(crate::console::resolve(&mut console_args)?)
    };
    let cluster = DevCluster::start(&args).await?;
    cluster.print_summary();
    let Some(mut settings) = settings else {
        super::node::shutdown_signal().await;
        return cluster.stop().await;
    };
    console_args.cluster.cluster = Some(cluster.dir.clone());
    settings.dev_dir = Some(cluster.dir.clone());
    let opened = match super::connect(&console_args.cluster) {
        Ok(client) => crate::console::open(client, settings).await,
        Err(e) => Err(e),
    };
    // Quitting the console stops the cluster (unless --keep), whatever the console's fate.
    let stopped = cluster.stop().await;
    opened.and(stopped)
}
