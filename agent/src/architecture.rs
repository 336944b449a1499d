//! The crate's rooms and the one direction of dependency between them, checked by a test.
//!
//! DESIGN.md ("The agent crate's rooms") says
//! `main → commands | daemon → config | outbox | uplink | support`: the front door (`cli`)
//! dispatches to the one-shot commands and to the daemon; those two never import each other;
//! they use the configuration, the outbox, the uplink and the support helpers; the outbox and
//! the uplink use only `support`. The `fleet` room (bundles, keys, versions on disk), added
//! after DESIGN.md was written, sits beside them: used by config, commands and daemon, using
//! only `support`. A rule like that decays one convenient `use` at a time, so
//! this test reads every file under `agent/src` and fails on an import that points the wrong
//! way and on any cycle among the rooms. Run it with
//! `cargo test -p weir-agent --lib architecture`.
//!
//! Test code (`tests.rs`, `*_tests.rs`, and what follows `mod tests {`) is not checked: a test
//! may wire rooms together (the uplink's tests drain a real outbox) without the production
//! code depending on it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each room and the rooms it may import.
const ALLOWED: &[(&str, &[&str])] = &[
    (
        "cli",
        &[
            "commands", "daemon", "config", "fleet", "outbox", "uplink", "support",
        ],
    ),
    (
        "commands",
        &["config", "fleet", "outbox", "uplink", "support"],
    ),
    (
        "daemon",
        &["config", "fleet", "outbox", "uplink", "support"],
    ),
    ("config", &["fleet", "outbox", "uplink", "support"]),
    ("fleet", &["support"]),
    ("outbox", &["support"]),
    ("uplink", &["support"]),
    ("support", &[]),
];

/// Modules at the crate root that are not rooms (test-only).
const NOT_ROOMS: &[&str] = &["architecture"];

/// One import of a room by another: where it is written.
#[derive(Debug)]
struct Import {
    from: String,
    to: String,
    file: PathBuf,
    line: usize,
}

/// The module path of a source file below `src` (`daemon/run.rs` → `["daemon", "run"]`).
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap_or(file);
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The crate-root modules a line names: `crate::x`, `crate::{x, y::z}`, and `super::` paths
/// that climb out of the room (`module` is the module the line is in).
fn roots_named(line: &str, module: &[String]) -> Vec<String> {
    let mut roots = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        // `weir_crate::` or `foo_crate::` is not `crate::`.
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0usize;
            let mut item = String::new();
            let mut items = Vec::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => items.push(std::mem::take(&mut item)),
                    _ => {}
                }
                if depth == 0 && c != ',' {
                    item.push(c);
                }
            }
            items.push(item);
            for item in items {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    roots.push(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            roots.push(name);
        }
    }
    // `super::super::x` from `daemon::run` names the crate root's `x`.
    let mut rest = line;
    while let Some(at) = rest.find("super::") {
        let before = rest[..at].chars().next_back();
        let tail = &rest[at..];
        let mut ups = 0;
        let mut after = tail;
        while let Some(t) = after.strip_prefix("super::") {
            ups += 1;
            after = t;
        }
        rest = after;
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        if ups >= module.len() {
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            roots.push(name);
        }
    }
    roots
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The paths a line names, resolved to absolute module paths and cut to `want` segments
/// (`crate::daemon::pipeline::Core` → `daemon::pipeline`; `super::x` from `daemon::run` →
/// `daemon::x`; groups expanded).
fn paths_named(line: &str, module: &[String], want: usize) -> Vec<Vec<String>> {
    fn ident(text: &str) -> (&str, &str) {
        let end = text
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(text.len());
        text.split_at(end)
    }
    fn expand(prefix: Vec<String>, rest: &str, want: usize, out: &mut Vec<Vec<String>>) {
        if prefix.len() >= want {
            out.push(prefix);
            return;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0usize;
            let mut start = 0;
            let mut items = Vec::new();
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        items.push(&group[start..i]);
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        items.push(&group[start..i]);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            for item in items {
                expand(prefix.clone(), item.trim(), want, out);
            }
            return;
        }
        let (name, after) = ident(rest);
        if name.is_empty() || name == "self" {
            if !prefix.is_empty() {
                out.push(prefix);
            }
            return;
        }
        let mut path = prefix;
        path.push(name.to_owned());
        match after.strip_prefix("::") {
            Some(more) => expand(path, more, want, out),
            None => out.push(path),
        }
    }
    let mut out = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < line.len() {
        let rest = &line[i..];
        let boundary = i == 0
            || !(bytes[i - 1].is_ascii_alphanumeric()
                || bytes[i - 1] == b'_'
                || bytes[i - 1] == b':');
        if boundary && rest.starts_with("crate::") {
            expand(Vec::new(), &rest["crate::".len()..], want, &mut out);
            i += "crate::".len();
        } else if boundary && rest.starts_with("super::") {
            let mut ups = 0;
            let mut after = rest;
            while let Some(t) = after.strip_prefix("super::") {
                ups += 1;
                after = t;
            }
            let base = module[..module.len().saturating_sub(ups)].to_vec();
            expand(base, after, want, &mut out);
            i = line.len() - after.len();
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    out
}

/// Every import of one room by another in production code under `src`.
fn imports(src: &Path) -> Vec<Import> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut found = Vec::new();
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if name == "tests.rs"
            || name.ends_with("_tests.rs")
            || name == "main.rs"
            || name == "architecture.rs"
        {
            continue;
        }
        let module = module_path(src, &file);
        let Some(from) = module.first().cloned() else {
            continue; // lib.rs declares the rooms.
        };
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("mod tests {") {
                break;
            }
            if code.starts_with("//") {
                continue;
            }
            for to in roots_named(code, &module) {
                if to != from {
                    found.push(Import {
                        from: from.clone(),
                        to,
                        file: file.clone(),
                        line: n + 1,
                    });
                }
            }
        }
    }
    found
}

/// Imports between the modules of one room (`daemon::metrics` → `daemon::pipeline`), in
/// production code. A module and its own parent or children are not edges: Rust modules
/// naturally use their parent's types.
fn module_edges(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if name == "tests.rs" || name.ends_with("_tests.rs") || name == "architecture.rs" {
            continue;
        }
        let module = module_path(src, &file);
        if module.len() < 2 {
            continue;
        }
        let from = module[..2].join("::");
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines() {
            let code = line.trim_start();
            if code.starts_with("mod tests {") {
                break;
            }
            if code.starts_with("//") {
                continue;
            }
            for path in paths_named(code, &module, 2) {
                if path.len() == 2 && path[0] == module[0] {
                    let to = path.join("::");
                    if to != from {
                        edges.entry(from.clone()).or_default().insert(to);
                    }
                }
            }
        }
    }
    edges
}

/// The rooms on a cycle of `edges`, if there is one.
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, edges, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(found) = visit(node, edges, &mut Vec::new(), &mut done) {
            return Some(found);
        }
    }
    None
}

#[test]
fn rooms_import_one_way_and_have_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let found = imports(&src);
    assert!(
        found.iter().any(|i| i.from == "daemon" && i.to == "outbox"),
        "the scan finds imports at all (daemon uses the outbox)"
    );
    let mut wrong = Vec::new();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for import in &found {
        if NOT_ROOMS.contains(&import.to.as_str()) {
            continue;
        }
        edges
            .entry(import.from.clone())
            .or_default()
            .insert(import.to.clone());
        let ok = allowed
            .get(import.from.as_str())
            .is_some_and(|may| may.contains(&import.to.as_str()));
        if !ok {
            wrong.push(format!(
                "{}:{}: `{}` imports `{}`",
                import.file.strip_prefix(&src).unwrap().display(),
                import.line,
                import.from,
                import.to
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the rooms' direction (see DESIGN.md):\n{}",
        wrong.join("\n")
    );
    assert_eq!(cycle(&edges), None, "a cycle among the rooms");
}

/// The flat crate had a ten-module cycle (`pipeline → reload → run → pipeline`, `metrics →
/// pipeline`, …); inside each room the modules now depend one way too.
#[test]
fn modules_inside_a_room_have_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = module_edges(&src);
    assert!(
        edges
            .get("daemon::run")
            .is_some_and(|to| to.contains("daemon::pipeline")),
        "the scan finds module imports (run uses the pipeline): {edges:?}"
    );
    assert_eq!(cycle(&edges), None, "a cycle among modules of one room");
}

#[test]
fn paths_resolve_to_modules() {
    let run = ["daemon".to_owned(), "run".to_owned()];
    assert_eq!(
        paths_named("use crate::daemon::{pipeline::Core, reload};", &run, 2),
        [["daemon", "pipeline"], ["daemon", "reload"]]
    );
    assert_eq!(
        paths_named(
            "x = super::signals::Signals::new(); crate::outbox::Lane",
            &run,
            2
        ),
        [["daemon", "signals"], ["outbox", "Lane"]]
    );
    let core = [
        "daemon".to_owned(),
        "pipeline".to_owned(),
        "core".to_owned(),
    ];
    assert_eq!(
        paths_named("use super::PipelineCounters;", &core, 2),
        [["daemon", "pipeline"]]
    );
}

#[test]
fn the_scan_sees_grouped_nested_and_super_imports() {
    let run = ["daemon".to_owned(), "run".to_owned()];
    assert_eq!(
        roots_named("use crate::{config::Loaded, outbox::{Lane, Outbox}};", &run),
        ["config", "outbox"]
    );
    assert_eq!(
        roots_named("let x = crate::uplink::topic_for(a, b);", &run),
        ["uplink"]
    );
    assert_eq!(
        roots_named("use super::super::commands::x;", &run),
        ["commands"]
    );
    assert!(roots_named("use super::pipeline::Pipeline;", &run).is_empty());
    assert!(roots_named("use weir_crate::x;", &run).is_empty());
}

#[test]
fn a_cycle_is_found_and_named() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into());
    edges.entry("b".into()).or_default().insert("c".into());
    assert_eq!(cycle(&edges), None);
    edges.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        cycle(&edges),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}
