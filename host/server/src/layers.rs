//! The server's modules in layers (docs/ARCHITECTURE.md, "Inside the server"), checked: every
//! module's imports point to its own layer or one below, and no imports go round in a circle.
//! A new module must be given a layer here, so its place is decided once, on purpose.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Lowest first. A module may use its own layer (without a circle) and those below.
const LAYERS: &[&[&str]] = &[
    // Leaves: flags, limits, errors, small helpers.
    &[
        "config",
        "config_file",
        "etcd_flags",
        "limits",
        "error",
        "clock",
        "ids",
        "logs",
    ],
    // Checks, and what crosses between members.
    &["validate", "tokens", "auth", "wire"],
    // Raft as the member sees it; moving writes and reads.
    &[
        "cluster_view",
        "reconfig",
        "propose",
        "forward",
        "batch",
        "router",
    ],
    // The member.
    &["node"],
    // What runs on it.
    &[
        "watch",
        "lease",
        "plugin",
        "recipe",
        "auto_compact",
        "corrupt_check",
        "backup",
        "leader_ticks",
        "monitoring",
    ],
    // Edges: clients and other members come in here.
    &[
        "service",
        "member_calls",
        "gateway",
        "health",
        "pprof",
        "http_serve",
        "client_tls",
        "authority",
        "grpc_limit",
        "grpc_metrics",
    ],
    // A member's life.
    &["serve", "dev"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The crate modules `source` names (`crate::x`, `use crate::{x, y::z}`), outside its tests
/// and comments.
fn uses(source: &str) -> BTreeSet<String> {
    let code = source.split("#[cfg(test)]").next().unwrap_or_default();
    let code: String = code
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeSet::new();
    let word = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = group.split('}').next().unwrap_or_default();
            for item in group.split(',') {
                let name = word(item.trim());
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        } else {
            let name = word(rest);
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// Every top-level module of the crate with the modules it uses.
fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = vec![src.to_path_buf()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("a source dir") {
                files.push(entry.expect("a dir entry").path());
            }
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let relative = path.strip_prefix(src).expect("under src");
        let first = relative.components().next().expect("a component");
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if module == "lib" || module == "layers" {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("a source file");
        let used: BTreeSet<String> = uses(&source).into_iter().filter(|m| *m != module).collect();
        graph.entry(module).or_default().extend(used);
    }
    graph
}

/// A circle in `graph`, if there is one.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn imports_point_down_the_layers_and_never_in_a_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = imports(&src);
    let mut wrong = Vec::new();
    for (module, used) in &graph {
        let Some(mine) = layer_of(module) else {
            wrong.push(format!("{module} has no layer in layers.rs"));
            continue;
        };
        for other in used {
            match layer_of(other) {
                Some(theirs) if theirs > mine => wrong.push(format!(
                    "{module} (layer {}) uses {other} (layer {}), a layer above it",
                    mine + 1,
                    theirs + 1
                )),
                None => wrong.push(format!("{other} has no layer in layers.rs")),
                _ => {}
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(circle(&graph), None, "modules that import each other");
}

#[test]
fn the_check_sees_what_it_checks() {
    let used = uses(
        "use crate::error::X;\nuse crate::{node::Node, wire};\n// crate::serve\nfn f() { crate::ids::f() }\n#[cfg(test)]\nuse crate::dev;",
    );
    let expected: BTreeSet<String> = ["error", "node", "wire", "ids"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(used, expected);
    let graph: BTreeMap<String, BTreeSet<String>> =
        [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"])]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
            .collect();
    assert!(circle(&graph).is_some());
    // The crate itself: it has modules in every layer, so the check is not vacuous.
    let real = imports(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(real.len() > 30);
    assert!(real["node"].contains("wire"));
}
