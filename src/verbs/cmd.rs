//! `opsdeck cmd list` and `opsdeck cmd run NAME --node ID`: the operator commands of the
//! config file (`config::commands`), run by `ops::commands`. `run` ends with the command's
//! own exit code (124: timed out, 128+N: signal N).

use std::io::{IsTerminal, Write};

use color_eyre::eyre::{eyre, Result};
use serde_json::json;

use crate::cli::{CmdAction, ConfigArgs};
use crate::client::{Class, Failure};
use crate::config::commands::Command;
use crate::config::Config;
use crate::format::table;
use crate::ops::commands as ops;

pub async fn run(action: CmdAction) -> Result<i32> {
    match action {
        CmdAction::List { config, output } => list(&config, output.json()).map(|()| 0),
        CmdAction::Run {
            name,
            node,
            read_only,
            yes,
            cluster,
        } => {
            let config = cluster.config.load()?;
            let target = cluster.target_in(&config)?;
            let (commands, data_dir) = of_context(&config, &cluster.config)?;
            let Some((_, command)) = commands.into_iter().find(|(n, _)| *n == name) else {
                return Err(eyre!(Failure::new(
                    Class::NotFound,
                    format!(
                        "no operator command {name:?} in {}: `opsdeck cmd list` shows them",
                        target.label()
                    )
                )));
            };
            if command.mutating && (read_only || target.read_only) {
                let why = if read_only {
                    "--read-only"
                } else {
                    "the context is read_only"
                };
                return Err(eyre!(Failure::new(
                    Class::Refused,
                    format!("{name} is a mutating command and {why}: nothing was run")
                )));
            }
            let client = target.connect()?;
            let vars = ops::vars_for(&client, &target, data_dir.as_deref(), node).await?;
            let argv = ops::argv(&command, &vars)?;
            if command.mutating && !yes {
                confirm(&name, node, &target.label(), &argv)?;
            }
            let outcome = ops::run(argv, command.timeout).await?;
            if cluster.json() {
                super::print_json(&json!({
                    "command": name,
                    "node": node,
                    "context": target.label(),
                    "exit_code": outcome.end.exit_code(),
                    "outcome": outcome,
                }))?;
            } else {
                let mut out = std::io::stdout().lock();
                out.write_all(outcome.output_text().as_bytes())?;
                out.flush()?;
                eprintln!("{}", outcome.summary(&name, node, command.timeout));
            }
            Ok(outcome.end.exit_code())
        }
    }
}

/// Commands by name.
type Named = Vec<(String, Command)>;

/// The commands of the context the flags (or the file) choose, and its `data_dir`.
fn of_context(config: &Config, args: &ConfigArgs) -> Result<(Named, Option<String>)> {
    let context = config.select(args.context.as_deref())?;
    Ok(config.commands_and_data_dir(context.as_ref()))
}

/// Asks for the command's name typed back (as `restore` asks for the key count).
fn confirm(name: &str, node: u64, context: &str, argv: &[String]) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(eyre!(Failure::new(
            Class::Refused,
            format!("{name} is a mutating command: pass --yes to run it without a terminal; nothing was run")
        )));
    }
    eprintln!("Run {name} on node {node} of {context}:");
    eprintln!(
        "  {}",
        shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_else(|_| argv.join(" "))
    );
    eprint!("Type {name} to confirm: ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if answer.trim() != name {
        return Err(eyre!("not confirmed; nothing was run"));
    }
    Ok(())
}

fn list(args: &ConfigArgs, as_json: bool) -> Result<()> {
    let config = args.load()?;
    let (commands, _) = of_context(&config, args)?;
    if as_json {
        let list: Vec<_> = commands
            .iter()
            .map(|(n, c)| {
                json!({
                    "name": n, "key": c.key.map(String::from), "mutating": c.mutating,
                    "timeout_ms": c.timeout.as_millis() as u64, "argv": c.argv,
                    "description": c.description,
                })
            })
            .collect();
        return super::print_json(&json!({ "commands": list }));
    }
    if commands.is_empty() {
        println!(
            "no operator commands: add a [commands.NAME] table (run = \"...\") to the config file"
        );
        return Ok(());
    }
    let rows: Vec<Vec<String>> = commands
        .iter()
        .map(|(n, c)| {
            vec![
                n.clone(),
                c.key.map(String::from).unwrap_or_default(),
                if c.mutating { "mutating" } else { "" }.into(),
                humantime::format_duration(c.timeout).to_string(),
                c.description.clone().unwrap_or_else(|| c.display()),
            ]
        })
        .collect();
    println!(
        "{}",
        table::render(&["NAME", "KEY", "", "TIMEOUT", "RUNS"], &rows)
    );
    Ok(())
}
