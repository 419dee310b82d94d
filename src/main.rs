//! `opsdeck`: one binary for the Raft node, the dev cluster, the console and the CLI verbs.

use color_eyre::eyre::Result;
use opsdeck::cli::Command;
use opsdeck::console;
use opsdeck::verbs::{
    admin, alerts, backup, bench, check, cmd, compact, ctx, debug, dev, incident, kit, kv, logs,
    members, node, proof,
};

fn main() {
    // The console adds a panic hook that restores the terminal before this report is
    // printed; errors are printed by us on one line.
    let _ = color_eyre::install();
    // `opsdeck node --config FILE` adds the file's settings before the flags are parsed.
    let cli = node::config_file::parse(std::env::args_os().collect()).unwrap_or_else(|e| e.exit());
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
    match runtime.block_on(dispatch(cli.command)) {
        Ok(0) => {}
        // `alerts --check`: the Nagios status, after the table was printed.
        Ok(status) => std::process::exit(status),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(exit_code(&e));
        }
    }
}

/// The exit status of a failed command (the table is `client::failure::EXIT_STATUS_HELP`).
fn exit_code(e: &color_eyre::Report) -> i32 {
    opsdeck::client::failure::class_of(e).exit_code()
}

/// Runs the command; the exit status of a command that did not fail (0 but for `alerts
/// --check`).
async fn dispatch(command: Command) -> Result<i32> {
    let done: Result<()> = match command {
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
            proof: Some(out),
            cluster,
        } => proof::get(&cluster, &key, stale, &out).await,
        Command::Get {
            key,
            stale,
            proof: None,
            cluster,
        } => kv::get(&cluster, key, stale).await,
        Command::VerifyProof {
            file,
            live,
            cluster,
        } => proof::verify(&file, live, &cluster).await,
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
        Command::Writes { action } => opsdeck::verbs::writes::writes(action).await,
        Command::Alerts(args) => return alerts::run(&args).await,
        Command::Compact(args) => compact::run(&args).await,
        Command::DefragData(args) => compact::defrag_data(&args),
        Command::Check(c) => check::run(&c).await,
        Command::Logs(args) => logs::run(args).await,
        Command::Backup {
            out,
            out_dir,
            keep,
            verify,
            cluster,
        } => match (out, out_dir) {
            (Some(out), _) => backup::backup(&cluster, &out, verify).await,
            (None, Some(dir)) => backup::rotate(&cluster, &dir, keep).await,
            // clap requires one of them.
            (None, None) => Err(color_eyre::eyre::eyre!("give --out FILE or --out-dir DIR")),
        },
        Command::VerifyBackup {
            file,
            record,
            cluster,
        } => backup::verify(&file, record, &cluster).await,
        Command::Restore {
            file,
            yes,
            allow_foreign_cluster,
            cluster,
        } => backup::restore(&cluster, &file, yes, allow_foreign_cluster).await,
        Command::AddNode(args) => members::add_node(args).await,
        Command::RemoveNode(args) => members::remove_node(args).await,
        Command::RebuildNode(args) => members::rebuild_node(args).await,
        Command::RestartNode(args) => members::restart_node(args).await,
        Command::RollingRestart(args) => members::rolling_restart(args).await,
        Command::TransferLeader(args) => members::transfer_leader(args).await,
        Command::Completions { shell } => kit::completions(shell),
        Command::Man { dir } => kit::man(dir.as_deref()),
        Command::Info { output } => kit::info(output.json()),
        Command::Ctx { action } => ctx::run(action),
        Command::Cmd { action } => return cmd::run(action).await,
        Command::Debug { action } => debug::run(action).await,
        Command::Incident { action } => incident::run(action).await,
    };
    done.map(|()| 0)
}
