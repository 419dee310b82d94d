//! Keymaps: TOML files mapping keys to actions per context (`[global]`, one table per pane,
//! `[input]` for the command/search line, `[help]`). The built-in ones are compiled in; a
//! file with an unknown key, action or context, or a key bound twice, is refused with its
//! line number, so the console never starts half-configured.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use color_eyre::eyre::{eyre, Result};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use toml::Spanned;

use super::action::{self, Action, PaneKind};
use crate::format::line_of;

pub const BUILTIN: &[(&str, &str)] = &[
    ("default", include_str!("../../keymaps/default.toml")),
    ("vim", include_str!("../../keymaps/vim.toml")),
];

/// A key as the keymap knows it: shift is folded into the character for printable keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

// Ordered by how the key is written, for stable help listings.
impl Ord for Key {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.to_string(), self.mods.bits()).cmp(&(other.to_string(), other.mods.bits()))
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Key {
    pub fn from_event(ev: &KeyEvent) -> Key {
        let mut mods =
            ev.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SHIFT);
        if matches!(ev.code, KeyCode::Char(_) | KeyCode::BackTab) {
            mods.remove(KeyModifiers::SHIFT);
        }
        // Terminals send ctrl-letters as lowercase; uppercase with ctrl is the same key.
        let code = match ev.code {
            KeyCode::Char(c) if mods.contains(KeyModifiers::CONTROL) => {
                KeyCode::Char(c.to_ascii_lowercase())
            }
            c => c,
        };
        Key { code, mods }
    }

    pub fn parse(text: &str) -> Option<Key> {
        let mut mods = KeyModifiers::NONE;
        let mut rest = text;
        loop {
            let lower = rest.to_ascii_lowercase();
            let (m, len) = if lower.starts_with("ctrl-") {
                (KeyModifiers::CONTROL, 5)
            } else if lower.starts_with("alt-") {
                (KeyModifiers::ALT, 4)
            } else if lower.starts_with("shift-") {
                (KeyModifiers::SHIFT, 6)
            } else {
                break;
            };
            if rest.len() == len {
                return None;
            }
            mods |= m;
            rest = &rest[len..];
        }
        let mut chars = rest.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) => {
                if mods.contains(KeyModifiers::SHIFT) {
                    mods.remove(KeyModifiers::SHIFT);
                    KeyCode::Char(c.to_ascii_uppercase())
                } else if mods.contains(KeyModifiers::CONTROL) {
                    KeyCode::Char(c.to_ascii_lowercase())
                } else {
                    KeyCode::Char(c)
                }
            }
            _ => match rest.to_ascii_lowercase().as_str() {
                "space" => KeyCode::Char(' '),
                "tab" if mods.contains(KeyModifiers::SHIFT) => {
                    mods.remove(KeyModifiers::SHIFT);
                    KeyCode::BackTab
                }
                "tab" => KeyCode::Tab,
                "backtab" => KeyCode::BackTab,
                "enter" | "return" => KeyCode::Enter,
                "esc" | "escape" => KeyCode::Esc,
                "backspace" => KeyCode::Backspace,
                "delete" | "del" => KeyCode::Delete,
                "insert" => KeyCode::Insert,
                "home" => KeyCode::Home,
                "end" => KeyCode::End,
                "pageup" | "pgup" => KeyCode::PageUp,
                "pagedown" | "pgdn" => KeyCode::PageDown,
                "up" => KeyCode::Up,
                "down" => KeyCode::Down,
                "left" => KeyCode::Left,
                "right" => KeyCode::Right,
                f if f.len() >= 2 && f.starts_with('f') => {
                    let n: u8 = f[1..].parse().ok().filter(|n| (1..=12).contains(n))?;
                    KeyCode::F(n)
                }
                _ => return None,
            },
        };
        Some(Key { code, mods })
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mods.contains(KeyModifiers::CONTROL) {
            f.write_str("ctrl-")?;
        }
        if self.mods.contains(KeyModifiers::ALT) {
            f.write_str("alt-")?;
        }
        if self.mods.contains(KeyModifiers::SHIFT) {
            f.write_str("shift-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::Tab => f.write_str("tab"),
            KeyCode::BackTab => f.write_str("shift-tab"),
            KeyCode::Enter => f.write_str("enter"),
            KeyCode::Esc => f.write_str("esc"),
            KeyCode::Backspace => f.write_str("backspace"),
            KeyCode::Delete => f.write_str("delete"),
            KeyCode::Insert => f.write_str("insert"),
            KeyCode::Home => f.write_str("home"),
            KeyCode::End => f.write_str("end"),
            KeyCode::PageUp => f.write_str("pgup"),
            KeyCode::PageDown => f.write_str("pgdn"),
            KeyCode::Up => f.write_str("up"),
            KeyCode::Down => f.write_str("down"),
            KeyCode::Left => f.write_str("left"),
            KeyCode::Right => f.write_str("right"),
            KeyCode::F(n) => write!(f, "f{n}"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// The key an operator command's `key = "L"` is pressed as (shift folded into the
/// character, as [`Key::from_event`] does).
fn command_key(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        mods: KeyModifiers::NONE,
    }
}

/// One context's bindings, in a stable order.
pub type Bindings = Vec<(Key, Action)>;

#[derive(Debug, Clone)]
pub struct Keymap {
    pub name: String,
    contexts: BTreeMap<String, Bindings>,
}

pub const MODAL_CONTEXTS: &[&str] = &["input", "help", "dialog"];

fn known_context(name: &str) -> bool {
    name == "global" || MODAL_CONTEXTS.contains(&name) || PaneKind::by_name(name).is_some()
}

type RawFile = BTreeMap<Spanned<String>, BTreeMap<Spanned<String>, Spanned<String>>>;

impl Keymap {
    /// `--keymap NAME|PATH`: a built-in name, or a path to a TOML file.
    pub fn load(choice: &str) -> Result<Keymap> {
        if let Some((name, text)) = BUILTIN.iter().find(|(n, _)| *n == choice) {
            return Keymap::parse(name, &format!("built-in keymap {name}"), text);
        }
        let looks_like_path = choice.contains('/') || choice.ends_with(".toml");
        if !looks_like_path {
            let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
            return Err(eyre!(
                "unknown keymap {choice:?}: the built-in keymaps are {}; or pass a path to a .toml file",
                names.join(", ")
            ));
        }
        let path = Path::new(choice);
        let text = std::fs::read_to_string(path)
            .map_err(|e| eyre!("cannot read keymap {}: {e}", path.display()))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| choice.to_string());
        Keymap::parse(&name, &path.display().to_string(), &text)
    }

    /// Parses and checks a keymap file; `origin` names it in errors (`FILE:LINE: reason`).
    pub fn parse(name: &str, origin: &str, text: &str) -> Result<Keymap> {
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(1);
            eyre!("keymap {origin}:{line}: {}", e.message().trim_end())
        })?;
        let mut errors = Vec::new();
        let mut contexts: BTreeMap<String, Bindings> = BTreeMap::new();
        // Where each (context, key) was bound, to name both lines of a conflict.
        let mut seen: BTreeMap<(String, Key), (usize, &'static str)> = BTreeMap::new();
        let specs = &action::SPECS;
        for (ctx, table) in &raw {
            let ctx_line = line_of(text, ctx.span().start);
            if !known_context(ctx.get_ref()) {
                let mut known: Vec<&str> = vec!["global"];
                known.extend(PaneKind::ALL.iter().map(|p| p.name()));
                known.extend(MODAL_CONTEXTS);
                errors.push(format!(
                    "{origin}:{ctx_line}: unknown context [{}]; known contexts: {}",
                    ctx.get_ref(),
                    known.join(", ")
                ));
                continue;
            }
            let bindings = contexts.entry(ctx.get_ref().clone()).or_default();
            for (key_text, action_name) in table {
                let line = line_of(text, key_text.span().start);
                let Some(key) = Key::parse(key_text.get_ref()) else {
                    errors.push(format!(
                        "{origin}:{line}: unknown key {:?} in [{}] (keys look like \"q\", \"G\", \"ctrl-c\", \"tab\", \"pgdn\", \"f1\")",
                        key_text.get_ref(),
                        ctx.get_ref()
                    ));
                    continue;
                };
                let Some(spec) = specs.iter().find(|s| s.name == action_name.get_ref()) else {
                    errors.push(format!(
                        "{origin}:{line}: unknown action {:?} for key {:?}; known actions: {}",
                        action_name.get_ref(),
                        key_text.get_ref(),
                        specs.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
                    ));
                    continue;
                };
                if !spec.scope.allows(ctx.get_ref()) {
                    errors.push(format!(
                        "{origin}:{line}: action {:?} cannot be bound in [{}]",
                        spec.name,
                        ctx.get_ref()
                    ));
                    continue;
                }
                if let Some((prev_line, prev_action)) = seen.get(&(ctx.get_ref().clone(), key)) {
                    errors.push(format!(
                        "{origin}:{line}: key {key} in [{}] is already bound to {prev_action} at line {prev_line}",
                        ctx.get_ref()
                    ));
                    continue;
                }
                seen.insert((ctx.get_ref().clone(), key), (line, spec.name));
                bindings.push((key, spec.action));
            }
        }
        // A pane cannot shadow a global key: the same key must not do different things
        // depending on the pane the eye happens to be on.
        for ((ctx, key), (line, name)) in &seen {
            if ctx == "global" || MODAL_CONTEXTS.contains(&ctx.as_str()) {
                continue;
            }
            if let Some((gline, gname)) = seen.get(&("global".to_string(), *key)) {
                errors.push(format!(
                    "{origin}:{line}: key {key} is bound to {name} in [{ctx}] but to {gname} in [global] at line {gline}; a pane cannot shadow a global key"
                ));
            }
        }
        for (ctx, needed) in [
            ("global", Action::Quit),
            ("global", Action::Help),
            ("input", Action::Submit),
            ("input", Action::Cancel),
            ("dialog", Action::Cancel),
        ] {
            let bound = contexts
                .get(ctx)
                .is_some_and(|b| b.iter().any(|(_, a)| *a == needed));
            if !bound {
                let name = action::spec_of(needed).map(|s| s.name).unwrap_or("?");
                errors.push(format!(
                    "{origin}: no key is bound to {name} in [{ctx}]; every keymap needs one"
                ));
            }
        }
        if !errors.is_empty() {
            errors.sort_by_key(|e| {
                e.split(':')
                    .nth(1)
                    .and_then(|l| l.parse::<usize>().ok())
                    .unwrap_or(0)
            });
            return Err(eyre!("keymap {}", errors.join("\nkeymap ")));
        }
        for b in contexts.values_mut() {
            b.sort_by_key(|(k, a)| (*a, *k));
        }
        Ok(Keymap {
            name: name.to_string(),
            contexts,
        })
    }

    /// The action for `key` in `context`, falling back to `[global]` (modal `[input]` does not
    /// fall back: its unbound keys are typed text).
    pub fn resolve(&self, context: &str, key: Key) -> Option<Action> {
        let find = |ctx: &str| {
            self.contexts
                .get(ctx)
                .and_then(|b| b.iter().find(|(k, _)| *k == key).map(|(_, a)| *a))
        };
        find(context).or_else(|| (context != "input").then(|| find("global")).flatten())
    }

    pub fn bindings(&self, context: &str) -> &[(Key, Action)] {
        self.contexts.get(context).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Refuses operator commands (`config::commands`) whose `key` this keymap already binds
    /// on the Overview (in `[overview]` or `[global]`), where command keys act: one line per
    /// command, naming the key, the action that has it, and what to do.
    pub fn check_command_keys(
        &self,
        commands: &[(String, crate::config::commands::Command)],
    ) -> std::result::Result<(), String> {
        let clashes: Vec<String> = commands
            .iter()
            .filter_map(|(name, command)| {
                let key = command_key(command.key?);
                let action = self.resolve("overview", key)?;
                let scope = if self.bindings("overview").iter().any(|(k, _)| *k == key) {
                    "overview"
                } else {
                    "global"
                };
                Some(format!(
                    "operator command {name:?} has key = \"{key}\", which keymap {} binds to {} in [{scope}]: pick another key for {name} in config.toml (one the keymap leaves free on the Overview), or remove its key and run it with :cmd {name}",
                    self.name,
                    action::spec_of(action).map_or("?", |s| s.name),
                ))
            })
            .collect();
        if clashes.is_empty() {
            Ok(())
        } else {
            Err(clashes.join("\n"))
        }
    }

    /// The operator command of `commands` bound to `key` (a plain character), if any.
    pub fn command_for(
        key: Key,
        commands: &[(String, crate::config::commands::Command)],
    ) -> Option<&str> {
        commands
            .iter()
            .find(|(_, c)| c.key.map(command_key) == Some(key))
            .map(|(n, _)| n.as_str())
    }

    /// The shortest key bound to `action` in `context` or `[global]`, for hints.
    pub fn key_for(&self, context: &str, action: Action) -> Option<Key> {
        [context, "global"].iter().find_map(|ctx| {
            self.bindings(ctx)
                .iter()
                .filter(|(_, a)| *a == action)
                .map(|(k, _)| *k)
                .min_by_key(|k| k.to_string().len())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Keymap::parse("t", "t.toml", text).unwrap_err().to_string()
    }

    const MINIMAL: &str =
        "[global]\nq = \"quit\"\n\"?\" = \"help\"\n[input]\nenter = \"submit\"\nesc = \"cancel\"\n[dialog]\nesc = \"cancel\"\n";

    #[test]
    fn every_builtin_keymap_loads() {
        for (name, _) in BUILTIN {
            let k = Keymap::load(name).unwrap();
            assert!(k.key_for("overview", Action::Quit).is_some(), "{name}");
        }
    }

    #[test]
    fn keys_parse_and_print() {
        for (text, shown) in [
            ("q", "q"),
            ("Q", "Q"),
            ("shift-q", "Q"),
            ("ctrl-C", "ctrl-c"),
            ("space", "space"),
            ("shift-tab", "shift-tab"),
            ("pgdn", "pgdn"),
            ("f5", "f5"),
            ("-", "-"),
        ] {
            assert_eq!(Key::parse(text).unwrap().to_string(), shown, "{text}");
        }
        for bad in ["ctrl-", "f13", "hyper-x", "enterr"] {
            assert!(Key::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn bad_files_name_the_line_and_the_reason() {
        let e = err(&format!("{MINIMAL}[logs]\n\"/\" = \"serch\"\n"));
        assert!(e.contains("t.toml:10: unknown action \"serch\""), "{e}");

        let e = err(&format!("{MINIMAL}[logs]\n\"ctrl-xyz\" = \"search\"\n"));
        assert!(e.contains("t.toml:10: unknown key \"ctrl-xyz\""), "{e}");

        let e = err(&format!("{MINIMAL}[logz]\n\"/\" = \"search\"\n"));
        assert!(e.contains("t.toml:9: unknown context [logz]"), "{e}");

        let e = err(&format!("{MINIMAL}[overview]\n\"/\" = \"search\"\n"));
        assert!(
            e.contains("t.toml:10: action \"search\" cannot be bound in [overview]"),
            "{e}"
        );

        // The same key twice, spelled differently.
        let e = err(&format!(
            "{MINIMAL}[logs]\nN = \"search_prev\"\n\"shift-n\" = \"search_next\"\n"
        ));
        assert!(e.contains("is already bound to"), "{e}");
        assert!(e.contains("t.toml:11") || e.contains("t.toml:10"), "{e}");

        // A pane shadowing a global key.
        let e = err(&format!("{MINIMAL}[logs]\nq = \"search\"\n"));
        assert!(
            e.contains(
                "t.toml:10: key q is bound to search in [logs] but to quit in [global] at line 2"
            ),
            "{e}"
        );

        let e = err("[global]\nq = \"quit\"\n[input]\nenter = \"submit\"\nesc = \"cancel\"\n");
        assert!(e.contains("no key is bound to help in [global]"), "{e}");

        let e = err("[global]\nq = quit\n");
        assert!(e.contains("t.toml:2:"), "{e}");

        let e = Keymap::load("emacs").unwrap_err().to_string();
        assert!(e.contains("built-in keymaps are default, vim"), "{e}");
    }

    #[test]
    fn resolves_pane_then_global_and_input_does_not_fall_back() {
        let k =
            Keymap::parse("t", "t", &format!("{MINIMAL}[logs]\nn = \"search_next\"\n")).unwrap();
        let key = |s| Key::parse(s).unwrap();
        assert_eq!(k.resolve("logs", key("n")), Some(Action::SearchNext));
        assert_eq!(k.resolve("logs", key("q")), Some(Action::Quit));
        assert_eq!(k.resolve("overview", key("n")), None);
        assert_eq!(k.resolve("input", key("q")), None);
        assert_eq!(k.resolve("input", key("enter")), Some(Action::Submit));
    }

    mod props {
        use super::*;
        use crate::test_text::{any_text, mutated};
        use proptest::prelude::*;

        const ORIGIN: &str = "my-keys.toml";

        fn check(text: &str) -> Result<(), TestCaseError> {
            if let Err(e) = Keymap::parse("t", ORIGIN, text) {
                let e = e.to_string();
                prop_assert!(e.starts_with(&format!("keymap {ORIGIN}")), "{e}");
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
            fn edited_builtin_keymaps_parse_or_are_refused_naming_the_file(
                text in mutated(BUILTIN.iter().map(|(_, t)| *t).collect())
            ) {
                check(&text)?;
            }

            #[test]
            fn any_key_text_parses_or_not_without_panicking(text in any_text()) {
                if let Some(k) = Key::parse(&text) {
                    let _ = k.to_string();
                }
            }
        }
    }
}
