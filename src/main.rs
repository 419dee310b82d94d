//! `opsdeck`: one binary for the Raft node, the dev cluster, the console and the CLI verbs.

use clap::Parser;
use color_eyre::eyre::Result;
use opsdeck::cli::{Cli, Command};
use opsdeck::console;
use opsdeck::verbs::{
    admin, alerts, backup, bench, check, compact, dev, kit, kv, logs, members, node,
};

fn main() {
    // The console adds a panic hook that restores the terminal before this report is
    // printed; errors are printed by us on one line.
    let _ = color_eyre::install();
    let cli = Cli::parse();
    if cli.command.is_one_shot() {
        // Like other CLI tools, end quietly when the reader of our output goes away
        // (`opsdeck status | head`) instead of panicking on a broken pipe. Never for
        // servers: a node must survive a peer closing a socket mid-write.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(dispatch(cli.command)) {
        eprintln!("error: {e:#}");
        std::process::exit(exit_code(&e));
    }
}

/// The exit status of a failed command (the table is `client::failure::EXIT_STATUS_HELP`).
fn exit_code(e: &color_eyre::Report) -> i32 {
    opsdeck::client::failure::class_of(e).exit_code()
}

async fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Node(args) => node::run(args).await,
        Command::Dev(args) => dev::run(args).await,
        Command::Console(args) => console::run(args).await,
        Command::Status(c) => kv::status(&c).await,
        Command::Members(c) => kv::members(&c).await,
        Command::Put {
            key,
            value,
            file,
            cluster,
        } => kv::put(&cluster, key, value, file).await,
        Command::Get {
            key,
            stale,
            cluster,
        } => kv::get(&cluster, key, stale).await,
        Command::Del { key, cluster } => kv::del(&cluster, key).await,
        Command::Cas {
            key,
            value,
            expect,
            cluster,
            ..
        } => kv::cas(&cluster, key, expect, value).await,
        Command::Scan {
            prefix,
            limit,
            stale,
            cluster,
        } => kv::scan(&cluster, prefix, limit, stale).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Keys { action } => admin::keys(action).await,
        Command::Quota { action } => admin::quota(action).await,
        Command::Audit { limit, cluster } => admin::audit(limit, &cluster).await,
        Command::Alerts(args) => alerts::run(&args).await,
        Command::Compact(c) => compact::run(&c).await,
        Command::Check(c) => check::run(&c).await,
        Command::Logs(args) => logs::run(args).await,
        Command::Backup { out, cluster } => backup::backup(&cluster, &out).await,
        Command::VerifyBackup { file, json } => backup::verify(&file, json),
        Command::Restore {
            file,
            yes,
            allow_foreign_cluster,
            cluster,
        } => backup::restore(&cluster, &file, yes, allow_foreign_cluster).await,
        Command::AddNode(args) => members::add_node(args).await,
        Command::RemoveNode(args) => members::remove_node(args).await,
        Command::TransferLeader(args) => members::transfer_leader(args).await,
        Command::Completions { shell } => kit::completions(shell),
        Command::Man { dir } => kit::man(dir.as_deref()),
        Command::Info { json } => kit::info(json),
    }
}
