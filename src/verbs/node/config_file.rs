//! `opsdeck node --config node.toml`: every node flag may also come from a TOML file (each
//! key the flag's long name in snake_case) and from an `OPSDECK_NODE_*` variable. Flags win
//! over variables, variables over the file.
//!
//! The file's keys become flags added to the command line before clap parses it, unless
//! the flag is already there or its variable is set. So every value goes through the one
//! parser its flag has, and nothing in the file can mean something a flag cannot; a value
//! clap refuses is reported as `FILE:LINE: key: reason`.
//!
//! The variables are `OPSDECK_NODE_*` rather than `OPSDECK_*` because the client verbs
//! already read `OPSDECK_TLS_CA` and `OPSDECK_ENDPOINTS` with another meaning.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgAction, CommandFactory, Parser};
use toml::Spanned;

use crate::cli::Cli;
use crate::format::line_of;

/// The file and the line each of its keys came from, to name them in errors.
struct Origin {
    file: PathBuf,
    lines: BTreeMap<String, usize>,
}

/// The command line with a node's `--config` file applied, parsed; clap's own error
/// (usage, help, version) or a `FILE:LINE:` one for a bad file.
pub fn parse(argv: Vec<OsString>) -> Result<Cli, clap::Error> {
    let (argv, origin) = match with_file(argv) {
        Ok(expanded) => expanded,
        Err(message) => {
            return Err(clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("{message}\n"),
            ))
        }
    };
    Cli::try_parse_from(argv).map_err(|e| match origin {
        Some(origin) => name_the_line(e, &origin),
        None => e,
    })
}

/// `argv` plus a flag for each key of the node's `--config` file that neither the command
/// line nor the environment sets. Unchanged when the command is not `node` or has no file.
fn with_file(argv: Vec<OsString>) -> Result<(Vec<OsString>, Option<Origin>), String> {
    let command = Cli::command();
    let Ok(matches) = command
        .clone()
        .ignore_errors(true)
        .try_get_matches_from(argv.clone())
    else {
        return Ok((argv, None));
    };
    let Some(("node", node)) = matches.subcommand() else {
        return Ok((argv, None));
    };
    let Some(path) = node.get_one::<PathBuf>("config").cloned() else {
        return Ok((argv, None));
    };
    let Some(node_command) = command.find_subcommand("node") else {
        return Ok((argv, None));
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read the node config {}: {e}", path.display()))?;
    let origin = |line: usize| format!("{}:{line}", path.display());
    let table: BTreeMap<Spanned<String>, Spanned<toml::Value>> =
        toml::from_str(&text).map_err(|e| {
            let line = e.span().map(|s| line_of(&text, s.start)).unwrap_or(1);
            format!("{}: {}", origin(line), e.message().trim_end())
        })?;
    let known: Vec<&clap::Arg> = node_command
        .get_arguments()
        .filter(|a| a.get_long().is_some_and(|l| l != "config" && l != "help"))
        .collect();
    let mut argv = argv;
    let mut lines = BTreeMap::new();
    for (key, value) in table {
        let line = line_of(&text, key.span().start);
        let long = key.get_ref().replace('_', "-");
        let Some(arg) = known.iter().find(|a| a.get_long() == Some(long.as_str())) else {
            let names: Vec<String> = known
                .iter()
                .filter(|a| !a.is_hide_set())
                .filter_map(|a| a.get_long().map(|l| l.replace('-', "_")))
                .collect();
            return Err(format!(
                "{}: unknown key {:?}; a node config takes: {}",
                origin(line),
                key.get_ref(),
                names.join(", ")
            ));
        };
        // Flags and variables win over the file.
        if matches!(
            node.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let takes_value = !matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
        let value = match (value.get_ref(), takes_value) {
            (toml::Value::Boolean(true), false) => None,
            (toml::Value::Boolean(false), false) => continue,
            (_, false) => {
                return Err(format!(
                    "{}: {} is a switch: write {} = true or leave it out",
                    origin(line),
                    key.get_ref(),
                    key.get_ref()
                ))
            }
            (toml::Value::String(s), true) => Some(s.clone()),
            (toml::Value::Integer(i), true) => Some(i.to_string()),
            (toml::Value::Float(f), true) => Some(f.to_string()),
            (toml::Value::Boolean(b), true) => Some(b.to_string()),
            (_, true) => {
                return Err(format!(
                    "{}: {} must be a string or a number",
                    origin(line),
                    key.get_ref()
                ))
            }
        };
        argv.push(match value {
            // One word, so that a value starting with '-' stays a value.
            Some(v) => OsString::from(format!("--{long}={v}")),
            None => OsString::from(format!("--{long}")),
        });
        lines.insert(long, line);
    }
    Ok((argv, Some(Origin { file: path, lines })))
}

/// Clap's error about a flag the file supplied, as `FILE:LINE: key: reason`.
fn name_the_line(e: clap::Error, origin: &Origin) -> clap::Error {
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return e;
    };
    let long = arg
        .trim_start_matches("--")
        .split([' ', '='])
        .next()
        .unwrap_or_default();
    let Some(line) = origin.lines.get(long) else {
        return e;
    };
    // Clap's first line, without its "error: " and with the flag named as the key.
    let rendered = e.render().to_string();
    let reason = rendered
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ");
    clap::Error::raw(
        e.kind(),
        format!(
            "{}:{line}: {}: {reason}\n",
            origin.file.display(),
            long.replace('-', "_")
        ),
    )
}
