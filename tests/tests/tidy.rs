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
