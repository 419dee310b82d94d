//! `~/.config/opsdeck/config.toml` (XDG config dir): defaults for the console. Flags win over
//! the file. A bad file is refused with its line and reason.

use std::path::{Path, PathBuf};

use color_eyre::eyre::{eyre, Result};
use serde::Deserialize;
use toml::Spanned;

use crate::format::line_of;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// gRPC addresses of cluster nodes.
    pub endpoints: Option<Vec<String>>,
    /// File holding the API key.
    pub key_file: Option<PathBuf>,
    /// Built-in keymap name or path.
    pub keymap: Option<String>,
    /// Built-in theme name or path.
    pub theme: Option<String>,
    /// How often each node sends a status frame, in milliseconds (100-60000).
    pub refresh_ms: Option<Spanned<u64>>,
    pub read_only: Option<bool>,
    /// Alert rules file (default: the built-in rules).
    pub rules: Option<PathBuf>,
    /// Seconds each pane shows in --war-room (2-3600).
    pub war_room_cycle_secs: Option<Spanned<u64>>,
    /// `[[notify]]` tables: where alerts are sent (`crate::alerts::notify::config`).
    #[serde(default)]
    pub notify: Vec<crate::alerts::notify::Receiver>,
}

pub fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "opsdeck").map(|d| d.config_dir().join("config.toml"))
}

impl Config {
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
        Ok(config)
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
