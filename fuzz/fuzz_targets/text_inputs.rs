//! Every text file and argument an operator hands opsdeck, through the real parsers:
//! keymap (`--keymap FILE`), theme (`--theme FILE`), alert rules (`--rules FILE`, then
//! evaluated against a node status), console config (`~/.config/opsdeck/config.toml`),
//! `cluster.toml` (`--cluster DIR`) and the command line itself (clap, with every
//! hand-written value parser: sizes, rates, ranges, HOST:PORT, durations, levels).
//!
//! Input: `TEXT [\0 STATUS]`. TEXT goes to every file parser (each refuses what is not
//! its format, as it would a wrong file) and, one argument per line, to the command line.
//! STATUS, if present, is a protobuf `NodeStatus` (what a node answers to `Status`/`Watch`):
//! rules that parse are evaluated on it over several ticks, as `opsdeck alerts` and the
//! console's Alerts pane do.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::sync::OnceLock;

use clap::Parser;
use libfuzzer_sys::fuzz_target;
use opsdeck::alerts::{Evaluator, Rules};
use opsdeck::client::NodeReport;
use opsdeck::config::Config;
use opsdeck::console::action::PaneKind;
use opsdeck::console::keymap::{Keymap, MODAL_CONTEXTS};
use opsdeck::console::theme::{ColorDepth, Role, Theme};
use opsdeck_node::pb::{FollowerProgress, Member, NodeStatus, OpStats, TenantUsage};
use prost::Message;

const ORIGIN: &str = "fuzz-origin.toml";

/// A directory for `cluster.toml`, which is only read from a directory.
fn cluster_dir() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::path::Path::new("/dev/shm");
        let b = tempfile::Builder::new()
            .prefix("opsdeck-fuzz-text-")
            .tempdir_in(base);
        b.or_else(|_| tempfile::tempdir()).expect("temp dir")
    })
    .path()
}

/// A node status with every figure the rules look at, for rules files without a STATUS.
fn sample_status() -> NodeStatus {
    NodeStatus {
        id: 1,
        grpc: "127.0.0.1:7101".into(),
        http: "127.0.0.1:7201".into(),
        role: "leader".into(),
        term: 3,
        leader_id: Some(1),
        last_log_index: Some(900),
        committed: Some(900),
        applied: Some(900),
        members: vec![
            Member {
                id: 1,
                grpc: "127.0.0.1:7101".into(),
                http: "127.0.0.1:7201".into(),
                voter: true,
            },
            Member {
                id: 2,
                grpc: "127.0.0.1:7102".into(),
                http: "127.0.0.1:7202".into(),
                voter: true,
            },
        ],
        storage_keys: 10,
        storage_bytes: 1000,
        followers: vec![FollowerProgress {
            id: 2,
            matched: Some(100),
            lag: 800,
            ..Default::default()
        }],
        millis_since_quorum_ack: Some(20),
        ops: vec![OpStats {
            op: "put".into(),
            per_sec: 10.0,
            total: 1000,
            errors: 30,
            p50_us: 900,
            p95_us: 5000,
            p99_us: 2_000_000,
            max_us: 3_000_000,
        }],
        fs_total_bytes: 1000,
        fs_free_bytes: 100,
        data_dir_bytes: 500,
        quotas: vec![TenantUsage {
            tenant: "acme".into(),
            tier: "free".into(),
            keys: 95,
            bytes: 10,
            max_keys: Some(100),
            max_bytes: Some(1000),
            violations: 1,
        }],
        last_backup_unix_ms: Some(0),
        ..Default::default()
    }
}

fn check_origin(what: &str, error: &str) {
    assert!(
        error.contains(ORIGIN),
        "{what} error does not name its file: {error:?}"
    );
}

fn keymap(text: &str) {
    match Keymap::parse("fuzz", ORIGIN, text) {
        Ok(k) => {
            let mut contexts = vec!["global"];
            contexts.extend(MODAL_CONTEXTS);
            contexts.extend(PaneKind::ALL.iter().map(|p| p.name()));
            for ctx in contexts {
                for (key, action) in k.bindings(ctx) {
                    let _ = key.to_string();
                    let _ = k.resolve(ctx, *key);
                    let _ = k.key_for(ctx, *action);
                }
            }
        }
        Err(e) => check_origin("keymap", &e.to_string()),
    }
}

fn theme(text: &str) {
    match Theme::parse("fuzz", ORIGIN, text) {
        Ok(t) => {
            for depth in [
                ColorDepth::TrueColor,
                ColorDepth::Ansi256,
                ColorDepth::Ansi16,
                ColorDepth::Mono,
            ] {
                let d = t.clone().degrade(depth);
                for role in Role::ALL {
                    let _ = d.style(*role);
                }
            }
        }
        Err(e) => check_origin("theme", &e.to_string()),
    }
}

fn rules(text: &str, status: Option<NodeStatus>) {
    let rules = match Rules::parse(text, ORIGIN) {
        Ok(r) => r,
        Err(e) => {
            assert_eq!(e.file, ORIGIN);
            check_origin("rules", &e.to_string());
            return;
        }
    };
    let status = status.unwrap_or_else(sample_status);
    let mut later = status.clone();
    later.term = later.term.wrapping_add(2);
    for op in &mut later.ops {
        op.total = op.total.wrapping_add(100);
        op.errors = op.errors.wrapping_add(50);
    }
    let up = |s: &NodeStatus| NodeReport {
        endpoint: "127.0.0.1:7101".into(),
        status: Ok(s.clone()),
        refused: false,
    };
    let down = |endpoint: &str| NodeReport {
        endpoint: endpoint.into(),
        status: Err("status: Unavailable: tcp connect error: Connection refused".into()),
        refused: false,
    };
    let refused = NodeReport {
        endpoint: "127.0.0.1:7103".into(),
        status: Err("API key not recognised".into()),
        refused: true,
    };
    let t0: i64 = 1_800_000_000_000;
    let mut ev = Evaluator::new(rules);
    let ticks: [(i64, Vec<NodeReport>); 4] = [
        (t0, vec![up(&status), down("127.0.0.1:7102")]),
        (
            t0 + 61_000,
            vec![up(&later), down("127.0.0.1:7102"), refused],
        ),
        (t0 + 400_000, vec![up(&later), down("10.9.9.9:1")]),
        (t0 + 4_000_000, vec![down("127.0.0.1:7101")]),
    ];
    for (i, (now, reports)) in ticks.iter().enumerate() {
        for t in ev.observe(*now, reports) {
            let _ = (t.alert.summary(), t.alert.value(), t.alert.id.to_string());
        }
        if i == 1 {
            let ids: Vec<_> = ev.alerts().iter().map(|a| a.id.clone()).collect();
            for id in ids {
                ev.ack(&id);
                ev.silence(&id, now + 100_000);
            }
        }
        for a in ev.alerts() {
            let _ = (a.summary(), a.value());
        }
    }
}

fn config(text: &str) {
    if let Err(e) = Config::parse(ORIGIN, text) {
        check_origin("config", &e.to_string());
    }
}

fn cluster_file(text: &str) {
    let dir = cluster_dir();
    std::fs::write(dir.join(opsdeck::client::cluster_file::FILE_NAME), text).expect("write");
    if let Ok(f) = opsdeck::client::cluster_file::ClusterFile::load(dir) {
        let _ = f.grpc_endpoints();
    }
}

fn command_line(text: &[u8]) {
    let mut args = vec![OsString::from("opsdeck")];
    args.extend(
        text.split(|b| *b == b'\n')
            .map(|a| OsString::from_vec(a.to_vec())),
    );
    match opsdeck::cli::Cli::try_parse_from(args) {
        Ok(cli) => {
            let _ = cli.command.is_one_shot();
        }
        Err(e) => {
            let _ = e.render().to_string();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (text, status) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    command_line(text);
    // Files are read with read_to_string: what is not UTF-8 never reaches a parser.
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    keymap(text);
    theme(text);
    config(text);
    cluster_file(text);
    rules(text, status.and_then(|s| NodeStatus::decode(s).ok()));
});
