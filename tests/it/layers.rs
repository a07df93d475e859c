//! The architecture, checked: data flows down and each layer imports only itself and the
//! layers below it.
//!
//! What each source file of the library imports is read by [`crate::support::imports`]
//! (`crate::…`, `super::…` and `self::…` paths, `use` groups, resolved to the file they name).
//! Test code counts like the rest: a test importing upwards ties the layers together just as
//! well.
//!
//! It fails, naming the file and line of each offending import, on:
//! * an import of a module of a higher layer than the importer's ([`LAYERS`]);
//! * a cycle between top-level modules;
//! * an import from `log/` (the storage engine) into anything but [`ENGINE_MAY_USE`];
//! * an import by a parser ([`PARSERS`]) of anything of the crate outside itself, but
//!   [`PARSERS_MAY_USE`];
//! * a cycle between the files of one module (its `mod.rs`, which declares them and holds what
//!   they share, is left out).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::support::imports::{Import, ModPath, collect_imports, module_files};

/// The layers, top to bottom. A module may import modules of its own layer (without a cycle)
/// and of the layers below; a module missing here fails the check until it is placed.
const LAYERS: &[(&str, &[&str])] = &[
    // The composition root: opens the log, starts every task, drains on shutdown.
    ("face", &["app"]),
    // What the outside world talks to, and the tools beside the daemon.
    (
        "services",
        &["mllp", "dicom", "api", "sync", "operator", "hub", "retention", "forward", "systemd", "syslog", "backups"],
    ),
    // The decisions: an HL7 message or a DICOM instance becomes events; matching, patient
    // cases; each with its request to the single writer.
    ("domain", &["domain"]),
    // Everything derived from the events: tables, apply, rebuild, the read queries; and the
    // audit trail, written in the same transactions as the intake it records.
    ("projections", &["projections", "audit"]),
    // The event catalog: what zenedge records, in the hub's vocabulary, with its versions.
    ("events", &["events"]),
    // The storage engine: redb file, envelopes, the writer with group commit, readers, the
    // disk reserve, the table registry, fault seams.
    ("engine", &["log"]),
    // Shared below everything: configuration, metrics (and the listeners' recent activity for
    // the status page), the storage hook, socket settings, TLS errors in words, the command
    // line's argument types. `tls` (the server identity every TLS listener shares, the
    // handshake, the checks of TLS files the sync uses too) and
    // `security` (the peer's certificate identity, which the intake events carry, and the one
    // function every security alert goes through) sit here because listeners, the API, the
    // sync and the event catalog all use them, and they need nothing but configuration and
    // metrics.
    ("base", &["config", "telemetry", "activity", "storage_hook", "net", "tls_words", "cli", "tls", "security"]),
    // Bytes in, values out, no I/O: the HL7 parser, the DICOM data-set scanner, and the small
    // helpers parsers share.
    ("parsers", &["hl7", "dicom_scan", "ids"]),
];

/// What the storage engine may import besides itself.
const ENGINE_MAY_USE: &[&str] = &["config", "telemetry", "storage_hook", "ids"];

/// The parsers, as module paths: they import nothing of the crate outside themselves.
const PARSERS: &[&str] = &["hl7", "dicom_scan", "dicom::dimse"];

/// What a parser may import besides itself.
const PARSERS_MAY_USE: &[&str] = &["ids"];

#[test]
fn modules_import_only_their_own_layer_and_the_layers_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = module_files(&src);
    let imports = collect_imports(&src, &files);
    let problems = check(&imports, &files);
    assert!(problems.is_empty(), "the layer check failed:\n\n{}", problems.join("\n"));
}

/// Every rule, as readable problems.
fn check(imports: &[Import], files: &BTreeMap<ModPath, PathBuf>) -> Vec<String> {
    let mut problems = Vec::new();
    let layer_of = |m: &str| LAYERS.iter().position(|(_, mods)| mods.contains(&m));
    let top = |p: &ModPath| p.first().cloned().unwrap_or_else(|| "lib".into());
    for module in files.keys().filter(|p| p.len() == 1).map(top) {
        if layer_of(&module).is_none() {
            problems.push(format!("src/{module}: not in any layer; place it in LAYERS (tests/it/layers.rs)"));
        }
    }
    let mut seen = BTreeSet::new();
    for i in imports.iter().filter(|i| !i.from.is_empty() && !i.to.is_empty()) {
        let (from, to) = (top(&i.from), top(&i.to));
        let parser = PARSERS
            .iter()
            .map(|p| p.split("::").map(str::to_owned).collect::<ModPath>())
            .find(|p| i.from.starts_with(p) && !i.to.starts_with(p));
        if (from == to && parser.is_none()) || !seen.insert((i.file.clone(), i.line, i.to[..1].to_vec())) {
            continue;
        }
        let at = format!("{}:{}", i.file.display(), i.line);
        if let Some(parser) = parser {
            if !PARSERS_MAY_USE.contains(&to.as_str()) {
                problems.push(format!(
                    "{at}: the parser {} imports {} (parsers import nothing of the daemon but {})",
                    parser.join("::"),
                    i.written,
                    PARSERS_MAY_USE.join(", ")
                ));
            }
        } else if from == "log" && !ENGINE_MAY_USE.contains(&to.as_str()) {
            problems.push(format!(
                "{at}: the storage engine imports {} (it may use only {})",
                i.written,
                ENGINE_MAY_USE.join(", ")
            ));
        } else if let (Some(a), Some(b)) = (layer_of(&from), layer_of(&to))
            && b < a
        {
            problems.push(format!(
                "{at}: {from} ({} layer) imports {} of the {} layer above it",
                LAYERS[a].0, i.written, LAYERS[b].0
            ));
        }
    }
    let parents: BTreeSet<ModPath> =
        files.keys().filter(|p| !p.is_empty()).map(|p| p[..p.len() - 1].to_vec()).collect();
    for parent in parents {
        problems.extend(sibling_cycles(&parent, imports));
    }
    problems
}

/// Cycles among the children of `parent` (each child with everything below it), the parent's
/// own file left out.
fn sibling_cycles(parent: &ModPath, imports: &[Import]) -> Vec<String> {
    let child = |p: &ModPath| (p.len() > parent.len() && p.starts_with(parent)).then(|| p[parent.len()].clone());
    let mut edges: BTreeMap<String, BTreeMap<String, &Import>> = BTreeMap::new();
    for i in imports {
        if let (Some(a), Some(b)) = (child(&i.from), child(&i.to))
            && a != b
        {
            edges.entry(a).or_default().entry(b).or_insert(i);
        }
    }
    let graph: BTreeMap<String, BTreeSet<String>> =
        edges.iter().map(|(a, bs)| (a.clone(), bs.keys().cloned().collect())).collect();
    let what =
        if parent.is_empty() { "top-level modules".to_owned() } else { format!("the files of {}", parent.join("::")) };
    let mut out = Vec::new();
    for component in strongly_connected(&graph).into_iter().filter(|c| c.len() > 1) {
        let cycle = a_cycle(&component, &graph);
        let mut text = format!("cycle between {what}: {}", cycle.join(" → "));
        for pair in cycle.windows(2) {
            let i = edges[&pair[0]][&pair[1]];
            let _ = write!(text, "\n    {}:{}: {} imports {}", i.file.display(), i.line, pair[0], i.written);
        }
        if component.len() > cycle.len() - 1 {
            let _ =
                write!(text, "\n    (all tied together: {})", component.iter().cloned().collect::<Vec<_>>().join(", "));
        }
        out.push(text);
    }
    out
}

/// Tarjan's strongly connected components.
fn strongly_connected(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    struct State<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        out: Vec<BTreeSet<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            if !s.index.contains_key(w.as_str()) {
                visit(s, w);
                let low = s.low[v].min(s.low[w.as_str()]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w.as_str()) {
                let low = s.low[v].min(s.index[w.as_str()]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.insert(w.to_owned());
                if w == v {
                    break;
                }
            }
            s.out.push(component);
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// One cycle inside a strongly connected component, as a closed walk (first = last).
fn a_cycle(component: &BTreeSet<String>, graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let start = component.iter().next().unwrap().clone();
    // Breadth-first from start's successors back to start, inside the component.
    let mut previous: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start.clone()]);
    while let Some(v) = queue.pop_front() {
        for w in graph.get(&v).into_iter().flatten().filter(|w| component.contains(*w)) {
            if *w == start {
                let mut walk = vec![start.clone(), v.clone()];
                let mut at = v.clone();
                while let Some(p) = previous.get(&at) {
                    walk.push(p.clone());
                    at = p.clone();
                }
                walk.reverse();
                if walk.len() > 2 && walk[0] == walk[1] {
                    walk.remove(0);
                }
                return walk;
            }
            if !previous.contains_key(w) && *w != start {
                previous.insert(w.clone(), v.clone());
                queue.push_back(w.clone());
            }
        }
    }
    vec![start.clone(), start]
}

#[test]
fn a_cycle_is_reported_with_the_import_behind_each_step() {
    let import = |from: &str, to: &str, line| Import {
        from: vec![from.into()],
        file: PathBuf::from(format!("src/{from}.rs")),
        line,
        written: format!("crate::{to}::X"),
        to: vec![to.into()],
    };
    let imports = [import("a", "b", 3), import("b", "c", 5), import("c", "a", 7), import("c", "d", 9)];
    let problems = sibling_cycles(&Vec::new(), &imports);
    assert_eq!(problems.len(), 1, "{problems:?}");
    let text = &problems[0];
    assert!(text.starts_with("cycle between top-level modules: a → b → c → a"), "{text}");
    assert!(text.contains("src/c.rs:7: c imports crate::a::X"), "{text}");
}
