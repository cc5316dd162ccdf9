//! Golden-file checks for tests beside the modules: compare a rendering with
//! a committed file under `engine/src/**/testdata/`, or rewrite the file when
//! `UPDATE_GOLDENFILES=1` is set (then review the diff before committing).

use std::path::Path;

/// Asserts that `actual` equals the committed golden file at `relative` (from
/// the engine crate root); with `UPDATE_GOLDENFILES=1`, writes it instead.
pub fn check(relative: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    if std::env::var_os("UPDATE_GOLDENFILES").is_some() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create testdata directory");
        }
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("golden file {} missing ({e}); run with UPDATE_GOLDENFILES=1", path.display())
    });
    assert!(
        expected == actual,
        "{} differs from the golden file.\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}
