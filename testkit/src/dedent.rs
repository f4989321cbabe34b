//! `textwrap.dedent` for Rust string literals holding Python code.

/// Removes the whitespace prefix common to all non-blank lines, the way Python's
/// `textwrap.dedent` does, and drops one leading empty line, so that
///
/// ```text
/// Script::new("
///     import sys
///     print(sys.version)
/// ")
/// ```
///
/// runs `import sys\nprint(sys.version)\n`.
///
/// The rules, as in `textwrap.dedent`:
/// - lines made only of spaces and tabs count as blank: they do not take part in the
///   margin and come out empty;
/// - the margin is the longest common prefix of the other lines' leading spaces and tabs,
///   compared character by character (a tab is not eight spaces);
/// - the margin is removed from every non-blank line, nothing else changes.
pub(crate) fn dedent(code: &str) -> String {
    let is_blank = |line: &str| line.chars().all(|c| c == ' ' || c == '\t');
    let lines: Vec<&str> = code.split('\n').collect();

    let mut margin: Option<&str> = None;
    for line in lines.iter().copied().filter(|line| !is_blank(line)) {
        let indent_len = line.len() - line.trim_start_matches([' ', '\t']).len();
        let indent = &line[..indent_len];
        margin = Some(match margin {
            None => indent,
            Some(margin) => common_prefix(margin, indent),
        });
    }
    let margin_len = margin.map_or(0, str::len);

    let mut out: Vec<&str> = lines
        .iter()
        .map(|line| {
            if is_blank(line) {
                ""
            } else {
                &line[margin_len..]
            }
        })
        .collect();
    if out.len() > 1 && out[0].is_empty() {
        out.remove(0);
    }
    out.join("\n")
}

/// The longest common prefix of two strings made of ASCII spaces and tabs.
fn common_prefix<'a>(a: &'a str, b: &str) -> &'a str {
    let len = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    &a[..len]
}

#[cfg(test)]
mod tests {
    use super::dedent;

    #[test]
    fn removes_the_common_margin_and_the_leading_empty_line() {
        let code = "\n    import sys\n    if True:\n        print(sys.version)\n    ";
        assert_eq!(
            dedent(code),
            "import sys\nif True:\n    print(sys.version)\n"
        );
    }

    #[test]
    fn keeps_unindented_code_unchanged() {
        assert_eq!(dedent("a = 1\nb = 2\n"), "a = 1\nb = 2\n");
        assert_eq!(dedent("x = 1"), "x = 1");
        assert_eq!(dedent(""), "");
    }

    #[test]
    fn blank_lines_neither_count_nor_keep_whitespace() {
        // The middle line has fewer spaces than the margin but is blank: it must not
        // shrink the margin, and it comes out empty.
        assert_eq!(dedent("    a\n  \n    b"), "a\n\nb");
        assert_eq!(dedent("    a\n\t\n      b"), "a\n\n  b");
    }

    #[test]
    fn margin_is_the_common_prefix_not_the_smallest_width() {
        // Like textwrap.dedent: a tab and spaces share no prefix, so nothing is removed.
        assert_eq!(dedent("\tx\n    y"), "\tx\n    y");
        assert_eq!(dedent("  \tx\n  y"), "\tx\ny");
    }

    #[test]
    fn drops_only_one_leading_empty_line() {
        assert_eq!(dedent("\n\n  x\n"), "\nx\n");
        assert_eq!(dedent("   \n  x"), "x");
    }
}
