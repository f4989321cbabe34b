//! Golden files: pin text a user reads (fatal diagnostics, reports) so that any change to it
//! is a reviewed change.

use std::path::Path;

/// Panics unless `actual` equals the content of the golden file at `path`.
///
/// With the environment variable `BINDERY_BLESS=1` the file is (re)written with `actual`
/// instead, and the check passes: run the test once so, review the diff, commit. A missing
/// file is a failure that says how to create it. Line endings are compared as `\n`.
pub fn assert_golden(actual: &str, path: impl AsRef<Path>) {
    let path = path.as_ref();
    if std::env::var_os("BINDERY_BLESS").is_some_and(|v| v == "1") {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        }
        std::fs::write(path, actual)
            .unwrap_or_else(|e| panic!("cannot write golden file {}: {e}", path.display()));
        return;
    }
    let expected = match std::fs::read_to_string(path) {
        Ok(text) => text.replace("\r\n", "\n"),
        Err(e) => panic!(
            "golden file {} cannot be read ({e}); to create it from this run, rerun the test \
             with BINDERY_BLESS=1 and review the new file\n--- actual ---\n{actual}",
            path.display()
        ),
    };
    if expected != actual {
        panic!(
            "text differs from golden file {}\n{}\nIf the change is intended, rerun the test \
             with BINDERY_BLESS=1 and review the diff of the golden file.",
            path.display(),
            line_diff(&expected, actual)
        );
    }
}

/// A readable line-by-line comparison: each differing line shown as `-expected` / `+actual`
/// with its number.
fn line_diff(expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let mut out = String::new();
    for i in 0..e.len().max(a.len()) {
        let (x, y) = (e.get(i), a.get(i));
        if x != y {
            if let Some(x) = x {
                out.push_str(&format!("{:>4} -{x}\n", i + 1));
            }
            if let Some(y) = y {
                out.push_str(&format!("{:>4} +{y}\n", i + 1));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_text_passes_and_different_text_fails_with_a_diff() {
        let dir = std::env::temp_dir().join(format!("bindery-golden-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.txt");
        std::fs::write(&path, "one\ntwo\n").unwrap();
        assert_golden("one\ntwo\n", &path);
        let failure = std::panic::catch_unwind(|| assert_golden("one\nthree\n", &path))
            .expect_err("a different text must fail");
        let message = failure.downcast_ref::<String>().unwrap();
        assert!(message.contains("   2 -two\n   2 +three"), "{message}");
        assert!(message.contains("BINDERY_BLESS=1"), "{message}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_golden_file_says_how_to_create_it() {
        let path = std::env::temp_dir().join("bindery-golden-missing/none.txt");
        let failure = std::panic::catch_unwind(|| assert_golden("x", &path)).unwrap_err();
        let message = failure.downcast_ref::<String>().unwrap();
        assert!(message.contains("BINDERY_BLESS=1"), "{message}");
    }
}
