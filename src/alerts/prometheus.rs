//! The rules as a Prometheus rules file (`opsdeck alerts --export prometheus`): every rule
//! becomes an alerting rule with the same threshold, `for` and severity, each figure a PromQL
//! expression over the metrics the nodes export, so a Prometheus server pages with no
//! console open. `deploy/prometheus/opsdeck-rules.yml` is this output for the built-in rules
//! (a test keeps it so).
//!
//! Every figure's expression yields one series per subject with fixed labels: a node's are
//! its target's (`job`, `instance`, and `opsdeck_node_id`/`opsdeck_role` from the discovery
//! endpoint), the cluster's `job`, a tenant's `job` and `tenant`. Comparisons joined by `and`
//! are matched on those labels.

use std::fmt::Write as _;
use std::time::Duration;

use super::expr::Comparison;
use super::figures::{Figure, Scope};
use super::rules::{Rule, Rules};

/// What `opsdeck alerts --help` says about the export: how each figure is measured in
/// Prometheus and which cannot be measured exactly as the console does.
pub const PROMETHEUS_HELP: &str = "\
Prometheus (--export prometheus): the rules in effect as a Prometheus rules file, same
thresholds, `for` and severity, with summary and runbook annotations. Figures become
PromQL over the nodes' /metrics, per scrape target of job --job (default opsdeck); node
alerts carry the target's labels (instance, and opsdeck_node_id and opsdeck_role from the
nodes' /sd/prometheus discovery, which quorum_ok and follower_lag need). As the console:
  p99_latency_ms    opsdeck_request_recent_latency_seconds{stat=\"p99\"}, the same figure
  disk_used_pct     opsdeck_filesystem_size_bytes, opsdeck_filesystem_free_bytes
  storage_used_pct  opsdeck_data_dir_bytes, opsdeck_filesystem_free_bytes
  storage_full      opsdeck_storage_full (the node's disk guard)
  storage_keys      opsdeck_storage_keys
  storage_bytes     opsdeck_storage_bytes
  follower_lag      opsdeck_raft_follower_lag_entries of the leader with the highest term
  quota_used_pct    opsdeck_quota_used_ratio, fuller resource, highest of any node
Not exactly as the console:
  node_up           up: whether Prometheus' scrape succeeded. A node that answers but
                    refuses the key counts as up here and as down there (up is 0 on 401).
  error_rate_pct    rate() over 1m of opsdeck_request_errors_total / _requests_total:
                    extrapolated from the scrapes in the window, not the growth between
                    this observer's looks.
  quorum_ok         voters are the targets labelled opsdeck_role=\"voter\" (the membership
                    as the discovery node sees it), answering means scraped (up), and a
                    leader is known if any node's opsdeck_raft_leader_known is 1.
  term_changes_5m   the largest rise of any one node's opsdeck_raft_term within 5m (max -
                    min over time), not the rises of the highest term seen while watching.
  backup_age_h      from opsdeck_last_backup_timestamp_seconds; no backup is a timestamp
                    of 0, an age of decades rather than infinite: the same for `>` tests.
  backup_unverified_h the same age while opsdeck_last_backup_verified_timestamp_seconds
                    is 0 on every node; once verified no series rather than 0.
Not exported (console and `opsdeck alerts` only; the export lists the rules it leaves out):
  replica_diverged  the state digest is a 256-bit number the nodes do not export as a
                    metric; `opsdeck check` is the command-line twin.
A rule joining figures with `and` shows the first figure's value in Prometheus.";

/// The label sets a subject's series carry, for matching comparisons joined by `and`.
fn match_labels(scope: Scope) -> &'static str {
    match scope {
        Scope::Node => "job, instance",
        Scope::Cluster => "job",
        Scope::Tenant => "job, tenant",
    }
}

/// A job name that can go inside a PromQL string and a YAML scalar as it is.
fn check_job(job: &str) -> Result<(), String> {
    let ok = !job.is_empty()
        && job.len() <= 128
        && job
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.:/".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "--job {job:?}: use 1-128 letters, digits or _ - . : / (the job_name of the \
             scrape config that scrapes the nodes)"
        ))
    }
}

/// One figure as PromQL: one series per subject of its scope, valued as the console's
/// reading (same unit: ms, %, hours, entries); None for a [`Figure::console_only`] one.
pub fn figure_expr(figure: Figure, job: &str) -> Option<String> {
    let j = format!("job=\"{job}\"");
    Some(match figure {
        Figure::ReplicaDiverged => return None,
        Figure::NodeUp => format!("up{{{j}}}"),
        Figure::P99LatencyMs => format!(
            "1000 * max without (op, stat) (opsdeck_request_recent_latency_seconds{{{j}, stat=\"p99\"}})"
        ),
        Figure::ErrorRatePct => format!(
            "clamp_max(\n  100 * (\n    sum without (op, kind) (rate(opsdeck_request_errors_total{{{j}}}[1m]))\n    \
             or (0 * sum without (op) (rate(opsdeck_requests_total{{{j}}}[1m])))\n  )\n  \
             / sum without (op) (rate(opsdeck_requests_total{{{j}}}[1m])),\n  100\n)"
        ),
        Figure::DiskUsedPct => format!(
            "100 * (opsdeck_filesystem_size_bytes{{{j}}} - opsdeck_filesystem_free_bytes{{{j}}}) \
             / (opsdeck_filesystem_size_bytes{{{j}}} > 0)"
        ),
        Figure::StorageUsedPct => format!(
            "100 * (opsdeck_data_dir_bytes{{{j}}} > 0)\n  \
             / (opsdeck_data_dir_bytes{{{j}}} + opsdeck_filesystem_free_bytes{{{j}}})\n  \
             and (opsdeck_filesystem_size_bytes{{{j}}} > 0)"
        ),
        Figure::StorageFull => format!("opsdeck_storage_full{{{j}}}"),
        Figure::StorageKeys => format!("opsdeck_storage_keys{{{j}}}"),
        Figure::StorageBytes => format!("opsdeck_storage_bytes{{{j}}}"),
        // The leader reports each follower's lag with a `follower` label: relabel it as
        // that node, keep the highest-term leader's view, and take the follower's target
        // labels from its `up`.
        Figure::FollowerLag => format!(
            "max by (job, opsdeck_node_id) (\n  label_replace(\n    \
             opsdeck_raft_follower_lag_entries{{{j}}}\n      and on (job, instance)\n      \
             (opsdeck_raft_term{{{j}}} == on (job) group_left max by (job) (opsdeck_raft_term{{{j}}})),\n    \
             \"opsdeck_node_id\", \"$1\", \"follower\", \"(.+)\"\n  )\n)\n\
             + on (job, opsdeck_node_id) group_right () (0 * up{{{j}}})"
        ),
        Figure::QuorumOk => format!(
            "(\n  sum by (job) (up{{{j}, opsdeck_role=\"voter\"}})\n  \
             >= bool on (job)\n  \
             (floor(count by (job) (up{{{j}, opsdeck_role=\"voter\"}}) / 2) + 1)\n)\n\
             * on (job)\n\
             (\n  max by (job) (opsdeck_raft_leader_known{{{j}}})\n  \
             or on (job) (0 * count by (job) (up{{{j}}}))\n)"
        ),
        Figure::TermChanges5m => format!(
            "max by (job) (\n  max_over_time(opsdeck_raft_term{{{j}}}[5m])\n  \
             - min_over_time(opsdeck_raft_term{{{j}}}[5m])\n)"
        ),
        Figure::BackupAgeH => format!(
            "(time() - max by (job) (opsdeck_last_backup_timestamp_seconds{{{j}}})) / 3600"
        ),
        Figure::BackupUnverifiedH => format!(
            "(\n  (time() - max by (job) (opsdeck_last_backup_timestamp_seconds{{{j}}})) / 3600\n  \
             and on (job) (max by (job) (opsdeck_last_backup_timestamp_seconds{{{j}}}) > 0)\n  \
             and on (job) (max by (job) (opsdeck_last_backup_verified_timestamp_seconds{{{j}}}) == 0)\n)"
        ),
        Figure::QuotaUsedPct => {
            format!("100 * max by (job, tenant) (opsdeck_quota_used_ratio{{{j}}})")
        }
    })
}

fn comparison(c: &Comparison, job: &str) -> Option<String> {
    let figure = figure_expr(c.figure, job)?;
    // A plain selector needs no parentheses; anything longer gets them, so the comparison
    // applies to the whole figure.
    let simple = figure
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || "_{}=\", ".contains(ch));
    let figure = if simple {
        figure
    } else {
        format!("(\n{}\n)", indent(&figure, 2))
    };
    Some(format!("{figure} {} {}", c.op.symbol(), c.threshold))
}

fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines()
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The rule's condition as one PromQL expression (None: it tests a console-only figure).
pub fn rule_expr(rule: &Rule, job: &str) -> Option<String> {
    let on = match_labels(rule.scope());
    Some(
        rule.condition
            .terms
            .iter()
            .map(|c| comparison(c, job))
            .collect::<Option<Vec<_>>>()?
            .join(&format!("\nand on ({on})\n")),
    )
}

/// A duration as Prometheus writes it: `1h30m`, `10s`, `0s`.
pub fn prom_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms >= size {
            let _ = write!(out, "{}{unit}", ms / size);
            ms %= size;
        }
    }
    if ms > 0 {
        let _ = write!(out, "{ms}ms");
    }
    out
}

/// Text that Prometheus' templating shows as written (`{{` would start an action).
fn literal(text: &str) -> String {
    text.replace("{{", "\u{0}OPEN\u{0}")
        .replace("}}", "{{ \"}}\" }}")
        .replace("\u{0}OPEN\u{0}", "{{ \"{{\" }}")
}

/// `{subject}` in a summary, as a template over the alert's labels.
fn subject_template(scope: Scope) -> &'static str {
    match scope {
        Scope::Node => "node {{ $labels.opsdeck_node_id }} ({{ $labels.instance }})",
        Scope::Cluster => "cluster",
        Scope::Tenant => "tenant {{ $labels.tenant }}",
    }
}

/// `{value}` in a summary: the alert's value (the first comparison's figure) in the
/// console's units.
fn value_template(figure: Figure) -> &'static str {
    match figure {
        Figure::P99LatencyMs => "{{ printf \"%.0f\" $value }} ms",
        Figure::ErrorRatePct
        | Figure::DiskUsedPct
        | Figure::StorageUsedPct
        | Figure::QuotaUsedPct => "{{ printf \"%.1f\" $value }}%",
        Figure::StorageBytes => "{{ humanize1024 $value }}B",
        Figure::BackupAgeH => {
            "{{ if gt $value 100000.0 }}no backup known{{ else }}{{ printf \"%.1f\" $value }} h ago{{ end }}"
        }
        Figure::BackupUnverifiedH => "taken {{ printf \"%.1f\" $value }} h ago, not verified",
        Figure::NodeUp
        | Figure::StorageFull
        | Figure::StorageKeys
        | Figure::FollowerLag
        | Figure::QuorumOk
        | Figure::TermChanges5m
        | Figure::ReplicaDiverged => "{{ $value }}",
    }
}

fn summary(rule: &Rule) -> String {
    let figure = rule
        .condition
        .terms
        .first()
        .map_or(Figure::NodeUp, |t| t.figure);
    match &rule.summary {
        Some(s) => literal(s)
            .replace("{subject}", subject_template(rule.scope()))
            .replace("{value}", value_template(figure)),
        None => format!(
            "{} on {}: {}",
            rule.name,
            subject_template(rule.scope()),
            value_template(figure)
        ),
    }
}

fn description(rule: &Rule) -> String {
    let source = format!(
        "opsdeck rule {}: {} for {}",
        rule.name,
        rule.condition,
        prom_duration(rule.hold)
    );
    match &rule.runbook {
        Some(r) => format!("{} ({source})", literal(r)),
        None => format!("{source}."),
    }
}

/// A YAML double-quoted scalar (JSON's string syntax is valid YAML).
fn quoted(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

/// The rules file: one group `opsdeck` with a rule per opsdeck rule, in the same order.
pub fn export(rules: &Rules, job: &str) -> Result<String, String> {
    check_job(job)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Prometheus alerting rules for opsdeck, generated by `opsdeck alerts --export prometheus`.\n\
         # Rules: {}\n\
         # Scrape job: {job}\n\
         # Do not edit: change the opsdeck rules file and export again. Node alerts expect the\n\
         # target labels opsdeck_node_id and opsdeck_role, which the nodes' /sd/prometheus\n\
         # discovery sets; `opsdeck alerts --help` says which figures Prometheus measures\n\
         # differently from the console.",
        rules.origin().replace('\n', " ")
    );
    let left_out: Vec<&str> = rules
        .rules()
        .iter()
        .filter(|r| rule_expr(r, job).is_none())
        .map(|r| r.name.as_str())
        .collect();
    if !left_out.is_empty() {
        let _ = writeln!(
            out,
            "# Left out (they test figures the nodes' metrics cannot express; the console and\n\
             # `opsdeck alerts` evaluate them): {}",
            left_out.join(", ")
        );
    }
    out.push_str("groups:\n  - name: opsdeck\n    rules:\n");
    for rule in rules.rules() {
        let Some(expr) = rule_expr(rule, job) else {
            continue;
        };
        let _ = writeln!(out, "      - alert: {}", rule.name);
        let _ = writeln!(out, "        expr: |-");
        let _ = writeln!(out, "{}", indent(&expr, 10));
        let _ = writeln!(out, "        for: {}", prom_duration(rule.hold));
        let _ = writeln!(out, "        labels:");
        let _ = writeln!(out, "          severity: {}", rule.severity);
        let _ = writeln!(out, "        annotations:");
        let _ = writeln!(out, "          summary: {}", quoted(&summary(rule)));
        let _ = writeln!(out, "          description: {}", quoted(&description(rule)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_written_as_prometheus_reads_them() {
        let d = |ms| prom_duration(Duration::from_millis(ms));
        assert_eq!(d(0), "0s");
        assert_eq!(d(10_000), "10s");
        assert_eq!(d(60_000), "1m");
        assert_eq!(d(90_000), "1m30s");
        assert_eq!(d(5_400_000), "1h30m");
        assert_eq!(d(86_400_000 + 1_500), "1d1s500ms");
    }

    #[test]
    fn every_figure_has_an_expression_over_the_job_and_is_explained_in_the_help() {
        for f in Figure::ALL {
            let Some(e) = figure_expr(f, "myjob") else {
                assert!(f.console_only(), "{f} has no expression");
                continue;
            };
            assert!(!f.console_only(), "{f}");
            assert!(e.contains("job=\"myjob\""), "{f}: {e}");
            assert!(!e.contains("job=\"opsdeck\""), "{f}: {e}");
            let open = e.matches('(').count();
            assert_eq!(open, e.matches(')').count(), "{f}: {e}");
            assert!(
                PROMETHEUS_HELP
                    .lines()
                    .any(|l| l.split_whitespace().next() == Some(f.name())),
                "{f} is not in PROMETHEUS_HELP"
            );
        }
    }

    #[test]
    fn node_down_is_up_equals_zero() {
        let rules = Rules::defaults();
        let node_down = &rules.rules()[0];
        assert_eq!(
            rule_expr(node_down, "opsdeck").as_deref(),
            Some("up{job=\"opsdeck\"} == 0")
        );
    }

    #[test]
    fn comparisons_joined_by_and_match_on_the_subjects_labels() {
        let rules = Rules::parse(
            "[[rule]]\nname = \"a\"\nexpr = \"disk_used_pct > 80 and storage_keys >= 1_000\"\n\
             severity = \"info\"\nsummary = \"{subject}: {value} {{x}}\"\n",
            "r.toml",
        )
        .unwrap();
        let rule = &rules.rules()[0];
        let e = rule_expr(rule, "opsdeck").unwrap();
        assert!(
            e.ends_with(
                ")\n) > 80\nand on (job, instance)\nopsdeck_storage_keys{job=\"opsdeck\"} >= 1000"
            ),
            "{e}"
        );
        assert_eq!(
            summary(rule),
            "node {{ $labels.opsdeck_node_id }} ({{ $labels.instance }}): \
             {{ printf \"%.1f\" $value }}% {{ \"{{\" }}x{{ \"}}\" }}"
        );
        assert_eq!(
            description(rule),
            "opsdeck rule a: disk_used_pct > 80 and storage_keys >= 1000 for 0s."
        );
    }

    #[test]
    fn the_export_has_every_rule_with_its_for_severity_and_annotations() {
        let rules = Rules::defaults();
        let text = export(&rules, "opsdeck").unwrap();
        assert!(
            text.contains("\ngroups:\n  - name: opsdeck\n    rules:\n"),
            "{text}"
        );
        for rule in rules.rules() {
            if rule_expr(rule, "opsdeck").is_none() {
                assert!(!text.contains(&format!("alert: {}\n", rule.name)), "{text}");
                assert!(text.contains(&format!("): {}\n", rule.name)), "{text}");
                continue;
            }
            let block = text
                .split("      - alert: ")
                .find(|b| b.starts_with(&format!("{}\n", rule.name)))
                .unwrap_or_else(|| panic!("{} missing in\n{text}", rule.name));
            assert!(
                block.contains(&format!("\n        for: {}\n", prom_duration(rule.hold))),
                "{block}"
            );
            assert!(
                block.contains(&format!("\n          severity: {}\n", rule.severity)),
                "{block}"
            );
            assert!(block.contains("\n          summary: \""), "{block}");
            let runbook = rule.runbook.as_deref().unwrap();
            assert!(block.contains(&quoted(runbook)[..20]), "{block}");
        }
        assert!(export(&rules, "my job")
            .unwrap_err()
            .contains("--job \"my job\""));
    }
}
