//! What each source file of the library imports, for the layer check (`tests/it/layers.rs`).
//!
//! The module tree is followed from `src/lib.rs` (`#[path]` attributes included); each file is
//! stripped of comments and literals and tokenized, and its imports collected: `crate::…`
//! paths anywhere, `super::…` and `self::…` paths resolved from the module they are written in
//! (inline `mod tests { … }` blocks counted as the file that holds them), and the groups of
//! `use crate::{a, b::{c, d}}`. Each resolves to the file module it names (the longest module
//! path that is a file).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path below the crate root (`["log", "txn"]`); empty for `src/lib.rs`.
pub type ModPath = Vec<String>;

/// One import: which file, where, and the path as written.
#[derive(Debug, Clone)]
pub struct Import {
    /// The file module that imports.
    pub from: ModPath,
    /// Its file, relative to the crate.
    pub file: PathBuf,
    pub line: usize,
    /// The path as written (`crate::log::Txn`).
    pub written: String,
    /// The file module it names.
    pub to: ModPath,
}

/// Every file module of the library, by module path, found by following `mod` declarations
/// from `src/lib.rs`.
pub fn module_files(src: &Path) -> BTreeMap<ModPath, PathBuf> {
    let mut out = BTreeMap::new();
    let mut queue = vec![(Vec::new(), src.join("lib.rs"))];
    while let Some((path, file)) = queue.pop() {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let tokens = tokenize(&clean(&text));
        let dir = file.parent().expect("a file in a directory").to_path_buf();
        let stem = file.file_stem().and_then(|s| s.to_str()).expect("a UTF-8 file name").to_owned();
        let mod_rs = matches!(stem.as_str(), "lib" | "mod" | "main");
        for (name, attr_path) in declared_files(&text, &tokens) {
            let child = match attr_path {
                Some(p) => dir.join(p),
                None => {
                    let base = if mod_rs { dir.clone() } else { dir.join(&stem) };
                    let flat = base.join(format!("{name}.rs"));
                    if flat.exists() { flat } else { base.join(&name).join("mod.rs") }
                }
            };
            let mut child_path = path.clone();
            child_path.push(name);
            queue.push((child_path, child));
        }
        out.insert(path, file);
    }
    out
}

/// `mod name;` declarations at the top level of a file, with their `#[path]` if any.
fn declared_files(text: &str, tokens: &[Token]) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate() {
        match t.text.as_str() {
            "{" => depth += 1,
            "}" => depth = depth.saturating_sub(1),
            "mod" if depth == 0 => {
                if let (Some(name), Some(end)) = (tokens.get(i + 1), tokens.get(i + 2))
                    && end.text == ";"
                {
                    out.push((name.text.clone(), path_attribute(text, t.offset)));
                }
            }
            _ => {}
        }
    }
    out
}

/// The `#[path = "…"]` in the attributes just before `offset` (the `mod` keyword), if any.
fn path_attribute(text: &str, offset: usize) -> Option<String> {
    let before = &text[..offset];
    let start = before.rfind([';', '}'])?;
    let attrs = &before[start..];
    let at = attrs.find("#[path")?;
    let quoted = &attrs[at..];
    let open = quoted.find('"')? + 1;
    let close = quoted[open..].find('"')? + open;
    Some(quoted[open..close].to_owned())
}

/// A token of cleaned source: an identifier, `::`, or one punctuation character.
#[derive(Debug, Clone)]
struct Token {
    text: String,
    line: usize,
    offset: usize,
}

/// The source with comments and the contents of string and character literals blanked out
/// (newlines kept, so line numbers and offsets still match).
fn clean(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char, out: &mut String| {
        if c == '\n' {
            out.push('\n');
        } else {
            (0..c.len_utf8()).for_each(|_| out.push(' '));
        }
    };
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let prev = if i > 0 { Some(chars[i - 1]) } else { None };
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                blank(chars[i], &mut out);
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    blank(chars[i], &mut out);
                    blank(chars[i + 1], &mut out);
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    blank(chars[i], &mut out);
                    blank(chars[i + 1], &mut out);
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(chars[i], &mut out);
                    i += 1;
                }
            }
        } else if c == 'r' && (matches!(prev, Some('b' | 'c')) || !prev.is_some_and(ident)) {
            // A raw string `r#"…"#` (or `br"…"`), else an identifier starting with r.
            let mut j = i + 1;
            while chars.get(j) == Some(&'#') {
                j += 1;
            }
            if chars.get(j) == Some(&'"') {
                let hashes = j - i - 1;
                out.push('r');
                (i + 1..=j).for_each(|k| blank(chars[k], &mut out));
                i = j + 1;
                while i < chars.len() {
                    if chars[i] == '"' && (1..=hashes).all(|h| chars.get(i + h) == Some(&'#')) {
                        (i..=i + hashes).for_each(|k| blank(chars[k], &mut out));
                        i += hashes + 1;
                        break;
                    }
                    blank(chars[i], &mut out);
                    i += 1;
                }
            } else {
                out.push(c);
                i += 1;
            }
        } else if c == '"' {
            blank(c, &mut out);
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    blank(chars[i], &mut out);
                    i += 1;
                }
                if i < chars.len() {
                    blank(chars[i], &mut out);
                    i += 1;
                }
            }
            if i < chars.len() {
                blank(chars[i], &mut out);
                i += 1;
            }
        } else if c == '\'' && (next == Some('\\') || chars.get(i + 2) == Some(&'\'')) {
            // A character literal (a lifetime has no closing quote).
            blank(c, &mut out);
            i += 1;
            if chars.get(i) == Some(&'\\') {
                blank(chars[i], &mut out);
                i += 1;
            }
            while i < chars.len() && chars[i] != '\'' {
                blank(chars[i], &mut out);
                i += 1;
            }
            if i < chars.len() {
                blank(chars[i], &mut out);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn tokenize(cleaned: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut line = 1;
    let bytes = cleaned.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'\n' {
            line += 1;
            i += 1;
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] >= 0x80) {
                i += 1;
            }
            out.push(Token { text: cleaned[start..i].to_owned(), line, offset: start });
        } else if c == b':' && bytes.get(i + 1) == Some(&b':') {
            out.push(Token { text: "::".into(), line, offset: i });
            i += 2;
        } else {
            out.push(Token { text: (c as char).to_string(), line, offset: i });
            i += 1;
        }
    }
    out
}

/// Every import of every file, resolved to the file module it names.
pub fn collect_imports(src: &Path, files: &BTreeMap<ModPath, PathBuf>) -> Vec<Import> {
    let mut out = Vec::new();
    for (module, file) in files {
        let text = std::fs::read_to_string(file).unwrap();
        let tokens = tokenize(&clean(&text));
        let relative = file.strip_prefix(src.parent().unwrap()).unwrap().to_path_buf();
        for (scope, line, written, absolute) in paths_in(module, &tokens, files) {
            let Some(to) = file_of(&absolute, files) else { continue };
            out.push(Import { from: scope_file(&scope, files), file: relative.clone(), line, written, to });
        }
    }
    out
}

/// The file module holding module path `scope` (an inline module counts as its file).
fn scope_file(scope: &ModPath, files: &BTreeMap<ModPath, PathBuf>) -> ModPath {
    file_of(scope, files).expect("every scope is in a file")
}

/// The longest file module that is a prefix of `path`.
fn file_of(path: &ModPath, files: &BTreeMap<ModPath, PathBuf>) -> Option<ModPath> {
    (0..=path.len()).rev().map(|n| path[..n].to_vec()).find(|p| files.contains_key(p))
}

/// The crate-relative paths a file names: (the module the path is written in, line, the path
/// as written, the absolute module path it resolves to).
fn paths_in(
    module: &ModPath,
    tokens: &[Token],
    files: &BTreeMap<ModPath, PathBuf>,
) -> Vec<(ModPath, usize, String, ModPath)> {
    let mut out = Vec::new();
    // Inline modules: (name, the brace depth inside them).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i].text;
        let scope = || {
            let mut s = module.clone();
            s.extend(inline.iter().map(|(n, _)| n.clone()));
            s
        };
        match t.as_str() {
            "{" => {
                depth += 1;
                i += 1;
            }
            "}" => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            "mod" if tokens.get(i + 2).is_some_and(|t| t.text == "{") => {
                inline.push((tokens[i + 1].text.clone(), depth + 1));
                depth += 1;
                i += 3;
            }
            "use" if i == 0 || tokens[i - 1].text != "::" => {
                let end = (i..tokens.len()).find(|&j| tokens[j].text == ";").unwrap_or(tokens.len());
                let scope = scope();
                let children = child_modules(&scope, files, tokens);
                for (written, line) in use_paths(&tokens[i + 1..end]) {
                    if let Some(absolute) = resolve(&scope, &written, &children) {
                        out.push((scope.clone(), line, written.join("::"), absolute));
                    }
                }
                i = end + 1;
            }
            "$" => i += 2,
            "crate" | "super" | "self" if tokens.get(i + 1).is_some_and(|t| t.text == "::") => {
                let line = tokens[i].line;
                let mut written = vec![t.clone()];
                let mut j = i + 1;
                while tokens.get(j).is_some_and(|t| t.text == "::")
                    && tokens.get(j + 1).is_some_and(|t| t.text.chars().all(|c| c.is_alphanumeric() || c == '_'))
                {
                    written.push(tokens[j + 1].text.clone());
                    j += 2;
                }
                if let Some(absolute) = resolve(&scope(), &written, &BTreeSet::new()) {
                    out.push((scope(), line, written.join("::"), absolute));
                }
                i = j;
            }
            _ => i += 1,
        }
    }
    out
}

/// Modules declared in `scope` (files and inline blocks), which a `use` may name bare.
fn child_modules(scope: &ModPath, files: &BTreeMap<ModPath, PathBuf>, tokens: &[Token]) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = files
        .keys()
        .filter(|p| p.len() == scope.len() + 1 && p.starts_with(scope))
        .map(|p| p.last().unwrap().clone())
        .collect();
    for w in tokens.windows(3) {
        if w[0].text == "mod" && w[2].text == "{" {
            out.insert(w[1].text.clone());
        }
    }
    out
}

/// Expands a `use` tree (the tokens between `use` and `;`) into its paths.
fn use_paths(tokens: &[Token]) -> Vec<(Vec<String>, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    tree(tokens, &mut i, &[], &mut out);
    out
}

fn tree(tokens: &[Token], i: &mut usize, prefix: &[String], out: &mut Vec<(Vec<String>, usize)>) {
    let mut path = prefix.to_vec();
    let line = tokens.get(*i).map_or(0, |t| t.line);
    while let Some(t) = tokens.get(*i) {
        match t.text.as_str() {
            "::" => *i += 1,
            "{" => {
                *i += 1;
                loop {
                    match tokens.get(*i).map(|t| t.text.as_str()) {
                        None => return,
                        Some("}") => {
                            *i += 1;
                            return;
                        }
                        Some(",") => *i += 1,
                        Some(_) => tree(tokens, i, &path, out),
                    }
                }
            }
            "*" => {
                *i += 1;
                out.push((path, line));
                return;
            }
            "," | "}" => break,
            "as" => *i += 2,
            "self" if !path.is_empty() => *i += 1,
            _ => {
                path.push(t.text.clone());
                *i += 1;
            }
        }
    }
    if !path.is_empty() {
        out.push((path, line));
    }
}

/// The absolute module path `written` names from `scope`; `None` for another crate's.
fn resolve(scope: &ModPath, written: &[String], children: &BTreeSet<String>) -> Option<ModPath> {
    let first = written.first()?;
    let (mut base, rest) = match first.as_str() {
        "crate" => (Vec::new(), &written[1..]),
        "self" => (scope.clone(), &written[1..]),
        "super" => {
            let mut base = scope.clone();
            let mut n = 0;
            while written.get(n).is_some_and(|s| s == "super") {
                base.pop()?;
                n += 1;
            }
            (base, &written[n..])
        }
        name if children.contains(name) => (scope.clone(), written),
        _ => return None,
    };
    base.extend(rest.iter().cloned());
    Some(base)
}

#[test]
fn the_cleaner_blanks_comments_strings_and_characters_but_keeps_lifetimes() {
    let source = "use crate::a; // crate::b\nlet s = \"crate::c\"; let r = r#\"crate::d\"#;\n/* crate::e */ fn f<'a>(x: &'a str) -> char { '\"' }";
    let cleaned = clean(source);
    assert!(cleaned.contains("crate::a"));
    for gone in ["crate::b", "crate::c", "crate::d", "crate::e"] {
        assert!(!cleaned.contains(gone), "{gone} in {cleaned}");
    }
    assert!(cleaned.contains("'a str"), "{cleaned}");
    assert_eq!(cleaned.len(), source.len());
    assert_eq!(cleaned.lines().count(), source.lines().count());
}

#[test]
fn use_groups_expand_to_every_path_they_name() {
    let tokens = tokenize("crate::{a, b::{c, d as e}, f::*, g::{self}}");
    let paths: Vec<String> = use_paths(&tokens).into_iter().map(|(p, _)| p.join("::")).collect();
    assert_eq!(paths, ["crate::a", "crate::b::c", "crate::b::d", "crate::f", "crate::g"]);
}

#[test]
fn super_and_self_resolve_from_the_module_they_are_written_in() {
    let scope: ModPath = ["log", "reader", "tests"].map(String::from).to_vec();
    let path = |s: &str| s.split("::").map(String::from).collect::<Vec<_>>();
    let none = BTreeSet::new();
    assert_eq!(resolve(&scope, &path("super::super::views::X"), &none), Some(path("log::views::X")));
    assert_eq!(resolve(&scope, &path("self::helper"), &none), Some(path("log::reader::tests::helper")));
    assert_eq!(resolve(&scope, &path("serde::Serialize"), &none), None);
}
