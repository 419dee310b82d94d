//! The module map of ARCHITECTURE.md, checked: in each crate (and inside the console) a
//! module may import only modules of its own layer or a lower one, and no group of sibling
//! modules imports each other in a cycle. Imports are read from `crate::` / `super::` /
//! `self::` paths in the sources, the way `../shared/tools/cycles.py` reads them.
//!
//! A new top-level module must be given a layer here (and a line in ARCHITECTURE.md).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;

type ModPath = Vec<String>;

/// Lowest layer first. A module may use its own layer and the ones before it.
const SRC_LAYERS: &[&[&str]] = &[
    &["format", "test_text"],
    &["config"],
    &["client"],
    &["alerts"],
    &["cli"],
    &["ops"],
    &["console"],
    &["verbs"],
];

const CONSOLE_LAYERS: &[&[&str]] = &[
    &["action", "model", "theme"],
    &["keymap", "watch", "ops"],
    &["state"],
    &["effect"],
    &["app"],
    &["panes"],
    &["ui"],
    &["tests"],
];

const NODE_LAYERS: &[&[&str]] = &[
    &["pb", "clock", "failpoint", "sums", "merkle"],
    &["security"],
    &["types"],
    &["error"],
    &["backup"],
    &["store"],
    &["telemetry"],
    &["transport"],
    &["raft"],
    &["service"],
    &["api"],
    &["server"],
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir` as its module path (`mod.rs`, `lib.rs`, `main.rs` stand for
/// their folder).
fn modules(dir: &Path) -> BTreeMap<ModPath, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read source dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path
                    .strip_prefix(dir)
                    .expect("under dir")
                    .with_extension("");
                let mut parts: ModPath = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if matches!(
                    parts.last().map(String::as_str),
                    Some("mod" | "lib" | "main")
                ) {
                    parts.pop();
                }
                out.insert(parts, path);
            }
        }
    }
    out
}

fn strip_comments(text: &str) -> String {
    let block = Regex::new(r"(?s)/\*.*?\*/").expect("regex");
    let line = Regex::new(r"//[^\n]*").expect("regex");
    line.replace_all(&block.replace_all(text, ""), "")
        .into_owned()
}

/// The deepest existing module that `kind::segs`, written in module `base`, names.
fn resolve(
    base: &[String],
    kind: &str,
    segs: &[String],
    mods: &BTreeMap<ModPath, PathBuf>,
) -> ModPath {
    let mut path: ModPath = match kind {
        "crate" => vec![],
        "super" => base[..base.len().saturating_sub(1)].to_vec(),
        _ => base.to_vec(),
    };
    let mut segs = segs;
    while segs.first().is_some_and(|s| s == "super") {
        path.pop();
        segs = &segs[1..];
    }
    let mut best = path.clone();
    for s in segs {
        path.push(s.clone());
        if mods.contains_key(&path) {
            best = path.clone();
        } else {
            break;
        }
    }
    best
}

/// Edges between siblings: (parent, from child, to child) for every import that crosses
/// from one child of `parent` into another.
fn sibling_edges(mods: &BTreeMap<ModPath, PathBuf>) -> BTreeSet<(ModPath, String, String)> {
    let path_re =
        Regex::new(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)").expect("regex");
    let group_re =
        Regex::new(r"(?s)\buse\s+(crate|super|self)::((?:[A-Za-z_][A-Za-z0-9_]*::)*)\{([^;]*)\}")
            .expect("regex");
    let split = |s: &str| -> Vec<String> {
        s.split("::")
            .map(|p| p.trim_matches(|c: char| c == '{' || c == '}' || c.is_whitespace()))
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mut edges = BTreeSet::new();
    for (m, file) in mods {
        let text = strip_comments(&std::fs::read_to_string(file).expect("read source"));
        let mut found: Vec<(String, Vec<String>)> = Vec::new();
        for g in group_re.captures_iter(&text) {
            let prefix = split(&g[2]);
            for item in g[3].split(',') {
                let item = item.split(" as ").next().unwrap_or("").trim();
                if !item.is_empty() {
                    let mut segs = prefix.clone();
                    segs.extend(split(item));
                    found.push((g[1].to_string(), segs));
                }
            }
        }
        for p in path_re.captures_iter(&text) {
            found.push((p[1].to_string(), split(&p[2])));
        }
        for (kind, segs) in found {
            let t = resolve(m, &kind, &segs, mods);
            let common = m.iter().zip(&t).take_while(|(a, b)| a == b).count();
            // A module and its own ancestors or descendants: normal Rust.
            if common == m.len().min(t.len()) {
                continue;
            }
            edges.insert((m[..common].to_vec(), m[common].clone(), t[common].clone()));
        }
    }
    edges
}

/// Groups of siblings that reach each other (strongly connected, more than one member).
fn cycles(edges: &BTreeSet<(ModPath, String, String)>) -> Vec<String> {
    let mut by_parent: BTreeMap<&ModPath, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
    for (parent, a, b) in edges {
        by_parent
            .entry(parent)
            .or_default()
            .entry(a.as_str())
            .or_default()
            .insert(b.as_str());
    }
    let mut out = Vec::new();
    for (parent, graph) in by_parent {
        let nodes: BTreeSet<&str> = graph
            .iter()
            .flat_map(|(a, bs)| std::iter::once(*a).chain(bs.iter().copied()))
            .collect();
        let reach = |from: &str| -> BTreeSet<&str> {
            let mut seen = BTreeSet::new();
            let mut todo = vec![from];
            while let Some(n) = todo.pop() {
                for next in graph.get(n).into_iter().flatten() {
                    if seen.insert(*next) {
                        todo.push(next);
                    }
                }
            }
            seen
        };
        let mut done = BTreeSet::new();
        for n in &nodes {
            if done.contains(n) {
                continue;
            }
            let group: BTreeSet<&str> = reach(n)
                .into_iter()
                .filter(|m| reach(m).contains(n))
                .collect();
            if group.len() > 1 {
                done.extend(group.iter().copied());
                let names: Vec<_> = group.into_iter().collect();
                out.push(format!("{}: {}", parent.join("::"), names.join(", ")));
            }
        }
    }
    out
}

/// Imports that go up the layer table under `parent`, and children it does not list.
fn layer_violations(
    edges: &BTreeSet<(ModPath, String, String)>,
    mods: &BTreeMap<ModPath, PathBuf>,
    parent: &[&str],
    layers: &[&[&str]],
) -> Vec<String> {
    let parent: ModPath = parent.iter().map(|s| s.to_string()).collect();
    let layer_of = |name: &str| layers.iter().position(|l| l.contains(&name));
    let mut out = Vec::new();
    for m in mods.keys() {
        if m.len() == parent.len() + 1
            && m.starts_with(&parent)
            && layer_of(&m[parent.len()]).is_none()
        {
            out.push(format!(
                "{} has no layer in tests/layering.rs (nor, probably, a line in ARCHITECTURE.md)",
                m.join("::")
            ));
        }
    }
    for (p, a, b) in edges {
        if *p != parent {
            continue;
        }
        if let (Some(la), Some(lb)) = (layer_of(a), layer_of(b)) {
            if lb > la {
                out.push(format!(
                    "{a} (layer {la}) imports {b} (layer {lb}) under {}",
                    if parent.is_empty() {
                        "the crate root".to_string()
                    } else {
                        parent.join("::")
                    }
                ));
            }
        }
    }
    out
}

fn check(dir: &str, layered: &[(&[&str], &[&[&str]])]) {
    let mods = modules(&root().join(dir));
    assert!(
        mods.len() > 10,
        "found only {} modules under {dir}",
        mods.len()
    );
    let edges = sibling_edges(&mods);
    let mut problems: Vec<String> = cycles(&edges)
        .into_iter()
        .map(|c| format!("import cycle between siblings under {c}"))
        .collect();
    for (parent, layers) in layered {
        problems.extend(layer_violations(&edges, &mods, parent, layers));
    }
    assert!(
        problems.is_empty(),
        "{dir}: the module map is broken:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_console_and_cli_crate_imports_one_way() {
    check("src", &[(&[], SRC_LAYERS), (&["console"], CONSOLE_LAYERS)]);
}

#[test]
fn the_node_crate_imports_one_way() {
    check("node/src", &[(&[], NODE_LAYERS)]);
}

/// The checker itself finds what it is for: a cycle and an upward import in a made-up tree.
#[test]
fn the_checker_sees_a_cycle_and_an_upward_import() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    write("lib.rs", "mod low; mod high; mod a; mod b;");
    write("low.rs", "use crate::high::Thing; // goes up");
    write("high.rs", "pub struct Thing;");
    write("a/mod.rs", "use crate::b::{x::{Y}, z};");
    write("a/inner.rs", "fn f() { super::super::b::x::g(); }");
    write("b/mod.rs", "pub mod x; use crate::a::inner;");
    write(
        "b/x.rs",
        "/* crate::high in a comment is no import */ pub fn g() {}",
    );
    let mods = modules(dir.path());
    let edges = sibling_edges(&mods);
    assert_eq!(cycles(&edges), vec![": a, b".to_string()]);
    let up = layer_violations(&edges, &mods, &[], &[&["low"], &["high"], &["a", "b"]]);
    assert_eq!(
        up,
        vec!["low (layer 0) imports high (layer 1) under the crate root"]
    );
    assert!(!edges
        .iter()
        .any(|(_, from, to)| from == "b" && to == "high"));
}
