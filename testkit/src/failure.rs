//! What went wrong with a script, and the report a test failure prints.

use std::fmt;
use std::time::Duration;

use crate::python::PythonInfo;

/// Shown in full up to this many bytes; longer output keeps its head and its tail (where a
/// crash's traceback is).
const BLOCK_LIMIT: usize = 32 * 1024;
const BLOCK_HEAD: usize = 8 * 1024;

/// Why a [`Script`](crate::Script) run failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// The interpreter exited with this non-zero code (1: an uncaught exception).
    ExitCode(i32),
    /// The interpreter was killed by a signal (a crash: `SIGSEGV`, `SIGABRT` from a fatal
    /// error or `abort()`, ...).
    Signal {
        /// The signal number.
        number: i32,
        /// Its name, e.g. `"SIGSEGV"`.
        name: &'static str,
    },
    /// The run did not finish within the timeout; its whole process group was killed.
    Timeout(Duration),
    /// [`Script::expect_failure_containing`](crate::Script::expect_failure_containing) was
    /// set, but the script exited with status 0.
    SucceededUnexpectedly,
    /// The script failed as expected, but neither stdout nor stderr contains this text.
    MissingText(String),
    /// stdout or stderr of the run contains this text, which
    /// [`Script::forbid_output`](crate::Script::forbid_output) forbids.
    ForbiddenText(String),
    /// The interpreter could not be found or queried.
    Interpreter(String),
    /// Building or staging an [`Extension`](crate::Extension) failed (includes cargo's
    /// output).
    Extension(String),
    /// The interpreter process could not be started.
    Spawn(String),
}

/// A failed [`Script`](crate::Script) run: what failed, on which run, and everything needed
/// to understand it.
///
/// `Display` is the full report that [`Script::check`](crate::Script::check) panics with;
/// `Debug` prints the same report (so `.unwrap()` on a `Result<_, ScriptFailure>` is
/// readable).
#[derive(Clone)]
pub struct ScriptFailure {
    /// What failed.
    pub kind: FailureKind,
    /// The 1-based run that failed (1 when preparing the first run failed).
    pub run: u32,
    /// How many runs were asked for.
    pub runs: u32,
    /// The interpreter, unless finding it was what failed.
    pub python: Option<PythonInfo>,
    /// The script as run (dedented, with the subinterpreter helpers if asked for); line
    /// numbers in the report match the `<string>` line numbers in Python tracebacks.
    pub script: String,
    /// The failed run's standard output.
    pub stdout: String,
    /// The failed run's standard error (with `PYTHONFAULTHANDLER=1`, a crash's traceback).
    pub stderr: String,
}

impl ScriptFailure {
    /// The first line of the report: what failed, on which run.
    fn headline(&self) -> String {
        let at = format!("on run {} of {}", self.run, self.runs);
        match &self.kind {
            FailureKind::ExitCode(code) => {
                format!("Python script exited with code {code} {at}")
            }
            FailureKind::Signal { number, name } => {
                format!("Python script killed by signal {number} ({name}) {at}")
            }
            FailureKind::Timeout(limit) => format!(
                "Python script timed out after {limit:?} {at}; its whole process group was \
                 killed (SIGKILL)"
            ),
            FailureKind::SucceededUnexpectedly => format!(
                "Python script exited with code 0 {at}, but it was expected to fail \
                 (expect_failure_containing)"
            ),
            FailureKind::MissingText(text) => format!(
                "Python script failed as expected {at}, but neither stdout nor stderr \
                 contains {text:?}"
            ),
            FailureKind::ForbiddenText(text) => {
                format!("Python script wrote {text:?} {at}, which forbid_output forbids")
            }
            FailureKind::Interpreter(_) => {
                format!(
                    "could not find or query the Python interpreter (before run {} of {})",
                    self.run, self.runs
                )
            }
            FailureKind::Extension(_) => format!(
                "could not build or stage an extension module (before run {} of {})",
                self.run, self.runs
            ),
            FailureKind::Spawn(e) => {
                format!("could not start the Python interpreter {at}: {e}")
            }
        }
    }
}

impl fmt::Display for ScriptFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.headline())?;
        match &self.python {
            Some(python) => writeln!(
                f,
                "interpreter: {} (Python {})",
                python.executable.display(),
                python.describe_version()
            )?,
            None => writeln!(f, "interpreter: unknown")?,
        }
        match &self.kind {
            FailureKind::Signal { .. } => writeln!(
                f,
                "hint: PYTHONFAULTHANDLER=1 was set, so the Python traceback of the crash is \
                 in stderr below"
            )?,
            FailureKind::Interpreter(details) => block(f, "interpreter error", details)?,
            FailureKind::Extension(details) => block(f, "extension build error", details)?,
            _ => {}
        }
        writeln!(f, "--- script (run with `python -c`) ---")?;
        let width = self.script.lines().count().to_string().len();
        for (number, line) in self.script.lines().enumerate() {
            writeln!(f, "{:>width$} | {line}", number + 1)?;
        }
        block(f, "stdout", &self.stdout)?;
        block(f, "stderr", &self.stderr)?;
        write!(f, "--- end of report ---")
    }
}

impl fmt::Debug for ScriptFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f)?;
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for ScriptFailure {}

/// Writes `--- label ---` and `text` (or `(empty)`), shortened in the middle if huge.
fn block(f: &mut fmt::Formatter<'_>, label: &str, text: &str) -> fmt::Result {
    writeln!(f, "--- {label} ---")?;
    if text.is_empty() {
        return writeln!(f, "(empty)");
    }
    let text = if text.len() > BLOCK_LIMIT {
        let head_end = floor_char_boundary(text, BLOCK_HEAD);
        let tail_start = floor_char_boundary(text, text.len() - (BLOCK_LIMIT - BLOCK_HEAD));
        format!(
            "{}\n[... {} bytes left out ...]\n{}",
            &text[..head_end],
            tail_start - head_end,
            &text[tail_start..]
        )
    } else {
        text.to_owned()
    };
    write!(f, "{text}")?;
    if !text.ends_with('\n') {
        writeln!(f)?;
    }
    Ok(())
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn failure(kind: FailureKind) -> ScriptFailure {
        ScriptFailure {
            kind,
            run: 2,
            runs: 3,
            python: Some(PythonInfo {
                executable: PathBuf::from("/py/bin/python3"),
                version: (3, 12, 1),
                ext_suffix: ".cpython-312-x86_64-linux-gnu.so".into(),
                free_threaded: false,
            }),
            script: "import os\nos.abort()\n".into(),
            stdout: "hello".into(),
            stderr: "Fatal Python error: Aborted\n".into(),
        }
    }

    #[test]
    fn report_has_headline_interpreter_numbered_script_and_output() {
        let report = failure(FailureKind::Signal {
            number: 6,
            name: "SIGABRT",
        })
        .to_string();
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(
            lines[0],
            "Python script killed by signal 6 (SIGABRT) on run 2 of 3"
        );
        assert_eq!(lines[1], "interpreter: /py/bin/python3 (Python 3.12.1)");
        assert!(
            report.contains("1 | import os\n2 | os.abort()\n"),
            "{report}"
        );
        assert!(
            report.contains("--- stdout ---\nhello\n--- stderr ---\nFatal Python error: Aborted\n"),
            "{report}"
        );
    }

    #[test]
    fn headlines_name_each_kind() {
        let cases = [
            (FailureKind::ExitCode(3), "exited with code 3 on run 2 of 3"),
            (
                FailureKind::Timeout(Duration::from_secs(1)),
                "timed out after 1s on run 2 of 3",
            ),
            (FailureKind::SucceededUnexpectedly, "expected to fail"),
            (FailureKind::MissingText("boom".into()), "contains \"boom\""),
            (
                FailureKind::Extension("cargo said no".into()),
                "extension build error ---\ncargo said no\n",
            ),
            (
                FailureKind::Spawn("No such file".into()),
                "could not start the Python interpreter on run 2 of 3: No such file",
            ),
        ];
        for (kind, expected) in cases {
            let report = failure(kind).to_string();
            assert!(report.contains(expected), "{expected:?} not in:\n{report}");
        }
    }

    #[test]
    fn huge_output_keeps_head_and_tail() {
        let mut f = failure(FailureKind::ExitCode(1));
        f.stderr = format!("HEAD{}TAIL", "é".repeat(40_000));
        let report = f.to_string();
        assert!(
            report.contains("HEAD") && report.contains("TAIL") && report.contains("bytes left out")
        );
        assert!(report.len() < 40_000);
        f.stdout.clear();
        assert!(f.to_string().contains("--- stdout ---\n(empty)\n"));
    }
}
