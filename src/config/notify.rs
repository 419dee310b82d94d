//! Where alerts are sent: `[[notify]]` tables of `config.toml` and the `--alertmanager URL`
//! / `--webhook URL` flags, both checked into the same [`Receiver`]. A bad URL is refused
//! naming the receiver and what to write instead.
//!
//! ```toml
//! [[notify]]
//! kind = "alertmanager"          # or "webhook"
//! url = "http://127.0.0.1:9093"  # Alertmanager: its base URL; webhook: the URL posted to
//! name = "am"                    # optional (default: KIND@HOST:PORT)
//! format = "json"                # webhook only: "json" (default) or "slack"
//! timeout = "5s"                 # per request, 100ms to 60s (default 5s)
//! ```

use std::fmt;
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

/// Per-request timeout unless the receiver sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const TIMEOUTS: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(100)..=Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Alertmanager's API v2: alerts (re-sent while firing) and silences.
    Alertmanager,
    /// Any URL taking a JSON POST per batch of changes.
    Webhook,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Alertmanager => "alertmanager",
            Kind::Webhook => "webhook",
        }
    }
}

/// The body a webhook gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `{"version", "source", "status", "alerts": [...]}` (Alertmanager's webhook shape).
    #[default]
    Json,
    /// A Slack-compatible incoming webhook: `{"text": "..."}`.
    Slack,
}

/// One `[[notify]]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    kind: Kind,
    url: String,
    name: Option<String>,
    format: Option<Format>,
    timeout: Option<String>,
}

/// A checked receiver.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(try_from = "Entry")]
pub struct Receiver {
    pub name: String,
    pub kind: Kind,
    /// Alertmanager: the base URL (ending in `/`); webhook: the URL posted to.
    pub url: Url,
    pub format: Format,
    pub timeout: Duration,
}

impl fmt::Display for Receiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} {})", self.name, self.kind.name(), self.url)
    }
}

impl TryFrom<Entry> for Receiver {
    type Error = String;

    fn try_from(e: Entry) -> Result<Receiver, String> {
        let label = e.name.clone().unwrap_or_else(|| e.kind.name().to_string());
        let mut r = Receiver::new(e.kind, &e.url, e.name.as_deref(), &label)?;
        if let Some(format) = e.format {
            if e.kind == Kind::Alertmanager {
                return Err(format!(
                    "receiver {label}: format is for webhooks; Alertmanager takes its own \
                     (remove the line)"
                ));
            }
            r.format = format;
        }
        if let Some(text) = e.timeout {
            r.timeout = match humantime::parse_duration(&text) {
                Ok(d) if TIMEOUTS.contains(&d) => d,
                Ok(_) => {
                    return Err(format!(
                        "receiver {label}: timeout {text:?} is out of range: use 100ms to 60s"
                    ))
                }
                Err(err) => {
                    return Err(format!(
                        "receiver {label}: timeout {text:?}: {err} (e.g. \"5s\")"
                    ))
                }
            };
        }
        Ok(r)
    }
}

impl Receiver {
    /// A receiver of `kind` at `url`; `label` names it in errors (the name, or the flag).
    fn new(kind: Kind, url: &str, name: Option<&str>, label: &str) -> Result<Receiver, String> {
        let bad = |why: &str| {
            let example = match kind {
                Kind::Alertmanager => "http://HOST:9093",
                Kind::Webhook => "https://HOST/PATH",
            };
            format!("receiver {label}: url {url:?} {why}: write it as {example}")
        };
        let mut parsed = Url::parse(url).map_err(|e| bad(&format!("is not a URL ({e})")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad(&format!(
                "has scheme {:?}, not http or https",
                parsed.scheme()
            )));
        }
        let Some(host) = parsed.host_str().map(str::to_string) else {
            return Err(bad("names no host"));
        };
        if kind == Kind::Alertmanager {
            if parsed.path().contains("/api/") {
                return Err(bad(
                    "holds an API path; give Alertmanager's base URL (opsdeck adds /api/v2/...)",
                ));
            }
            if !parsed.path().ends_with('/') {
                let path = format!("{}/", parsed.path());
                parsed.set_path(&path);
            }
        }
        if name.is_some_and(|n| n.trim().is_empty()) {
            return Err(format!(
                "receiver at {url}: name is empty (remove it or name it)"
            ));
        }
        let name = match name {
            Some(n) => n.to_string(),
            None => match parsed.port() {
                Some(port) => format!("{}@{host}:{port}", kind.name()),
                None => format!("{}@{host}", kind.name()),
            },
        };
        Ok(Receiver {
            name,
            kind,
            url: parsed,
            format: Format::Json,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Where alerts are posted.
    pub fn alerts_url(&self) -> Url {
        match self.kind {
            Kind::Alertmanager => self.api("alerts"),
            Kind::Webhook => self.url.clone(),
        }
    }

    /// Alertmanager's `/api/v2/THING`.
    pub fn api(&self, thing: &str) -> Url {
        // The base ends in `/` (checked in `new`), so this join cannot fail.
        self.url
            .join(&format!("api/v2/{thing}"))
            .unwrap_or_else(|_| self.url.clone())
    }
}

/// clap's parser of `--alertmanager URL`.
pub fn alertmanager_flag(url: &str) -> Result<Receiver, String> {
    Receiver::new(Kind::Alertmanager, url, None, "--alertmanager")
}

/// clap's parser of `--webhook URL`.
pub fn webhook_flag(url: &str) -> Result<Receiver, String> {
    Receiver::new(Kind::Webhook, url, None, "--webhook")
}

/// The receivers of the config file and of the flags together; two with one name are
/// refused (their lines in the Alerts pane could not be told apart).
pub fn merge(file: &[Receiver], flags: &[Receiver]) -> Result<Vec<Receiver>, String> {
    let all: Vec<Receiver> = file.iter().chain(flags).cloned().collect();
    for (i, r) in all.iter().enumerate() {
        if all[..i].iter().any(|o| o.name == r.name) {
            return Err(format!(
                "receiver {}: two receivers have this name; give one another `name`",
                r.name
            ));
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        notify: Vec<Receiver>,
    }

    fn parse(text: &str) -> Result<Vec<Receiver>, String> {
        toml::from_str::<File>(text)
            .map(|f| f.notify)
            .map_err(|e| e.message().to_string())
    }

    #[test]
    fn tables_and_flags_become_receivers() {
        let r = parse(
            "[[notify]]\nkind = \"alertmanager\"\nurl = \"http://127.0.0.1:9093\"\n\
             [[notify]]\nkind = \"webhook\"\nurl = \"https://hooks.example/T/x\"\n\
             name = \"slack\"\nformat = \"slack\"\ntimeout = \"2s\"\n",
        )
        .unwrap();
        assert_eq!(r[0].name, "alertmanager@127.0.0.1:9093");
        assert_eq!(
            r[0].alerts_url().as_str(),
            "http://127.0.0.1:9093/api/v2/alerts"
        );
        assert_eq!(r[0].timeout, DEFAULT_TIMEOUT);
        assert_eq!(
            (r[1].name.as_str(), r[1].format, r[1].timeout),
            ("slack", Format::Slack, Duration::from_secs(2))
        );
        assert_eq!(r[1].alerts_url().as_str(), "https://hooks.example/T/x");
        let am = alertmanager_flag("http://am.internal:9093/prefix").unwrap();
        assert_eq!(
            am.api("silences").as_str(),
            "http://am.internal:9093/prefix/api/v2/silences"
        );
        assert_eq!(webhook_flag("http://h/x").unwrap().name, "webhook@h");
    }

    #[test]
    fn bad_receivers_are_refused_naming_them() {
        let cases = [
            (
                "kind = \"webhook\"\nurl = \"hooks.example/x\"\nname = \"ops\"",
                "receiver ops: url \"hooks.example/x\" is not a URL",
            ),
            (
                "kind = \"alertmanager\"\nurl = \"ftp://am:9093\"",
                "receiver alertmanager: url \"ftp://am:9093\" has scheme \"ftp\"",
            ),
            (
                "kind = \"alertmanager\"\nurl = \"http://am:9093/api/v2/alerts\"",
                "holds an API path",
            ),
            (
                "kind = \"alertmanager\"\nurl = \"http://am:9093\"\nformat = \"slack\"",
                "format is for webhooks",
            ),
            (
                "kind = \"webhook\"\nurl = \"http://h/\"\ntimeout = \"2m\"",
                "receiver webhook: timeout \"2m\" is out of range",
            ),
            (
                "kind = \"pager\"\nurl = \"http://h/\"",
                "unknown variant `pager`",
            ),
            (
                "kind = \"webhook\"\nurl = \"http://h/\"\nretries = 3",
                "unknown field `retries`",
            ),
        ];
        for (table, want) in cases {
            let e = parse(&format!("[[notify]]\n{table}\n")).unwrap_err();
            assert!(e.contains(want), "{table}: {e}");
        }
        let e = alertmanager_flag("localhost:9093").unwrap_err();
        assert!(
            e.starts_with("receiver --alertmanager: url \"localhost:9093\""),
            "{e}"
        );
        assert!(e.ends_with("write it as http://HOST:9093"), "{e}");
        let a = webhook_flag("http://h/x").unwrap();
        let e = merge(std::slice::from_ref(&a), std::slice::from_ref(&a)).unwrap_err();
        assert!(e.contains("receiver webhook@h: two receivers"), "{e}");
    }
}
