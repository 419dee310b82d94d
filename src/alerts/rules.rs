//! The rules file: `[[rule]]` tables in TOML, checked whole before anything runs.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::expr::Condition;
use super::figures::Scope;

/// The built-in rules (from the runbooks), used when no rules file is given.
pub const DEFAULT_RULES: &str = include_str!("default_rules.toml");

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One rule: when `condition` has held for `hold` (the file's `for`), the alert fires.
#[derive(Clone, Debug)]
pub struct Rule {
    pub name: String,
    pub condition: Condition,
    pub hold: Duration,
    pub severity: Severity,
    /// Free text; `{subject}` and `{value}` are replaced when an alert is shown.
    pub summary: Option<String>,
    /// What to do first: the runbook step (free text, shown as is).
    pub runbook: Option<String>,
}

impl Rule {
    pub fn scope(&self) -> Scope {
        self.condition.scope()
    }
}

/// A checked rules file.
#[derive(Clone, Debug)]
pub struct Rules {
    rules: Vec<Rule>,
    origin: String,
    text: String,
}

/// Why a rules file was refused: `FILE:LINE: reason` (line 0: the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesError {
    pub file: String,
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.reason)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.reason)
        }
    }
}

impl std::error::Error for RulesError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Spanned<String>,
    expr: Spanned<String>,
    #[serde(rename = "for")]
    hold: Option<Spanned<toml::Value>>,
    severity: Spanned<String>,
    summary: Option<String>,
    runbook: Option<String>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn parse_hold(v: &toml::Value) -> Result<Duration, String> {
    match v {
        toml::Value::String(s) => humantime::parse_duration(s.trim()).map_err(|e| {
            format!("bad `for` duration {s:?}: {e} (use e.g. \"30s\", \"5m\", \"0s\")")
        }),
        toml::Value::Integer(0) => Ok(Duration::ZERO),
        other => Err(format!(
            "bad `for` {other}: write a duration string like \"5m\" (a bare 0 means at once)"
        )),
    }
}

impl Rules {
    /// Reads and checks a rules file.
    pub fn load(path: &Path) -> Result<Rules, RulesError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| RulesError {
            file: file.clone(),
            line: 0,
            reason: format!("cannot read the rules file: {e}"),
        })?;
        Rules::parse(&text, &file)
    }

    /// The built-in rules of [`DEFAULT_RULES`].
    pub fn defaults() -> Rules {
        // The embedded file is part of the binary and parsed by a unit test.
        Rules::parse(DEFAULT_RULES, "default_rules.toml (built in)")
            .unwrap_or_else(|e| panic!("built-in rules are broken: {e}"))
    }

    /// Checks rules text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Rules, RulesError> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let fail = |offset: usize, reason: String| RulesError {
            file: origin.to_string(),
            line: line_of(offset),
            reason,
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            fail(offset, e.message().trim().replace('\n', " "))
        })?;
        if raw.rule.is_empty() {
            return Err(RulesError {
                file: origin.to_string(),
                line: 1,
                reason: "no [[rule]] tables: an empty rules file would silence every alert; \
                         drop --rules to use the built-in rules"
                    .into(),
            });
        }
        let mut rules: Vec<(Rule, usize)> = Vec::new();
        for r in raw.rule {
            let name = r.name.get_ref().trim().to_string();
            if !valid_name(&name) {
                return Err(fail(
                    r.name.span().start,
                    format!("bad rule name {name:?}: use 1-64 letters, digits, '_' or '-'"),
                ));
            }
            if let Some((_, first)) = rules.iter().find(|(rule, _)| rule.name == name) {
                return Err(fail(
                    r.name.span().start,
                    format!("duplicate rule name {name:?} (first defined at line {first})"),
                ));
            }
            let condition = Condition::parse(r.expr.get_ref()).map_err(|reason| {
                fail(
                    r.expr.span().start,
                    format!("rule {name:?}: expr {:?}: {reason}", r.expr.get_ref()),
                )
            })?;
            let hold = match &r.hold {
                None => Duration::ZERO,
                Some(v) => parse_hold(v.get_ref())
                    .map_err(|reason| fail(v.span().start, format!("rule {name:?}: {reason}")))?,
            };
            let severity = match r.severity.get_ref().as_str() {
                "info" => Severity::Info,
                "warning" => Severity::Warning,
                "critical" => Severity::Critical,
                other => {
                    return Err(fail(
                        r.severity.span().start,
                        format!(
                            "rule {name:?}: unknown severity {other:?} (use info, warning or \
                             critical)"
                        ),
                    ))
                }
            };
            rules.push((
                Rule {
                    name,
                    condition,
                    hold,
                    severity,
                    summary: r.summary,
                    runbook: r
                        .runbook
                        .map(|t| t.trim().to_string())
                        .filter(|t| !t.is_empty()),
                },
                line_of(r.name.span().start),
            ));
        }
        Ok(Rules {
            rules: rules.into_iter().map(|(r, _)| r).collect(),
            origin: origin.to_string(),
            text: text.to_string(),
        })
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Where the rules came from (a path, or the built-in file).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The file's text as read.
    pub fn text(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> RulesError {
        Rules::parse(text, "r.toml").unwrap_err()
    }

    #[test]
    fn the_built_in_rules_parse_and_cover_the_runbooks() {
        let rules = Rules::defaults();
        let names: Vec<&str> = rules.rules().iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "node_down",
                "quorum_lost",
                "p99_latency_high",
                "error_rate_warning",
                "error_rate_critical",
                "disk_usage_high",
                "storage_near_capacity",
                "storage_full",
                "quota_usage_high",
                "term_churn",
                "follower_lag_high",
                "backup_stale",
                "backup_unverified",
                "replica_divergence",
            ]
        );
        let node_down = &rules.rules()[0];
        assert_eq!(node_down.hold, Duration::from_secs(60));
        assert_eq!(node_down.severity, Severity::Critical);
        assert_eq!(node_down.scope(), Scope::Node);
        assert_eq!(rules.rules()[2].hold, Duration::from_secs(300));
        for r in rules.rules() {
            assert!(r.summary.is_some(), "{} has no summary", r.name);
            assert!(
                r.runbook.as_ref().is_some_and(|t| t.len() > 20),
                "{} has no runbook step",
                r.name
            );
        }
    }

    #[test]
    fn a_good_file_parses() {
        let rules = Rules::parse(
            r#"
[[rule]]
name = "disk"
expr = "disk_used_pct > 80"
for = "1m 30s"
severity = "warning"
summary = "{subject} disk at {value}"

[[rule]]
name = "down"
expr = "node_up == 0"
for = 0
severity = "critical"
"#,
            "r.toml",
        )
        .unwrap();
        assert_eq!(rules.rules()[0].hold, Duration::from_secs(90));
        assert_eq!(rules.rules()[1].hold, Duration::ZERO);
        assert_eq!(rules.rules()[1].summary, None);
    }

    #[test]
    fn an_unknown_figure_names_file_and_line() {
        let e = err("[[rule]]\nname = \"a\"\nexpr = \"disk_used > 80\"\nseverity = \"info\"\n");
        assert_eq!((e.file.as_str(), e.line), ("r.toml", 3));
        assert!(
            e.reason
                .starts_with("rule \"a\": expr \"disk_used > 80\": unknown figure \"disk_used\""),
            "{e}"
        );
        assert!(e.to_string().starts_with("r.toml:3: rule \"a\""));
    }

    #[test]
    fn a_bad_operator_names_the_line() {
        let e = err("[[rule]]\nname = \"a\"\nseverity = \"info\"\n\nexpr = \"node_up =< 0\"\n");
        assert_eq!(e.line, 5);
        assert!(e.reason.contains("bad operator \"=<\""), "{e}");
    }

    #[test]
    fn a_bad_duration_names_the_line() {
        let e = err("[[rule]]\nname = \"a\"\nexpr = \"node_up == 0\"\nfor = \"5 minits\"\nseverity = \"info\"\n");
        assert_eq!(e.line, 4);
        assert!(
            e.reason
                .starts_with("rule \"a\": bad `for` duration \"5 minits\""),
            "{e}"
        );
        let e =
            err("[[rule]]\nname = \"a\"\nexpr = \"node_up == 0\"\nfor = 60\nseverity = \"info\"\n");
        assert_eq!(e.line, 4);
        assert!(e.reason.contains("write a duration string"), "{e}");
    }

    #[test]
    fn a_duplicate_name_points_at_both() {
        let rule = "[[rule]]\nname = \"a\"\nexpr = \"node_up == 0\"\nseverity = \"info\"\n";
        let e = err(&format!("{rule}\n{rule}"));
        assert_eq!(e.line, 7);
        assert_eq!(
            e.reason,
            "duplicate rule name \"a\" (first defined at line 2)"
        );
    }

    #[test]
    fn a_toml_syntax_error_names_the_line() {
        let e = err("[[rule]]\nname = \"a\"\nexpr = \"node_up == 0\nseverity = \"info\"\n");
        assert_eq!(e.line, 3);
        assert!(!e.reason.contains('\n'));
    }

    #[test]
    fn unknown_and_missing_keys_and_bad_values_are_refused() {
        let e = err(
            "[[rule]]\nname = \"a\"\nexpr = \"node_up == 0\"\nseverity = \"info\"\nfour = \"1m\"\n",
        );
        assert_eq!(e.line, 5);
        assert!(e.reason.contains("unknown field `four`"), "{e}");
        let e = err("[[rule]]\nname = \"a\"\nseverity = \"info\"\n");
        assert_eq!(e.line, 1);
        assert!(e.reason.contains("missing field `expr`"), "{e}");
        let e = err("[[rule]]\nname = \"a\"\nexpr = \"node_up == 0\"\nseverity = \"crit\"\n");
        assert_eq!(e.line, 4);
        assert!(e.reason.contains("unknown severity \"crit\""), "{e}");
        let e = err("[[rule]]\nname = \"a b\"\nexpr = \"node_up == 0\"\nseverity = \"info\"\n");
        assert_eq!(e.line, 2);
        assert!(e.reason.starts_with("bad rule name \"a b\""), "{e}");
        let e = err("[[rules]]\nname = \"a\"\n");
        assert_eq!(e.line, 1);
        assert!(e.reason.contains("unknown field `rules`"), "{e}");
        let e = err("# nothing\n");
        assert!(e.reason.starts_with("no [[rule]] tables"), "{e}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let e = Rules::load(Path::new("/nonexistent/rules.toml")).unwrap_err();
        assert!(e
            .to_string()
            .starts_with("/nonexistent/rules.toml: cannot read the rules file"));
    }

    mod props {
        use super::*;
        use crate::test_text::{any_text, mutated};
        use proptest::prelude::*;

        const ORIGIN: &str = "my-rules.toml";

        fn check(text: &str) -> Result<(), TestCaseError> {
            match Rules::parse(text, ORIGIN) {
                Ok(r) => {
                    for rule in r.rules() {
                        let _ = (rule.condition.to_string(), rule.scope());
                    }
                }
                Err(e) => {
                    prop_assert_eq!(&e.file, ORIGIN);
                    prop_assert!(e.line <= text.matches('\n').count() + 1, "{e}");
                    prop_assert!(e.to_string().starts_with(ORIGIN), "{e}");
                }
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
            fn edited_default_rules_parse_or_are_refused_naming_the_file(
                text in mutated(vec![DEFAULT_RULES])
            ) {
                check(&text)?;
            }

            #[test]
            fn any_condition_parses_or_says_why(text in any_text()) {
                match Condition::parse(&text) {
                    Ok(c) => prop_assert!(!c.terms.is_empty()),
                    Err(reason) => prop_assert!(!reason.is_empty()),
                }
            }
        }
    }
}
