//! Operator commands: `[commands.NAME]` tables of `config.toml` (at the top level, and per
//! context in `[contexts.CTX.commands.NAME]`), checked into a [`Command`] when the file is
//! read. A bad table is refused with its line and what to write instead.
//!
//! ```toml
//! [contexts.prod.commands.restart]
//! run = "ssh {grpc_host} sudo systemctl restart opsdeck-node"   # or an array of arguments
//! key = "X"              # optional: the console key that runs it (on the Overview)
//! mutating = true        # default true: refused under --read-only, asks before it runs
//! timeout = "30s"        # default 30s, 100ms to 1h
//! description = "restart the node's service"
//! ```
//!
//! `run` is split into arguments like a shell would (quotes, backslashes) but is never run
//! by one unless it names one (`sh -c '...'`). Placeholders are filled per argument after the
//! split, so a value is always one argument; inside a shell's `-c` script they are filled
//! shell-quoted. `${...}` is left alone (a shell's parameter expansion).

use std::time::Duration;

use serde::Deserialize;

/// The placeholders a command may use.
pub const PLACEHOLDERS: &[&str] = &[
    "id",
    "grpc",
    "grpc_host",
    "http",
    "http_host",
    "data",
    "context",
];

/// Per-command timeout unless the table sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const TIMEOUTS: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(100)..=Duration::from_secs(3600);

/// Shells whose `-c SCRIPT` is a script: placeholders in it are filled shell-quoted.
const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox"];

/// `run` as written: one string (split like a shell would) or the arguments.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Run {
    Line(String),
    Args(Vec<String>),
}

/// One `[commands.NAME]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    run: Run,
    key: Option<String>,
    mutating: Option<bool>,
    timeout: Option<String>,
    description: Option<String>,
}

/// A checked operator command (its name is the key of the table).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Entry")]
pub struct Command {
    /// The arguments, placeholders not yet filled; never empty.
    pub argv: Vec<String>,
    /// The indexes in `argv` whose placeholders are filled shell-quoted: a shell's `-c`
    /// script, or every argument of `ssh` (which joins them into one remote shell line).
    pub quoted: Vec<usize>,
    /// The console key (one character).
    pub key: Option<char>,
    pub mutating: bool,
    pub timeout: Duration,
    pub description: Option<String>,
}

impl TryFrom<Entry> for Command {
    type Error = String;

    fn try_from(e: Entry) -> Result<Command, String> {
        let argv = match e.run {
            Run::Line(line) => shlex::split(&line).ok_or_else(|| {
                format!("run = {line:?} has an unclosed quote or a trailing backslash")
            })?,
            Run::Args(args) => args,
        };
        if argv.first().is_none_or(|a| a.trim().is_empty()) {
            return Err("run is empty: give the program and its arguments, e.g. \
                        run = \"ssh {grpc_host} journalctl -u opsdeck-node -n 200\""
                .into());
        }
        for arg in &argv {
            for name in placeholders(arg)? {
                if !PLACEHOLDERS.contains(&name) {
                    return Err(format!(
                        "run: unknown placeholder {{{name}}}: use one of {} (or ${{...}} for a shell variable)",
                        PLACEHOLDERS
                            .iter()
                            .map(|p| format!("{{{p}}}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
        }
        let key = match e.key {
            None => None,
            Some(k) => {
                let mut chars = k.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) if !c.is_whitespace() && !c.is_control() => Some(c),
                    _ => {
                        return Err(format!(
                            "key = {k:?}: give one printable character, e.g. key = \"L\""
                        ))
                    }
                }
            }
        };
        let timeout = match e.timeout {
            None => DEFAULT_TIMEOUT,
            Some(t) => {
                let d = humantime::parse_duration(&t)
                    .map_err(|why| format!("timeout = {t:?}: {why} (write e.g. \"30s\")"))?;
                if !TIMEOUTS.contains(&d) {
                    return Err(format!("timeout = {t:?} is out of range: use 100ms to 1h"));
                }
                d
            }
        };
        let quoted = quoted_args(&argv);
        Ok(Command {
            argv,
            quoted,
            key,
            mutating: e.mutating.unwrap_or(true),
            timeout,
            description: e.description,
        })
    }
}

impl Command {
    /// The command as written back, for lists and questions.
    pub fn display(&self) -> String {
        shlex::try_join(self.argv.iter().map(String::as_str))
            .unwrap_or_else(|_| self.argv.join(" "))
    }

    /// Whether any argument uses the placeholder `name`.
    pub fn uses(&self, name: &str) -> bool {
        self.argv
            .iter()
            .any(|a| placeholders(a).is_ok_and(|p| p.contains(&name)))
    }

    /// The arguments with the placeholders filled from `value` (None: no value; the error
    /// names the placeholder). Each argument stays one argument; in a shell's script the
    /// values are shell-quoted.
    pub fn fill(
        &self,
        value: impl Fn(&str) -> Result<String, String>,
    ) -> Result<Vec<String>, String> {
        self.argv
            .iter()
            .enumerate()
            .map(|(i, arg)| fill(arg, &value, self.quoted.contains(&i)))
            .collect()
    }
}

/// The arguments that some shell parses: the script of a shell's `-c`, or — `ssh` joins
/// everything after the destination with spaces into a line the remote shell parses — every
/// argument of `ssh` (a plain host name or number is the same quoted or not).
fn quoted_args(argv: &[String]) -> Vec<usize> {
    let program = argv.first().map(|p| p.rsplit('/').next().unwrap_or(p));
    if program == Some("ssh") {
        return (1..argv.len()).collect();
    }
    shell_script(argv).into_iter().collect()
}

/// The index of the script when `argv` is a shell with `-c` (`sh -c`, `bash -ec`, ...).
fn shell_script(argv: &[String]) -> Option<usize> {
    let program = argv.first()?;
    let base = program.rsplit('/').next().unwrap_or(program);
    if !SHELLS.contains(&base) {
        return None;
    }
    let flag = argv
        .iter()
        .skip(1)
        .position(|a| a.starts_with('-') && !a.starts_with("--") && a[1..].contains('c'))?;
    // Options may follow the -c flag (`bash -c -e '...'` is rare); the script is the first
    // argument after them.
    argv.iter()
        .enumerate()
        .skip(flag + 2)
        .find(|(_, a)| !a.starts_with('-'))
        .map(|(i, _)| i)
}

/// The placeholder names in `arg` (`{name}` not preceded by `$`).
fn placeholders(arg: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut rest = arg;
    while let Some(i) = rest.find('{') {
        let dollar = rest[..i].ends_with('$');
        let after = &rest[i + 1..];
        match after.find('}') {
            Some(j) if !dollar && is_name(&after[..j]) => {
                out.push(&after[..j]);
                rest = &after[j + 1..];
            }
            _ => rest = after,
        }
    }
    Ok(out)
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn fill(
    arg: &str,
    value: &impl Fn(&str) -> Result<String, String>,
    quoted: bool,
) -> Result<String, String> {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(i) = rest.find('{') {
        let before = &rest[..i];
        let dollar = before.ends_with('$');
        out.push_str(before);
        let after = &rest[i + 1..];
        match after.find('}') {
            Some(j) if !dollar && is_name(&after[..j]) => {
                let v = value(&after[..j])?;
                if quoted {
                    let q = shlex::try_quote(&v).map_err(|_| {
                        format!("the value of {{{}}} holds a NUL byte", &after[..j])
                    })?;
                    out.push_str(&q);
                } else {
                    out.push_str(&v);
                }
                rest = &after[j + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Command, String> {
        toml::from_str::<Command>(text).map_err(|e| e.message().to_string())
    }

    const NASTY: &str = "x; rm -rf / 'a' \"b\" $(id) `id`";

    fn value(name: &str) -> Result<String, String> {
        match name {
            "id" => Ok("2".into()),
            "grpc_host" => Ok(NASTY.into()),
            "data" => Err("no {data}".into()),
            other => Ok(format!("<{other}>")),
        }
    }

    #[test]
    fn a_line_is_split_and_each_value_stays_one_argument() {
        let c = parse("run = \"journalctl {grpc_host} 'sudo systemctl' restart n{id}\"").unwrap();
        assert!(c.mutating, "mutating is the default");
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert!(c.quoted.is_empty());
        let argv = c.fill(value).unwrap();
        assert_eq!(
            argv,
            vec!["journalctl", NASTY, "sudo systemctl", "restart", "n2"]
        );
        let c = parse("run = [\"echo\", \"{grpc_host}\"]\nmutating = false").unwrap();
        assert_eq!(c.fill(value).unwrap(), vec!["echo", NASTY]);
        assert!(!c.mutating);
    }

    #[test]
    fn in_a_shell_script_values_are_quoted() {
        let c = parse("run = \"bash -ec 'echo {grpc_host} ${HOME} {id}' arg0 {id}\"").unwrap();
        assert_eq!(c.quoted, vec![2]);
        let argv = c.fill(value).unwrap();
        assert_eq!(argv[0], "bash");
        assert_eq!(argv[4], "2", "a positional argument is filled as is");
        // The shell reads the script back to the value, one word.
        let words = shlex::split(&argv[2]).unwrap();
        assert_eq!(words, vec!["echo", NASTY, "${HOME}", "2"]);
        let out = std::process::Command::new("sh")
            .args(["-c", &argv[2].replace("echo", "printf %s\\\\n")])
            .env("HOME", "/h")
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(text.lines().collect::<Vec<_>>(), vec![NASTY, "/h", "2"]);
    }

    #[test]
    fn ssh_arguments_are_quoted_since_the_remote_shell_parses_them() {
        let c = parse("run = \"ssh {id} journalctl -u opsdeck-node --grep {grpc_host}\"").unwrap();
        let argv = c.fill(value).unwrap();
        assert_eq!(argv[1], "2", "a plain value is unchanged");
        // What the remote shell gets: the arguments joined with spaces, parsed again.
        let remote = argv[2..].join(" ");
        assert_eq!(
            shlex::split(&remote).unwrap(),
            vec!["journalctl", "-u", "opsdeck-node", "--grep", NASTY]
        );
    }

    #[test]
    fn a_missing_value_names_the_placeholder() {
        let c = parse("run = \"ls {data}\"").unwrap();
        assert!(c.uses("data") && !c.uses("id"));
        assert_eq!(c.fill(value).unwrap_err(), "no {data}");
    }

    #[test]
    fn bad_tables_are_refused_saying_what_to_write() {
        let e = parse("run = \"ssh {host}\"").unwrap_err();
        assert!(
            e.contains("unknown placeholder {host}: use one of {id}"),
            "{e}"
        );
        let e = parse("run = \"\"").unwrap_err();
        assert!(e.starts_with("run is empty"), "{e}");
        let e = parse("run = []").unwrap_err();
        assert!(e.starts_with("run is empty"), "{e}");
        let e = parse("run = \"echo 'open\"").unwrap_err();
        assert!(e.contains("unclosed quote"), "{e}");
        let e = parse("run = \"ls\"\nkey = \"RR\"").unwrap_err();
        assert!(e.contains("one printable character"), "{e}");
        let e = parse("run = \"ls\"\ntimeout = \"soon\"").unwrap_err();
        assert!(e.starts_with("timeout = \"soon\""), "{e}");
        let e = parse("run = \"ls\"\ntimeout = \"2h\"").unwrap_err();
        assert!(e.contains("out of range"), "{e}");
        let e = parse("run = \"ls\"\nshell = true").unwrap_err();
        assert!(e.contains("unknown field `shell`"), "{e}");
    }
}
