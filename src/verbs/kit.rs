//! The CLI's own kit: shell completions (clap_complete), the man page (clap_mangen) and
//! `info`, every path opsdeck uses on this machine and where the API key would come from.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use color_eyre::eyre::{Result, WrapErr};
use serde_json::json;

use crate::cli::Cli;
use crate::client::cluster_file::default_dev_dir;
use crate::config::{self, Config};

pub fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "opsdeck", &mut std::io::stdout());
    Ok(())
}

/// The top-level page on stdout, or with `dir` one page per verb (`opsdeck-put.1`, ...)
/// beside `opsdeck.1`.
pub fn man(dir: Option<&Path>) -> Result<()> {
    let cmd = Cli::command();
    match dir {
        None => clap_mangen::Man::new(cmd)
            .render(&mut std::io::stdout())
            .wrap_err("cannot write the man page"),
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .wrap_err_with(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(cmd, dir)
                .wrap_err_with(|| format!("cannot write the man pages into {}", dir.display()))?;
            println!(
                "man pages written to {} (man -M {} opsdeck)",
                dir.display(),
                dir.display()
            );
            Ok(())
        }
    }
}

/// One path and what is there.
fn state(path: &Path) -> &'static str {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => "directory",
        Ok(_) => "file",
        Err(_) => "absent",
    }
}

pub fn info(as_json: bool) -> Result<()> {
    let config_path = config::default_path();
    let config = match &config_path {
        Some(p) => Config::load(p, false)?,
        None => Config::default(),
    };
    let dev_dir = default_dev_dir();
    let dev_key = dev_dir.join("admin.key");
    let env_key = std::env::var("OPSDECK_API_KEY").is_ok_and(|k| !k.trim().is_empty());
    let key_source = match (&config.key_file, env_key) {
        (Some(f), _) => format!("the config's key_file {}", f.display()),
        (None, true) => "$OPSDECK_API_KEY".to_string(),
        (None, false) if dev_key.exists() => format!("the dev cluster's {}", dev_key.display()),
        (None, false) => "none found: pass --key-file or set OPSDECK_API_KEY".to_string(),
    };
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("opsdeck"));
    let rows: Vec<(&str, String, &str)> = vec![
        ("binary", exe.display().to_string(), state(&exe)),
        (
            "config file",
            config_path
                .as_ref()
                .map_or("no config dir on this system".into(), |p| {
                    p.display().to_string()
                }),
            config_path.as_deref().map_or("absent", state),
        ),
        (
            "dev cluster dir",
            dev_dir.display().to_string(),
            state(&dev_dir),
        ),
        (
            "dev cluster file",
            dev_dir.join("cluster.toml").display().to_string(),
            state(&dev_dir.join("cluster.toml")),
        ),
        ("API key from", key_source, ""),
        (
            "keymap",
            config
                .keymap
                .clone()
                .unwrap_or_else(|| "default (built in)".into()),
            "",
        ),
        (
            "theme",
            config
                .theme
                .clone()
                .unwrap_or_else(|| "dark (built in)".into()),
            "",
        ),
        (
            "alert rules",
            config
                .rules
                .as_ref()
                .map_or("built in (opsdeck alerts --print-rules)".into(), |p| {
                    p.display().to_string()
                }),
            "",
        ),
    ];
    if as_json {
        let map: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|(what, value, st)| {
                let key = what.to_lowercase().replace(" ", "_");
                let v = if st.is_empty() {
                    json!(value)
                } else {
                    json!({ "path": value, "state": st })
                };
                (key, v)
            })
            .collect();
        let version = env!("CARGO_PKG_VERSION");
        let mut all = serde_json::Map::new();
        all.insert("version".into(), json!(version));
        all.extend(map);
        return crate::verbs::print_json(&serde_json::Value::Object(all));
    }
    println!("opsdeck {}", env!("CARGO_PKG_VERSION"));
    for (what, value, st) in rows {
        if st.is_empty() {
            println!("{what:<17} {value}");
        } else {
            println!("{what:<17} {value} ({st})");
        }
    }
    Ok(())
}
