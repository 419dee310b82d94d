//! `opsdeck dev`: starts (or resumes) a local cluster, then opens the console on it; quitting
//! the console stops the cluster unless `--keep`.

use std::time::Duration;

use color_eyre::eyre::Result;

use crate::cli::{ClusterArgs, ConsoleArgs, DevArgs};
use crate::client::cluster_file::default_dev_dir;
use crate::ops::dev_cluster::{DevCluster, NodeExit};

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
        notify: args.notify.clone(),
        ..ConsoleArgs::default()
    };
    let settings = if args.headless {
        None
    } else {
        crate::console::require_terminal("pass --headless to run the cluster without it")?;
        Some(crate::console::resolve(&console_args)?)
    };
    let mut cluster = DevCluster::start(&args).await?;
    cluster.print_summary();
    let Some(mut settings) = settings else {
        let mut say = |exit: &NodeExit| eprintln!("{exit}");
        let all_exited = tokio::select! {
            _ = super::node::shutdown_signal() => false,
            _ = cluster.until_all_exited(&mut say) => true,
        };
        let dir = cluster.dir.clone();
        let stopped = cluster.stop().await;
        if all_exited {
            return Err(every_node_exited(&dir));
        }
        return stopped;
    };
    console_args.cluster.cluster = Some(cluster.dir.clone());
    settings.dev_dir = Some(cluster.dir.clone());
    let client = super::connect(&console_args.cluster);
    let mut all_exited = false;
    let opened = match client {
        Ok(client) => {
            // The console shows nodes that died as down; meanwhile their processes are
            // reaped here, so none stays a zombie.
            let console = crate::console::open(client, settings);
            tokio::pin!(console);
            let mut quiet = |_: &NodeExit| {};
            loop {
                tokio::select! {
                    result = &mut console => break result,
                    _ = cluster.until_all_exited(&mut quiet), if !all_exited => all_exited = true,
                }
            }
        }
        Err(e) => Err(e),
    };
    // Quitting the console stops the cluster (unless --keep), whatever the console's fate.
    let dir = cluster.dir.clone();
    let stopped = cluster.stop().await;
    if all_exited {
        return opened.and(Err(every_node_exited(&dir)));
    }
    opened.and(stopped)
}

fn every_node_exited(dir: &std::path::Path) -> color_eyre::Report {
    color_eyre::eyre::eyre!(
        "every node of the dev cluster in {} exited; see the node logs there (n*.log), \
         then run `opsdeck dev` again to resume it",
        dir.display()
    )
}
