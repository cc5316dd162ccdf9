//! Tidy checks over the source tree: every Rust file opens with a `//!` doc
//! comment saying its role, and no library or binary source file grows past
//! [`MAX_SOURCE_LINES`] lines (split it by responsibility instead).

use std::path::{Path, PathBuf};

/// Longest a non-test source file may be.
const MAX_SOURCE_LINES: usize = 800;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if path.is_dir() {
            if !matches!(name.as_str(), "target" | "snapshots" | "cases" | ".git") {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

#[test]
fn every_rust_file_opens_with_a_module_doc_and_sources_stay_small() {
    let root = workspace_root();
    let mut files = Vec::new();
    for crate_dir in ["engine", "query-lang", "server", "benches", "tests", "fuzz"] {
        rust_files(&root.join(crate_dir), &mut files);
    }
    assert!(files.len() > 30, "found only {} files under {}", files.len(), root.display());
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read");
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        let relative = file.strip_prefix(&root).unwrap_or(file).display().to_string();
        if !first.starts_with("//!") {
            problems.push(format!("{relative}: does not open with a //! doc comment"));
        }
        let is_test_code = ["/tests/", "/benches/", "/fuzz/"].iter().any(|d| relative.contains(d))
            || relative.starts_with("tests/")
            || relative.starts_with("benches/");
        let lines = text.lines().count();
        if !is_test_code && lines > MAX_SOURCE_LINES {
            problems.push(format!("{relative}: {lines} lines, more than {MAX_SOURCE_LINES}"));
        }
    }
    assert!(problems.is_empty(), "tidy problems:\n{}", problems.join("\n"));
}

/// The layers of `engine/src`, bottom-up (ARCHITECTURE.md, "the engine in
/// layers"). A file may use its own layer and the ones below it; the shared
/// basics (rank 0) may be used by all and use nothing else.
const ENGINE_LAYERS: &[(&str, usize)] = &[
    ("error", 0),
    ("limits", 0),
    ("clock", 0),
    ("golden", 0),
    ("store", 1),
    ("query", 2),
    ("triggers", 3),
    ("campaigns", 4),
    ("engine", 5),
    ("dataset", 5),
];

fn engine_layer_of(first_component: &str) -> Option<usize> {
    let name = first_component.trim_end_matches(".rs");
    ENGINE_LAYERS.iter().find(|(layer, _)| *layer == name).map(|(_, rank)| *rank)
}

/// Every `crate::<module>` a source file refers to, outside comments.
fn crate_references(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String =
                after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() && !found.contains(&name) {
                found.push(name);
            }
            rest = after;
        }
    }
    found
}

/// The upward `crate::` edges in `engine/src`, as (file, target module).
fn engine_upward_edges(root: &Path) -> Vec<(String, String)> {
    let src = root.join("engine/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges = Vec::new();
    for file in files {
        let relative =
            file.strip_prefix(&src).expect("under engine/src").to_string_lossy().to_string();
        let first = relative.split('/').next().unwrap_or_default();
        if first == "lib.rs" {
            continue; // the crate root declares the layers and re-exports the surface
        }
        let rank = engine_layer_of(first).unwrap_or_else(|| {
            panic!("engine/src/{relative} is in no layer: add it to ENGINE_LAYERS")
        });
        let text = std::fs::read_to_string(&file).expect("read");
        for target in crate_references(&text) {
            let Some(target_rank) = engine_layer_of(&target) else {
                // `crate::Error` and other items the root re-exports.
                continue;
            };
            let upward = target_rank > rank || (rank == 0 && target_rank != 0);
            let uses_facade = target == "engine" && first != "engine";
            if upward || uses_facade {
                edges.push((relative.clone(), target));
            }
        }
    }
    edges.sort();
    edges
}

#[test]
fn engine_layers_use_only_their_own_and_lower_layers() {
    let root = workspace_root();
    let edges = engine_upward_edges(&root);
    let upward: Vec<String> = edges
        .iter()
        .map(|(file, target)| format!("engine/src/{file} uses crate::{target}, a higher layer"))
        .collect();
    assert!(
        upward.is_empty(),
        "layer rule broken (store ← query ← triggers ← campaigns ← engine):\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_layer_check_finds_an_upward_edge_and_a_file_outside_the_layers() {
    let root = std::env::temp_dir().join(format!("nudge-tidy-{}", std::process::id()));
    let src = root.join("engine/src/store");
    std::fs::create_dir_all(&src).expect("create");
    std::fs::write(
        src.join("record.rs"),
        "//! x\n// crate::engine in a comment does not count\nuse crate::campaigns::Campaign;\nfn f() { crate::engine::Engine::open(); }\n",
    )
    .expect("write");
    let edges = engine_upward_edges(&root);
    assert_eq!(
        edges,
        vec![
            ("store/record.rs".to_string(), "campaigns".to_string()),
            ("store/record.rs".to_string(), "engine".to_string()),
        ]
    );
    std::fs::write(root.join("engine/src/stray.rs"), "//! x\n").expect("write");
    let outside = std::panic::catch_unwind(|| engine_upward_edges(&root));
    std::fs::remove_dir_all(&root).expect("clean up");
    assert!(outside.is_err(), "a file in no layer must be refused");
}

/// Top-level folders a path in ARCHITECTURE.md starts from; shorter names
/// (`log/`, `routes/`) are relative to the section they are in.
const TOP_LEVEL: &[&str] =
    &["engine/", "query-lang/", "server/", "benches/", "tests/", "docs/", "fuzz/", ".ci/"];

/// The backticked paths ARCHITECTURE.md names from the workspace root, with
/// `{a,b}` lists expanded; globs are left out.
fn architecture_paths(text: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for (i, chunk) in text.split('`').enumerate() {
        let looks_like_path = chunk.contains('/')
            && !chunk.contains(' ')
            && !chunk.contains("://")
            && !chunk.contains('*')
            && TOP_LEVEL.iter().any(|top| chunk.starts_with(top));
        if i % 2 == 0 || !looks_like_path {
            continue;
        }
        match (chunk.find('{'), chunk.find('}')) {
            (Some(open), Some(close)) if open < close => {
                for item in chunk[open + 1..close].split(',') {
                    paths.push(format!("{}{}{}", &chunk[..open], item, &chunk[close + 1..]));
                }
            }
            _ => paths.push(chunk.to_owned()),
        }
    }
    paths
}

/// Whether ARCHITECTURE.md's code map covers `relative` (a source file): by
/// its path, or by its name where its folder's path is named too.
fn code_map_covers(text: &str, relative: &str) -> bool {
    let (folder, name) = relative.rsplit_once('/').unwrap_or(("", relative));
    text.contains(&format!("`{relative}`"))
        || text.contains(&format!("{relative}`"))
        || (name == "mod.rs" && text.contains(&format!("`{folder}/`")))
        || (text.contains(&format!("`{folder}/")) && text.contains(&format!("`{name}`")))
}

#[test]
fn architecture_names_only_paths_that_exist_and_maps_every_source_file() {
    let root = workspace_root();
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let missing: Vec<String> = architecture_paths(&text)
        .into_iter()
        .filter(|path| !root.join(path.trim_end_matches('/')).exists())
        .collect();
    assert!(missing.is_empty(), "ARCHITECTURE.md names paths that do not exist: {missing:?}");
    let mut files = Vec::new();
    for dir in ["engine/src", "query-lang/src", "server/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    let unmapped: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(&root).unwrap_or(f).display().to_string())
        .filter(|relative| !code_map_covers(&text, relative))
        .collect();
    assert!(
        unmapped.is_empty(),
        "source files missing from ARCHITECTURE.md's code map: {unmapped:?}"
    );
}

#[test]
fn the_code_map_check_sees_a_wrong_path_and_an_unmapped_file() {
    let text = "See `engine/src/{store,nowhere}/` and `engine/src/store/` with `record.rs`.";
    assert_eq!(
        architecture_paths(text),
        ["engine/src/store/", "engine/src/nowhere/", "engine/src/store/"]
    );
    assert!(code_map_covers(text, "engine/src/store/record.rs"));
    assert!(!code_map_covers(text, "engine/src/store/meta.rs"), "a folder alone is not enough");
    assert!(!code_map_covers("`engine/src/lib.rs`", "engine/src/store/record.rs"));
}
