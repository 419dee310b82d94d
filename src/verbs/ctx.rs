//! `opsdeck ctx list | use NAME | show [NAME]`: the named clusters of `config.toml`.

use color_eyre::eyre::{eyre, Result};
use serde_json::json;

use super::print_json;
use crate::cli::{ConfigArgs, CtxAction};
use crate::client::Target;
use crate::config::{self, Config, Context};
use crate::format::table;

pub fn run(action: CtxAction) -> Result<()> {
    match action {
        CtxAction::List { config, output } => list(&config, output.json()),
        CtxAction::Use { name, config } => use_context(&config, &name),
        CtxAction::Show {
            name,
            config,
            output,
        } => show(&config, name.as_deref(), output.json()),
    }
}

/// The file `ctx` reads and writes, for messages.
fn file_of(args: &ConfigArgs) -> Result<std::path::PathBuf> {
    config::path_of(args.config.as_deref())
        .map(|(p, _)| p)
        .ok_or_else(|| eyre!("no config dir on this system: pass --config FILE"))
}

/// The name of the context in use (`--context` / `$OPSDECK_CONTEXT`, else current_context).
fn in_use(args: &ConfigArgs, config: &Config) -> Result<Option<String>> {
    Ok(config.select(args.context.as_deref())?.map(|c| c.name))
}

/// Where a context's nodes are, in words: its endpoints or its dev dir.
fn where_of(c: &Context) -> String {
    match (&c.cluster.endpoints, &c.cluster.dev_dir) {
        (Some(e), _) => e.join(","),
        (None, Some(d)) => format!("dev dir {}", d.display()),
        (None, None) => format!(
            "dev dir {}",
            crate::client::cluster_file::default_dev_dir().display()
        ),
    }
}

fn list(args: &ConfigArgs, as_json: bool) -> Result<()> {
    let config = args.load()?;
    let current = in_use(args, &config)?;
    let contexts: Vec<Context> = config
        .names()
        .iter()
        .filter_map(|n| config.context(n))
        .collect();
    if as_json {
        let rows: Vec<_> = contexts
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "current": current.as_deref() == Some(c.name.as_str()),
                    "endpoints": c.cluster.endpoints,
                    "dev_dir": c.cluster.dev_dir,
                    "key_file": c.cluster.key_file,
                    "tls_ca": c.cluster.tls_ca,
                    "read_only": c.cluster.read_only.unwrap_or(false),
                    "built_in": !config.contexts.contains_key(&c.name),
                })
            })
            .collect();
        return print_json(&json!({ "current": current, "contexts": rows }));
    }
    let rows: Vec<Vec<String>> = contexts
        .iter()
        .map(|c| {
            vec![
                if current.as_deref() == Some(c.name.as_str()) {
                    "*".into()
                } else {
                    String::new()
                },
                c.name.clone(),
                where_of(c),
                if c.cluster.read_only.unwrap_or(false) {
                    "read-only".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    println!(
        "{}",
        table::render(&["CURRENT", "NAME", "CLUSTER", "MODE"], &rows)
    );
    Ok(())
}

fn use_context(args: &ConfigArgs, name: &str) -> Result<()> {
    let path = file_of(args)?;
    config::edit::use_context(&path, name)?;
    println!("current context: {name} (in {})", path.display());
    Ok(())
}

fn show(args: &ConfigArgs, name: Option<&str>, as_json: bool) -> Result<()> {
    let config = args.load()?;
    let chosen = name.or(args.context.as_deref());
    let target = Target::default().with_config(&config, chosen)?;
    let label = target.label();
    let endpoints = target.endpoints().map_err(|e| format!("{e:#}"));
    let key = match (&target.key_file, &target.config_key_file) {
        (Some(p), _) | (None, Some(p)) => Some(p.clone()),
        (None, None) => None,
    };
    if as_json {
        return print_json(&json!({
            "name": target.context,
            "label": label,
            "endpoints": endpoints.as_ref().ok(),
            "endpoints_error": endpoints.as_ref().err(),
            "dev_dir": target.dev_dir(),
            "key_file": key,
            "tls_ca": target.tls_ca,
            "read_only": target.read_only,
        }));
    }
    let show_path = |p: &Option<std::path::PathBuf>, none: &str| {
        p.as_ref()
            .map_or(none.to_string(), |p| p.display().to_string())
    };
    let rows = vec![
        vec!["context".into(), label],
        vec![
            "endpoints".into(),
            match &endpoints {
                Ok(e) => e.join(","),
                Err(e) => format!("unknown: {e}"),
            },
        ],
        vec![
            "key file".into(),
            show_path(
                &key,
                "none ($OPSDECK_API_KEY, else the dev dir's admin.key)",
            ),
        ],
        vec![
            "tls ca".into(),
            show_path(&target.tls_ca, "none (plain gRPC)"),
        ],
        vec!["read only".into(), target.read_only.to_string()],
    ];
    for row in rows {
        println!("{:<10} {}", row[0], row[1]);
    }
    Ok(())
}
