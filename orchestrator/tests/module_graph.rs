//! Keeps `orchestrator/src` free of import cycles: reads every `crate::…`, `super::…` and
//! `self::…` path of every file (use declarations and paths inside code), resolves each to the
//! file that defines it (through the `pub use` re-exports of `mod.rs` files), and fails on a
//! cycle between top-level modules (folders such as `engine/`, or files such as `errors.rs`)
//! and on a cycle between files, naming the files and the imported names of every edge.
//!
//! Test modules (`#[cfg(test)] mod … { … }`) are left out: they may use anything. `lib.rs`
//! and `main.rs` only declare and re-export, so they are not nodes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path inside the crate: `["engine", "stage"]` for `src/engine/stage.rs`,
/// `["engine"]` for `src/engine/mod.rs`.
type ModPath = Vec<String>;

/// One parsed source file.
struct SourceFile {
    /// Its path relative to `src/`, for messages.
    rel: String,
    /// Its module path.
    module: ModPath,
    /// True for `mod.rs`, whose relative paths start at the module itself.
    is_mod_rs: bool,
    /// The source with comments, strings and test modules removed.
    code: String,
}

/// `pub use` re-exports: (module, name) -> the module that defines the name.
type Reexports = BTreeMap<(ModPath, String), ModPath>;

/// Glob re-exports (`pub use args::*`): module -> the modules it re-exports.
type Globs = BTreeMap<ModPath, Vec<ModPath>>;

/// Edges: importing module -> imported module -> the names imported that way.
type Edges = BTreeMap<ModPath, BTreeMap<ModPath, BTreeSet<String>>>;

#[test]
fn no_import_cycles_between_folders_or_files() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = ModuleGraph::read(&src);
    let problems = graph.cycles();
    assert!(
        problems.is_empty(),
        "import cycles in orchestrator/src:\n{}",
        problems.join("\n")
    );
}

/// The reader must see the edges it is meant to catch: a known import is found, with its name.
#[test]
fn the_reader_finds_use_groups_inline_paths_and_reexports() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = ModuleGraph::read(&src);
    let files = graph.file_edges();
    let from = |p: &str| -> ModPath { p.split('/').map(str::to_owned).collect() };
    // `use crate::engine::state::{Resolved, RunState};` in a group.
    let stage = &files[&from("engine/stage")];
    assert!(
        stage[&from("engine/state")].contains("RunState"),
        "{stage:?}"
    );
    // A re-export: `crate::config::CommandStage` is defined in `config/model.rs`.
    assert!(
        stage[&from("config/model")].contains("CommandStage"),
        "{stage:?}"
    );
    // An inline path in code: `crate::time::now()`.
    assert!(stage.contains_key(&from("time")), "{stage:?}");
    // Nothing from a string literal or a comment.
    assert!(cycles_in(&parse_one(
        "engine/x.rs",
        "// crate::a::b\nlet s = \"crate::c::d\";"
    ))
    .is_empty());
}

/// A back-edge added on purpose is reported with both files and the imported names.
#[test]
fn a_deliberate_back_edge_is_reported() {
    let mut files = vec![
        parse_one("engine/run.rs", "use crate::report::progress::Reporter;"),
        parse_one("report/progress.rs", "use crate::engine::run::execute;"),
    ];
    files.push(parse_one("report/mod.rs", "pub mod progress;"));
    files.push(parse_one("engine/mod.rs", "pub mod run;"));
    let graph = ModuleGraph { files };
    let problems = graph.cycles();
    let text = problems.join("\n");
    assert!(text.contains("engine -> report -> engine"), "{text}");
    assert!(
        text.contains("engine/run.rs uses report::progress::{Reporter}"),
        "{text}"
    );
    assert!(
        text.contains("report/progress.rs uses engine::run::{execute}"),
        "{text}"
    );
}

fn parse_one(rel: &str, text: &str) -> SourceFile {
    SourceFile::new(rel, text)
}

fn cycles_in(file: &SourceFile) -> Vec<String> {
    ModuleGraph {
        files: vec![SourceFile::new(&file.rel, &file.code)],
    }
    .cycles()
}

struct ModuleGraph {
    files: Vec<SourceFile>,
}

impl ModuleGraph {
    fn read(src: &Path) -> ModuleGraph {
        let mut paths = Vec::new();
        collect_rs(src, &mut paths);
        let files = paths
            .iter()
            .map(|p| {
                let rel = p
                    .strip_prefix(src)
                    .expect("walked under src")
                    .to_string_lossy()
                    .into_owned();
                let text = std::fs::read_to_string(p).expect("source files are UTF-8");
                SourceFile::new(&rel, &text)
            })
            .filter(|f| !f.module.is_empty())
            .collect();
        ModuleGraph { files }
    }

    fn modules(&self) -> BTreeSet<ModPath> {
        self.files.iter().map(|f| f.module.clone()).collect()
    }

    /// `pub use` re-exports of each `mod.rs`: (module, name) -> the module that defines it, and
    /// each `mod.rs`'s glob re-exports.
    fn reexports(&self) -> (Reexports, Globs) {
        let modules = self.modules();
        let mut names = BTreeMap::new();
        let mut globs: BTreeMap<ModPath, Vec<ModPath>> = BTreeMap::new();
        for f in self.files.iter().filter(|f| f.is_mod_rs) {
            for stmt in use_statements(&f.code, true) {
                for path in expand_tree(&stmt) {
                    let abs = f.absolute(&path);
                    let Some(last) = abs.last() else { continue };
                    let (module, _) = longest_module(&modules, &abs);
                    if last == "*" {
                        globs.entry(f.module.clone()).or_default().push(module);
                    } else {
                        names.insert((f.module.clone(), last.clone()), module);
                    }
                }
            }
        }
        (names, globs)
    }

    /// File-level edges, with the names imported, re-exports resolved.
    fn file_edges(&self) -> Edges {
        let modules = self.modules();
        let (names, globs) = self.reexports();
        let mut edges: Edges = BTreeMap::new();
        for f in &self.files {
            let out = edges.entry(f.module.clone()).or_default();
            for path in f.paths() {
                let (mut module, rest) = longest_module(&modules, &path);
                let name = rest.first().cloned().unwrap_or_else(|| "self".into());
                if let Some(def) = names.get(&(module.clone(), name.clone())) {
                    module = def.clone();
                } else if let Some(sources) = globs.get(&module) {
                    // A glob re-export: the name is in one of the sources; import them all.
                    for s in sources {
                        if *s != f.module {
                            out.entry(s.clone()).or_default().insert(name.clone());
                        }
                    }
                    continue;
                }
                if module != f.module && !module.is_empty() {
                    out.entry(module)
                        .or_default()
                        .insert(rest.join("::").if_empty("self"));
                }
            }
        }
        // `mod.rs` files only declare and re-export: their re-export edges are resolved above,
        // so they are not nodes of their own unless something could not be resolved.
        edges
    }

    /// Every cycle, between top-level modules and between files, as messages.
    fn cycles(&self) -> Vec<String> {
        let files = self.file_edges();
        let rel: BTreeMap<ModPath, String> = self
            .files
            .iter()
            .map(|f| (f.module.clone(), f.rel.clone()))
            .collect();
        let mut problems = Vec::new();
        // Folders: `engine` -> `report` when any file of engine/ imports from report/.
        let mut top: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
        for (from, tos) in &files {
            for (to, names) in tos {
                let (a, b) = (&from[0], &to[0]);
                if a != b {
                    let example = format!(
                        "{} uses {}::{{{}}}",
                        rel.get(from).map_or("?", String::as_str),
                        to.join("::"),
                        names.iter().cloned().collect::<Vec<_>>().join(", ")
                    );
                    top.entry(a.clone())
                        .or_default()
                        .entry(b.clone())
                        .or_default()
                        .push(example);
                }
            }
        }
        for cycle in find_cycles(&top) {
            let mut text = format!("cycle between folders: {}", cycle.join(" -> "));
            for w in cycle.windows(2) {
                for example in &top[&w[0]][&w[1]] {
                    text.push_str(&format!("\n  {example}"));
                }
            }
            problems.push(text);
        }
        let by_file: BTreeMap<String, BTreeMap<String, Vec<String>>> = files
            .iter()
            .map(|(from, tos)| {
                let f = rel.get(from).cloned().unwrap_or_else(|| from.join("/"));
                let t = tos
                    .iter()
                    .map(|(to, names)| {
                        let t = rel.get(to).cloned().unwrap_or_else(|| to.join("/"));
                        (t, names.iter().cloned().collect())
                    })
                    .collect();
                (f, t)
            })
            .collect();
        for cycle in find_cycles(&by_file) {
            let mut text = format!("cycle between files: {}", cycle.join(" -> "));
            for w in cycle.windows(2) {
                let names = &by_file[&w[0]][&w[1]];
                text.push_str(&format!("\n  {} uses {}", w[0], names.join(", ")));
            }
            problems.push(text);
        }
        problems
    }
}

trait IfEmpty {
    fn if_empty(self, default: &str) -> String;
}

impl IfEmpty for String {
    fn if_empty(self, default: &str) -> String {
        if self.is_empty() {
            default.to_owned()
        } else {
            self
        }
    }
}

impl SourceFile {
    fn new(rel: &str, text: &str) -> SourceFile {
        let parts: Vec<&str> = rel.trim_end_matches(".rs").split('/').collect();
        let (module, is_mod_rs) = match parts.as_slice() {
            ["lib"] | ["main"] => (Vec::new(), false),
            [dirs @ .., "mod"] => (dirs.iter().map(|s| (*s).to_owned()).collect(), true),
            all => (all.iter().map(|s| (*s).to_owned()).collect(), false),
        };
        SourceFile {
            rel: rel.to_owned(),
            module,
            is_mod_rs,
            code: strip_test_modules(&strip_comments_and_strings(text)),
        }
    }

    /// Every path this file names that starts at `crate`, `super` or `self`, made absolute.
    fn paths(&self) -> Vec<ModPath> {
        let mut out = Vec::new();
        for stmt in use_statements(&self.code, false) {
            for p in expand_tree(&stmt) {
                out.push(self.absolute(&p));
            }
        }
        // Paths in code (`crate::time::now()`): each `crate::`/`super::` not inside a `use`.
        let code = remove_use_statements(&self.code);
        for start in ["crate::", "super::"] {
            let mut at = 0;
            while let Some(i) = code[at..].find(start) {
                let i = at + i;
                at = i + start.len();
                if i > 0 && is_ident_char(code.as_bytes()[i - 1] as char) {
                    continue;
                }
                let path: Vec<String> = read_path(&code[i..]);
                out.push(self.absolute(&path));
            }
        }
        out.retain(|p| !p.is_empty());
        out
    }

    /// Resolves `crate::a::b`, `super::b`, `self::b` and (in `mod.rs`) `child::b`.
    fn absolute(&self, path: &[String]) -> ModPath {
        let mut base: ModPath = match path.first().map(String::as_str) {
            Some("crate") => Vec::new(),
            Some("super") | Some("self") => {
                // The module whose file this is: `super` of `engine/stage.rs` is `engine`.
                let mut m = self.module.clone();
                if path[0] == "super" {
                    m.pop();
                }
                m
            }
            // A relative path in a `mod.rs` (`pub use model::Config`): a child module.
            Some(_) if self.is_mod_rs => {
                let mut m = self.module.clone();
                m.extend(path.iter().cloned());
                return m;
            }
            _ => return Vec::new(),
        };
        let mut rest = &path[1..];
        while rest.first().map(String::as_str) == Some("super") {
            base.pop();
            rest = &rest[1..];
        }
        base.extend(rest.iter().cloned());
        base
    }
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("src is readable")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect_rs(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The longest prefix of `path` that is a module, and the rest.
fn longest_module(modules: &BTreeSet<ModPath>, path: &[String]) -> (ModPath, Vec<String>) {
    for n in (1..=path.len()).rev() {
        if modules.contains(&path[..n].to_vec()) {
            return (path[..n].to_vec(), path[n..].to_vec());
        }
    }
    (Vec::new(), path.to_vec())
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Reads `a::b::c` from the start of `text` (stops before `{`, `(`, `<`, spaces, …).
fn read_path(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        let end = rest.find(|c: char| !is_ident_char(c)).unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        out.push(rest[..end].to_owned());
        rest = &rest[end..];
        match rest.strip_prefix("::") {
            Some(r) if r.starts_with(|c: char| is_ident_char(c)) => rest = r,
            _ => break,
        }
    }
    out
}

/// The trees of `use` declarations (`crate::a::{b, c::d}`), without `use` and `;`. With
/// `only_pub`, only `pub use` (re-exports).
fn use_statements(code: &str, only_pub: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = code[at..].find("use ") {
        let i = at + i;
        at = i + 4;
        let before = &code[..i];
        if i > 0 && is_ident_char(code.as_bytes()[i - 1] as char) {
            continue;
        }
        let is_pub = before.trim_end().ends_with("pub") || before.trim_end().ends_with(')');
        if only_pub && !is_pub {
            continue;
        }
        if let Some(end) = code[at..].find(';') {
            out.push(
                code[at..at + end]
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            );
            at += end;
        }
    }
    out
}

fn remove_use_statements(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut at = 0;
    while let Some(i) = code[at..].find("use ") {
        let i = at + i;
        if i > 0 && is_ident_char(code.as_bytes()[i - 1] as char) {
            out.push_str(&code[at..i + 4]);
            at = i + 4;
            continue;
        }
        out.push_str(&code[at..i]);
        at = code[i..].find(';').map_or(code.len(), |e| i + e + 1);
    }
    out.push_str(&code[at..]);
    out
}

/// Expands a use tree: `crate::a::{b, c::{d, e as f}, self}` -> `crate::a::b`, `crate::a::c::d`,
/// `crate::a::c::e`, `crate::a`.
fn expand_tree(tree: &str) -> Vec<Vec<String>> {
    fn go(prefix: &[String], tree: &str, out: &mut Vec<Vec<String>>) {
        let tree = tree.trim();
        if tree.is_empty() {
            return;
        }
        if let Some(open) = tree.find('{') {
            let head: Vec<String> = tree[..open]
                .split("::")
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            let mut base = prefix.to_vec();
            base.extend(head);
            let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
            let mut depth = 0;
            let mut part = String::new();
            for c in inner.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if c == ',' && depth == 0 {
                    go(&base, &part, out);
                    part.clear();
                } else {
                    part.push(c);
                }
            }
            go(&base, &part, out);
            return;
        }
        let tree = tree.split(" as ").next().unwrap_or(tree);
        let mut path = prefix.to_vec();
        for seg in tree.split("::").map(str::trim).filter(|s| !s.is_empty()) {
            if seg != "self" {
                path.push(seg.to_owned());
            }
        }
        out.push(path);
    }
    let mut out = Vec::new();
    go(&[], tree, &mut out);
    out
}

/// Replaces comments and the contents of string and char literals with spaces.
fn strip_comments_and_strings(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !(i > 0 && is_ident_char(b[i - 1]))
        {
            // Raw string r#"…"#: skip to the closing quote with as many hashes.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a): only literals are skipped.
            let close = (i + 2..(i + 12).min(b.len())).find(|&j| b[j] == '\'');
            match close {
                Some(j) if b[i + 1] == '\\' || j == i + 2 => {
                    out.push_str("' '");
                    i = j + 1;
                }
                _ => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Removes `#[cfg(test)] mod name { … }` blocks.
fn strip_test_modules(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(i) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..i]);
        let after = &rest[i + "#[cfg(test)]".len()..];
        let t = after.trim_start();
        if t.starts_with("mod ") {
            if let Some(open) = t.find('{') {
                if t[..open].contains(';') {
                    // `mod tests;` declared out of line: keep scanning after it.
                    rest = &t[t.find(';').map_or(t.len(), |s| s + 1)..];
                    continue;
                }
                let mut depth = 0;
                let mut end = t.len();
                for (j, c) in t[open..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = open + j + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                rest = &t[end..];
                continue;
            }
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// One cycle per strongly connected component with more than one node, spelled `a -> b -> a`.
fn find_cycles<V>(edges: &BTreeMap<String, BTreeMap<String, V>>) -> Vec<Vec<String>> {
    let nodes: BTreeSet<&String> = edges
        .keys()
        .chain(edges.values().flat_map(|m| m.keys()))
        .collect();
    let mut cycles = Vec::new();
    let mut reported: BTreeSet<String> = BTreeSet::new();
    for start in nodes {
        if reported.contains(start) {
            continue;
        }
        // Shortest path back to `start` (BFS), if any.
        let mut prev: BTreeMap<&String, &String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut found = None;
        while let Some(n) = queue.pop_front() {
            for next in edges.get(n).into_iter().flat_map(|m| m.keys()) {
                if next == start {
                    found = Some(n);
                    break;
                }
                if !prev.contains_key(next) {
                    prev.insert(next, n);
                    queue.push_back(next);
                }
            }
            if found.is_some() {
                break;
            }
        }
        if let Some(last) = found {
            let mut path = vec![last.clone()];
            let mut at = last;
            while at != start {
                at = prev[at];
                path.push(at.clone());
            }
            path.reverse();
            path.push(start.clone());
            reported.extend(path.iter().cloned());
            cycles.push(path);
        }
    }
    cycles
}
