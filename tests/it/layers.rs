//! The crate's module import graph: read from `src/` as text, so that the layering described
//! in docs/architecture.md stays true.
//!
//! Every file's references to other modules are collected (`use` trees and inline paths that
//! start with `crate::`, `super::`, `self::` or a child module's name; comments, strings and
//! `#[cfg(test)]` modules are skipped) and each one is resolved to the deepest module file it
//! names. Then:
//!
//! 1. the top-level modules call only downwards through [`LAYERS`];
//! 2. at every level of the tree, the sibling modules (each with everything below it) form no
//!    cycle;
//! 3. inside a directory module, its own file (`mod.rs`) is one more node of that graph (its
//!    children do not call back into it), except for the [`HUBS`].
//!
//! The checks are tested on small trees with a deliberate cycle, so that they cannot pass by
//! reading nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The top-level modules from top to bottom; a module may use modules of its own layer or of
/// layers below. `crate` (lib.rs: the version constants) is below everything.
const LAYERS: &[&[&str]] = &[
    &["server", "cli", "logging", "admin"],
    &["app"],
    &["transport"],
    &["protocols", "viewer"],
    &["render", "open_image"],
    &["shared", "health"],
    &["cache", "pipeline", "view"],
    &["source", "encode"],
    &["storage"],
    &[
        "config", "http", "image", "error", "text", "metrics", "schedule", "openjpeg",
    ],
];

/// Directory modules whose `mod.rs` holds the trait and types its children implement and use,
/// and also dispatches to them (the encoder, source and pipeline traits and their
/// implementations; logging's sinks; storage's `Blob` and its local and remote readers;
/// render's tile work and the helpers its region exports share). Their children may use their
/// parent; siblings still may not call each other in a circle.
const HUBS: &[&str] = &[
    "encode", "source", "pipeline", "logging", "storage", "render",
];

type Module = Vec<String>;

fn name(m: &[String]) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

/// Every module file below `src`: its module path and text (`lib.rs` is the crate root;
/// `main.rs`, a separate crate, is left out).
fn modules(src: &Path) -> BTreeMap<Module, String> {
    fn walk(dir: &Path, src: &Path, out: &mut BTreeMap<Module, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.path());
        for e in entries {
            let path = e.path();
            if path.is_dir() {
                walk(&path, src, out);
                continue;
            }
            if path.extension().and_then(|x| x.to_str()) != Some("rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut m: Module = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if m.last().is_some_and(|l| l == "mod") {
                m.pop();
            }
            if m == ["main"] {
                continue;
            }
            if m == ["lib"] {
                m.clear();
            }
            out.insert(m, std::fs::read_to_string(&path).unwrap());
        }
    }
    let mut out = BTreeMap::new();
    walk(src, src, &mut out);
    out
}

/// The text without comments, with string and character literals emptied.
fn strip(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |e| e + 2);
        } else if let Some(hashes) = raw_string_start(rest) {
            let close = format!("\"{}", "#".repeat(hashes));
            let body = &rest[2 + hashes..];
            i += 2 + hashes + body.find(&close).map_or(body.len(), |e| e + close.len());
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            i = j + 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' {
            // A character literal ('x', '\n', '\u{..}') or a lifetime ('a).
            let close = if rest[1..].starts_with('\\') {
                rest[2..].find('\'').map(|e| e + 2)
            } else {
                rest[1..]
                    .char_indices()
                    .nth(1)
                    .filter(|&(_, c)| c == '\'')
                    .map(|(e, _)| e + 1)
            };
            match close {
                Some(e) => {
                    i += e + 1;
                    out.push_str("' '");
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// `r"`, `r#"`, `br"`…: the number of `#`s of a raw string starting here.
fn raw_string_start(rest: &str) -> Option<usize> {
    let rest = rest.strip_prefix('b').unwrap_or(rest);
    let after = rest.strip_prefix('r')?;
    let hashes = after.len() - after.trim_start_matches('#').len();
    after[hashes..].starts_with('"').then_some(hashes)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Path,
    Open,
    Close,
    Comma,
    Semi,
    Hash,
    Other,
}

fn tokens(code: &str) -> Vec<Token> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Token::Ident(code[start..i].to_string()));
            continue;
        }
        out.push(match c {
            b':' if b.get(i + 1) == Some(&b':') => {
                i += 1;
                Token::Path
            }
            b'{' => Token::Open,
            b'}' => Token::Close,
            b',' => Token::Comma,
            b';' => Token::Semi,
            b'#' => Token::Hash,
            c if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            _ => Token::Other,
        });
        i += 1;
    }
    out
}

fn is_ident(t: Option<&Token>, word: &str) -> bool {
    matches!(t, Some(Token::Ident(w)) if w == word)
}

/// The tokens without `#[cfg(test)]` items (a test module block, or a `mod x;` of a test
/// file), and the names of the non-test child modules declared here.
fn without_tests(toks: Vec<Token>) -> (Vec<Token>, BTreeSet<String>) {
    let mut out = Vec::new();
    let mut children = BTreeSet::new();
    let mut i = 0;
    while i < toks.len() {
        // `#`, `[`, `cfg`, `(`, `test`, `)`, `]` are `Hash Other Ident Other Ident Other Other`.
        let cfg_test = toks[i] == Token::Hash
            && is_ident(toks.get(i + 2), "cfg")
            && is_ident(toks.get(i + 4), "test")
            && toks.get(i + 6) == Some(&Token::Other);
        if cfg_test {
            // Skip the item: up to its `;`, or its balanced `{ … }`.
            let mut j = i + 7;
            while j < toks.len() && toks[j] != Token::Semi && toks[j] != Token::Open {
                j += 1;
            }
            if toks.get(j) == Some(&Token::Open) {
                let mut depth = 0;
                while j < toks.len() {
                    match toks[j] {
                        Token::Open => depth += 1,
                        Token::Close => depth -= 1,
                        _ => {}
                    }
                    j += 1;
                    if depth == 0 {
                        break;
                    }
                }
            } else {
                j += 1;
            }
            i = j;
            continue;
        }
        if is_ident(Some(&toks[i]), "mod") && toks.get(i + 2) == Some(&Token::Semi) {
            if let Some(Token::Ident(child)) = toks.get(i + 1) {
                children.insert(child.clone());
            }
        }
        out.push(toks[i].clone());
        i += 1;
    }
    (out, children)
}

/// The paths of a `use` tree starting at `toks[*i]`, up to its `;`.
fn use_tree(toks: &[Token], i: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let mut path = prefix.to_vec();
    while *i < toks.len() {
        match &toks[*i] {
            Token::Ident(w) if w == "as" => {
                *i += 2;
                continue;
            }
            Token::Ident(w) => path.push(w.clone()),
            Token::Path => {}
            Token::Open => {
                *i += 1;
                use_tree(toks, i, &path, out);
                path.truncate(prefix.len());
                continue;
            }
            Token::Comma => {
                out.push(std::mem::replace(&mut path, prefix.to_vec()));
            }
            Token::Close => {
                out.push(path);
                *i += 1;
                return;
            }
            Token::Semi => break,
            _ => {}
        }
        *i += 1;
    }
    out.push(path);
}

/// The modules a file refers to.
fn references(here: &Module, text: &str, mods: &BTreeMap<Module, String>) -> BTreeSet<Module> {
    let (toks, children) = without_tests(tokens(&strip(text)));
    let mut paths = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if is_ident(Some(&toks[i]), "use") {
            i += 1;
            use_tree(&toks, &mut i, &[], &mut paths);
            continue;
        }
        if let Token::Ident(first) = &toks[i] {
            if toks.get(i + 1) == Some(&Token::Path) && (i == 0 || toks[i - 1] != Token::Path) {
                let mut path = vec![first.clone()];
                let mut j = i + 1;
                while toks.get(j) == Some(&Token::Path) {
                    match toks.get(j + 1) {
                        Some(Token::Ident(w)) => path.push(w.clone()),
                        _ => break,
                    }
                    j += 2;
                }
                paths.push(path);
                i = j;
                continue;
            }
        }
        i += 1;
    }
    let mut out = BTreeSet::new();
    for path in paths {
        let Some(first) = path.first() else { continue };
        let absolute: Module = match first.as_str() {
            "crate" => path[1..].to_vec(),
            "self" => here.iter().chain(&path[1..]).cloned().collect(),
            "super" => {
                let ups = path.iter().take_while(|p| *p == "super").count();
                let base = &here[..here.len().saturating_sub(ups)];
                base.iter().chain(&path[ups..]).cloned().collect()
            }
            child if children.contains(child) => here.iter().chain(&path).cloned().collect(),
            _ => continue,
        };
        let target = (0..=absolute.len())
            .rev()
            .map(|n| absolute[..n].to_vec())
            .find(|m| mods.contains_key(m));
        if let Some(target) = target.filter(|t| t != here) {
            out.insert(target);
        }
    }
    out
}

/// Module → the modules it refers to, for every module that is not compiled for tests only.
fn graph(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let mods = modules(src);
    let mut test_only = BTreeSet::new();
    for (m, text) in &mods {
        let all: BTreeSet<String> = tokens(&strip(text))
            .windows(3)
            .filter_map(|w| match w {
                [Token::Ident(k), Token::Ident(child), Token::Semi] if k == "mod" => {
                    Some(child.clone())
                }
                _ => None,
            })
            .collect();
        let (_, kept) = without_tests(tokens(&strip(text)));
        for child in all.difference(&kept) {
            test_only.insert([m.clone(), vec![child.clone()]].concat());
        }
    }
    let tested = |m: &Module| test_only.iter().any(|t| m.starts_with(t));
    mods.iter()
        .filter(|(m, _)| !tested(m))
        .map(|(m, text)| (m.clone(), references(m, text, &mods)))
        .collect()
}

/// The cycles of a directed graph: each set of more than one node that all reach each other.
fn cycles<N: Ord + Clone>(edges: &BTreeMap<N, BTreeSet<N>>) -> Vec<Vec<N>> {
    let reach = |start: &N| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![start.clone()];
        while let Some(n) = stack.pop() {
            for m in edges.get(&n).into_iter().flatten() {
                if seen.insert(m.clone()) {
                    stack.push(m.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<N, BTreeSet<N>> = edges.keys().map(|n| (n.clone(), reach(n))).collect();
    let mut out: Vec<Vec<N>> = Vec::new();
    for (n, r) in &reaches {
        if !r.contains(n) || out.iter().any(|c| c.contains(n)) {
            continue;
        }
        let component: Vec<N> = r
            .iter()
            .filter(|m| reaches.get(*m).is_some_and(|back| back.contains(n)))
            .cloned()
            .collect();
        out.push(component);
    }
    out
}

/// The violations of rules 2 and 3: for each directory module, the cycles among its children
/// (and its own file, unless it is a hub), with the file-level references that make them.
fn layering_cycles(edges: &BTreeMap<Module, BTreeSet<Module>>, hubs: &[&str]) -> Vec<String> {
    // Per directory: node `None` is its own file, `Some(child)` a child's subtree.
    type Level = BTreeMap<Option<String>, BTreeSet<Option<String>>>;
    let mut levels: BTreeMap<Module, Level> = BTreeMap::new();
    let mut why: BTreeMap<(Module, Option<String>, Option<String>), Vec<String>> = BTreeMap::new();
    for (a, targets) in edges {
        for b in targets {
            let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
            let dir = a[..common].to_vec();
            let side = |m: &Module| m.get(common).cloned();
            let (from, to) = (side(a), side(b));
            if (from.is_none() || to.is_none()) && hubs.contains(&name(&dir).as_str()) {
                continue;
            }
            levels
                .entry(dir.clone())
                .or_default()
                .entry(from.clone())
                .or_default()
                .insert(to.clone());
            why.entry((dir, from, to))
                .or_default()
                .push(format!("{} -> {}", name(a), name(b)));
        }
    }
    let mut out = Vec::new();
    for (dir, level) in &levels {
        for cycle in cycles(level) {
            let shown = |n: &Option<String>| match n {
                None => format!("{} (its own file)", name(dir)),
                Some(c) => name(&[dir.clone(), vec![c.clone()]].concat()),
            };
            let mut text = format!(
                "cycle among {}:",
                cycle.iter().map(shown).collect::<Vec<_>>().join(", ")
            );
            for from in &cycle {
                for to in level.get(from).into_iter().flatten() {
                    if cycle.contains(to) {
                        for r in &why[&(dir.clone(), from.clone(), to.clone())] {
                            text.push_str(&format!("\n    {r}"));
                        }
                    }
                }
            }
            out.push(text);
        }
    }
    out
}

/// The violations of rule 1: top-level references to a higher layer.
fn upward_references(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<String> {
    let layer = |m: &str| LAYERS.iter().position(|l| l.contains(&m));
    let mut out = Vec::new();
    for (a, targets) in edges {
        for b in targets {
            let (Some(ta), Some(tb)) = (a.first(), b.first()) else {
                continue; // the crate root (lib.rs) is below everything
            };
            if ta == tb {
                continue;
            }
            match (layer(ta), layer(tb)) {
                (Some(la), Some(lb)) if lb >= la => {}
                (None, _) | (_, None) => out.push(format!(
                    "{} -> {}: `{}` or `{}` is missing from LAYERS",
                    name(a),
                    name(b),
                    ta,
                    tb
                )),
                _ => out.push(format!(
                    "{} -> {}: `{ta}` calls up into `{tb}` (move one in LAYERS if intended)",
                    name(a),
                    name(b)
                )),
            }
        }
    }
    out
}

#[test]
fn module_imports_go_downwards_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = graph(&src);
    // The reader sees the layers it is meant to see (it cannot pass by reading nothing).
    let app = &edges[&vec!["app".to_string()]];
    assert!(app.contains(&vec!["protocols".to_string()]), "{app:?}");
    let session = &edges[&["protocols", "iip", "session"].map(String::from).to_vec()];
    assert!(
        session.contains(
            &["protocols", "iip", "parameters"]
                .map(String::from)
                .to_vec()
        ),
        "{session:?}"
    );
    let mut problems = upward_references(&edges);
    problems.extend(layering_cycles(&edges, HUBS));
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// A tree of files in a temporary directory.
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

#[test]
fn a_top_level_cycle_is_found() {
    let dir = tree(&[
        ("lib.rs", "pub mod render;\npub mod protocols;\n"),
        (
            "render.rs",
            "use crate::protocols::iip::{OpenImage, ViewSource};\n",
        ),
        (
            "protocols/mod.rs",
            "pub mod iip;\npub fn respond() { crate::render::tile(); }\n",
        ),
        ("protocols/iip.rs", "pub struct OpenImage;\n"),
    ]);
    let edges = graph(dir.path());
    let found = layering_cycles(&edges, &[]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("render -> protocols::iip"),
        "{}",
        found[0]
    );
    assert!(found[0].contains("protocols -> render"), "{}", found[0]);
    // render is below protocols: the upward reference is named too.
    let upward = upward_references(&edges);
    assert!(
        upward
            .iter()
            .any(|u| u.starts_with("render -> protocols::iip")),
        "{upward:?}"
    );
}

#[test]
fn a_parent_and_child_calling_each_other_is_found_unless_a_hub() {
    let dir = tree(&[
        ("lib.rs", "pub mod protocols;\n"),
        (
            "protocols/mod.rs",
            "mod iip;\nmod error;\n/// crate::nothing\npub fn respond() { iip::run() }\n",
        ),
        (
            "protocols/iip.rs",
            "use super::{error::line, respond as r};\nfn f() { let s = \"crate::x\"; }\n",
        ),
        (
            "protocols/error.rs",
            "#[cfg(test)]\nmod tests {\n    use crate::protocols::iip::run;\n}\n",
        ),
    ]);
    let edges = graph(dir.path());
    let found = layering_cycles(&edges, &[]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("protocols -> protocols::iip"),
        "{}",
        found[0]
    );
    assert!(
        found[0]
            .lines()
            .any(|l| l.trim() == "protocols::iip -> protocols"),
        "{}",
        found[0]
    );
    // Comments, strings and test modules are not references.
    assert!(
        !edges[&vec!["protocols".to_string(), "error".to_string()]]
            .contains(&vec!["protocols".to_string(), "iip".to_string()])
    );
    assert!(layering_cycles(&edges, &["protocols"]).is_empty());
}

#[test]
fn sibling_cycles_are_found_in_hubs_too() {
    let dir = tree(&[
        ("lib.rs", "pub mod source;\n"),
        (
            "source/mod.rs",
            "pub mod tiff;\npub mod jp2;\npub trait S {}\n",
        ),
        ("source/tiff.rs", "use super::S;\nuse super::jp2::decode;\n"),
        (
            "source/jp2.rs",
            "pub fn decode() { super::tiff::read(); }\n",
        ),
    ]);
    let found = layering_cycles(&graph(dir.path()), &["source"]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("source::jp2 -> source::tiff"),
        "{}",
        found[0]
    );
}
