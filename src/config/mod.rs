//! `config.toml` (`$XDG_CONFIG_HOME/opsdeck/config.toml`, or `--config FILE` /
//! `$OPSDECK_CONFIG`): defaults for every verb and the console, and the named clusters
//! (`[contexts.NAME]`, `current_context`). Flags and the environment win over the file. A bad
//! file is refused with its line and reason.

pub mod commands;
pub mod edit;
pub mod notify;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use color_eyre::eyre::{eyre, Result};
use serde::Deserialize;
use toml::Spanned;

use crate::format::line_of;

/// The context that needs no config: the default dev cluster dir (its `cluster.toml` and
/// `admin.key`). A `[contexts.dev]` table replaces it.
pub const DEV_CONTEXT: &str = "dev";

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// gRPC addresses of cluster nodes (used when no context is chosen).
    pub endpoints: Option<Vec<String>>,
    /// File holding the API key.
    pub key_file: Option<PathBuf>,
    /// CA certificate (PEM) to trust for TLS.
    pub tls_ca: Option<PathBuf>,
    /// A dev cluster's directory (its `cluster.toml`), instead of endpoints.
    pub dev_dir: Option<PathBuf>,
    pub read_only: Option<bool>,
    /// The context every verb uses unless `--context` / `$OPSDECK_CONTEXT` names another.
    pub current_context: Option<Spanned<String>>,
    /// Named clusters: `[contexts.NAME]` with the same cluster keys as the top level.
    #[serde(default)]
    pub contexts: BTreeMap<String, Spanned<Cluster>>,
    /// Built-in keymap name or path.
    pub keymap: Option<String>,
    /// Built-in theme name or path.
    pub theme: Option<String>,
    /// How often each node sends a status frame, in milliseconds (100-60000).
    pub refresh_ms: Option<Spanned<u64>>,
    /// Alert rules file (default: the built-in rules).
    pub rules: Option<PathBuf>,
    /// Seconds each pane shows in --war-room (2-3600).
    pub war_room_cycle_secs: Option<Spanned<u64>>,
    /// `[[notify]]` tables: where alerts are sent (`notify.rs`).
    #[serde(default)]
    pub notify: Vec<notify::Receiver>,
    /// `[commands.NAME]`: operator commands of every context (`commands.rs`).
    #[serde(default)]
    pub commands: BTreeMap<String, Spanned<commands::Command>>,
    /// The node data dir for `{data}` when the cluster does not know it, `{id}` filled.
    pub data_dir: Option<String>,
}

/// Which cluster and how to reach it: a `[contexts.NAME]` table, or the top level's keys.
#[derive(Debug, Default, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    pub endpoints: Option<Vec<String>>,
    pub key_file: Option<PathBuf>,
    pub tls_ca: Option<PathBuf>,
    pub dev_dir: Option<PathBuf>,
    pub read_only: Option<bool>,
    /// `[contexts.NAME.commands.CMD]`: this context's operator commands (above the top
    /// level's of the same name).
    #[serde(default)]
    pub commands: BTreeMap<String, Spanned<commands::Command>>,
    /// Where a node keeps its data, for `{data}`: a template, `{id}` filled (e.g.
    /// "/var/lib/opsdeck/n{id}"). A dev cluster's cluster.toml knows it without this.
    pub data_dir: Option<String>,
}

/// A command table and its name, for the key check.
type NamedCommand<'a> = (&'a String, &'a Spanned<commands::Command>);

/// A context chosen by name, with what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub name: String,
    pub cluster: Cluster,
}

pub fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "opsdeck").map(|d| d.config_dir().join("config.toml"))
}

/// The config file to read: the one named (`--config` / `$OPSDECK_CONFIG`), else the default.
/// The bool says whether it was named (then it must exist).
pub fn path_of(named: Option<&Path>) -> Option<(PathBuf, bool)> {
    match named {
        Some(p) => Some((p.to_path_buf(), true)),
        None => default_path().map(|p| (p, false)),
    }
}

impl Config {
    /// The file `named`, else the default one (absent: an empty config).
    pub fn load_from(named: Option<&Path>) -> Result<Config> {
        match path_of(named) {
            Some((path, explicit)) => Config::load(&path, explicit),
            None => Ok(Config::default()),
        }
    }

    /// Loads `path`; a missing file is an empty config unless it was named explicitly.
    pub fn load(path: &Path, explicit: bool) -> Result<Config> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Config::default())
            }
            Err(e) => return Err(eyre!("cannot read the config file {}: {e}", path.display())),
        };
        Config::parse(&path.display().to_string(), &text)
    }

    pub fn parse(origin: &str, text: &str) -> Result<Config> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(1);
            eyre!(
                "config {origin}:{line}: {} (fix or remove the line)",
                e.message().trim_end()
            )
        })?;
        let check = |v: &Option<Spanned<u64>>, name: &str, min: u64, max: u64| -> Result<()> {
            match v {
                Some(s) if !(min..=max).contains(s.get_ref()) => Err(eyre!(
                    "config {origin}:{}: {name} = {} is out of range: use {min} to {max}",
                    line_of(text, s.span().start),
                    s.get_ref()
                )),
                _ => Ok(()),
            }
        };
        check(&config.refresh_ms, "refresh_ms", 100, 60_000)?;
        check(&config.war_room_cycle_secs, "war_room_cycle_secs", 2, 3600)?;
        let both = |c: &Cluster| c.endpoints.is_some() && c.dev_dir.is_some();
        if both(&config.top()) {
            return Err(eyre!(
                "config {origin}: give endpoints or dev_dir at the top level, not both"
            ));
        }
        for (name, c) in &config.contexts {
            if both(c.get_ref()) {
                return Err(eyre!(
                    "config {origin}:{}: context {name:?} gives endpoints and dev_dir: keep one",
                    line_of(text, c.span().start)
                ));
            }
        }
        // Two commands of one context on one key: say which, at the second one's line.
        let mut sets: Vec<(Option<&str>, Vec<NamedCommand>)> =
            vec![(None, config.commands.iter().collect())];
        for (name, c) in &config.contexts {
            let mut set: BTreeMap<&String, &Spanned<commands::Command>> =
                config.commands.iter().collect();
            set.extend(c.get_ref().commands.iter());
            sets.push((Some(name), set.into_iter().collect()));
        }
        for (context, set) in sets {
            let mut keys: BTreeMap<char, &str> = BTreeMap::new();
            for (cmd, c) in set {
                let Some(key) = c.get_ref().key else { continue };
                if let Some(other) = keys.insert(key, cmd) {
                    let within = context.map_or(String::new(), |n| format!(" in context {n:?}"));
                    return Err(eyre!(
                        "config {origin}:{}: command {cmd:?} has key {key:?}, which command {other:?} already has{within}: give one of them another key",
                        line_of(text, c.span().start)
                    ));
                }
            }
        }
        if let Some(current) = &config.current_context {
            if config.context(current.get_ref()).is_none() {
                return Err(eyre!(
                    "config {origin}:{}: current_context = {:?} is not a context: {}",
                    line_of(text, current.span().start),
                    current.get_ref(),
                    config.known()
                ));
            }
        }
        Ok(config)
    }

    /// The top level's cluster keys.
    pub fn top(&self) -> Cluster {
        Cluster {
            endpoints: self.endpoints.clone(),
            key_file: self.key_file.clone(),
            tls_ca: self.tls_ca.clone(),
            dev_dir: self.dev_dir.clone(),
            read_only: self.read_only,
            commands: self.commands.clone(),
            data_dir: self.data_dir.clone(),
        }
    }

    /// The operator commands of `context` (None: the top level's): the top level's and the
    /// context's, the context's winning on a name, sorted by name.
    pub fn commands_of(&self, context: Option<&Context>) -> Vec<(String, commands::Command)> {
        let mut all: BTreeMap<String, commands::Command> = self
            .commands
            .iter()
            .map(|(n, c)| (n.clone(), c.get_ref().clone()))
            .collect();
        if let Some(c) = context {
            for (n, cmd) in &c.cluster.commands {
                all.insert(n.clone(), cmd.get_ref().clone());
            }
        }
        all.into_iter().collect()
    }

    /// The operator commands of `context` (as [`Config::commands_of`]) and the `data_dir`
    /// template their `{data}` is filled from: the context's, else the top level's.
    pub fn commands_and_data_dir(
        &self,
        context: Option<&Context>,
    ) -> (Vec<(String, commands::Command)>, Option<String>) {
        let data_dir = context
            .and_then(|c| c.cluster.data_dir.clone())
            .or_else(|| self.data_dir.clone());
        (self.commands_of(context), data_dir)
    }

    /// [`Config::commands_and_data_dir`] of the context named `name` (a target's
    /// `context`; None or an unknown name: the top level's).
    pub fn commands_of_context(
        &self,
        name: Option<&str>,
    ) -> (Vec<(String, commands::Command)>, Option<String>) {
        let context = name.and_then(|n| self.context(n));
        self.commands_and_data_dir(context.as_ref())
    }

    /// Every context name, sorted, the built-in `dev` among them.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.contexts.keys().cloned().collect();
        if !self.contexts.contains_key(DEV_CONTEXT) {
            names.push(DEV_CONTEXT.into());
            names.sort();
        }
        names
    }

    /// "known contexts: a, b, dev" (for errors).
    pub fn known(&self) -> String {
        format!("known contexts: {}", self.names().join(", "))
    }

    /// The context called `name`: a table of the file, or the built-in `dev`.
    pub fn context(&self, name: &str) -> Option<Context> {
        let cluster = match self.contexts.get(name) {
            Some(c) => c.get_ref().clone(),
            None if name == DEV_CONTEXT => Cluster::default(),
            None => return None,
        };
        Some(Context {
            name: name.to_string(),
            cluster,
        })
    }

    /// The context in use: `chosen` (`--context` / `$OPSDECK_CONTEXT`) else
    /// `current_context`; None when neither names one (the top level's keys apply).
    pub fn select(&self, chosen: Option<&str>) -> Result<Option<Context>> {
        let name = match chosen {
            Some(n) => n,
            None => match &self.current_context {
                Some(c) => c.get_ref().as_str(),
                None => return Ok(None),
            },
        };
        self.context(name)
            .map(Some)
            .ok_or_else(|| eyre!("no context {name:?} in the config; {}", self.known()))
    }

    /// The current context's name, if the file sets one.
    pub fn current(&self) -> Option<&str> {
        self.current_context.as_ref().map(|c| c.get_ref().as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses_bad_files_with_lines() {
        let c = Config::parse(
            "c.toml",
            "endpoints = [\"a:1\"]\ntheme = \"light\"\nrefresh_ms = 500\nrules = \"r.toml\"\n",
        )
        .unwrap();
        assert_eq!(c.rules.as_deref(), Some(Path::new("r.toml")));
        assert_eq!(c.endpoints.unwrap(), vec!["a:1"]);
        assert_eq!(*c.refresh_ms.unwrap().get_ref(), 500);
        let e = Config::parse("c.toml", "theme = \"light\"\nrefresh_ms = 5\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("config c.toml:2: refresh_ms = 5 is out of range"),
            "{e}"
        );
        let e = Config::parse("c.toml", "theme = \"light\"\n\ncolour = \"red\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("config c.toml:3: unknown field `colour`"), "{e}");
        let e = Config::parse("c.toml", "read_only = \"yes\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("config c.toml:1:"), "{e}");
        let e = Config::parse(
            "c.toml",
            "theme = \"light\"\n\n[[notify]]\nkind = \"webhook\"\nurl = \"hooks/x\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("config c.toml:3: receiver webhook: url \"hooks/x\" is not a URL"),
            "{e}"
        );
        let c = Config::parse(
            "c.toml",
            "[[notify]]\nkind = \"alertmanager\"\nurl = \"http://am:9093\"\nname = \"am\"\n",
        )
        .unwrap();
        assert_eq!(c.notify[0].name, "am");
        let dir = tempfile::tempdir().unwrap();
        assert!(Config::load(&dir.path().join("none.toml"), false).is_ok());
        assert!(Config::load(&dir.path().join("none.toml"), true).is_err());
    }

    mod props {
        use super::*;
        use crate::test_text::{any_text, mutated};
        use proptest::prelude::*;

        const ORIGIN: &str = "my-config.toml";
        const SAMPLE: &str = "endpoints = [\"127.0.0.1:7101\", \"127.0.0.1:7102\"]\n\
            key_file = \"/home/me/admin.key\"\nkeymap = \"vim\"\ntheme = \"light\"\n\
            refresh_ms = 500\nread_only = true\nwar_room_cycle_secs = 15\nrules = \"r.toml\"\n";

        fn check(text: &str) -> Result<(), TestCaseError> {
            if let Err(e) = Config::parse(ORIGIN, text) {
                let e = e.to_string();
                prop_assert!(e.starts_with(&format!("config {ORIGIN}:")), "{e}");
            }
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn any_text_parses_or_is_refused_naming_the_file(text in any_text()) {
                check(&text)?;
            }

            #[test]
            fn an_edited_config_parses_or_is_refused_naming_the_file(
                text in mutated(vec![SAMPLE])
            ) {
                check(&text)?;
            }
        }
    }
}
