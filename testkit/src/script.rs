//! The `Script` builder: one Python script, run in fresh interpreter processes.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use crate::dedent::dedent;
use crate::extension::{Extension, StagedExtension};
use crate::failure::{FailureKind, ScriptFailure};
use crate::process::{exit_code_or_signal, run_with_timeout, signal_name};
use crate::python::PythonInfo;
use crate::subinterp::SUBINTERPRETER_HELPERS;

/// The default time limit of one run.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A Python script to run with `python -c` in fresh interpreter processes, and what to
/// expect of it.
///
/// Every run gets stdin from `/dev/null` and, unless overridden with [`Script::env`],
/// `PYTHONFAULTHANDLER=1` (a crash prints the Python traceback), `PYTHONDONTWRITEBYTECODE=1`
/// and `PYTHONUNBUFFERED=1` (output printed before a crash or a timeout is not lost).
///
/// ```no_run
/// use bindery_testkit::Script;
/// use std::time::Duration;
///
/// let outcome = Script::new("
///     import sys
///     print(sys.version_info[:2])
/// ")
/// .timeout(Duration::from_secs(10))
/// .check();
/// assert!(outcome.stdout.starts_with("(3, "));
/// ```
#[derive(Clone, Debug)]
pub struct Script {
    code: String,
    subinterpreter_helpers: bool,
    preludes: Vec<String>,
    python: Option<PathBuf>,
    env: Vec<(OsString, OsString)>,
    pythonpath: Vec<PathBuf>,
    cwd: Option<PathBuf>,
    timeout: Duration,
    reruns: u32,
    expect_failure: Option<String>,
    forbidden: Vec<String>,
    extensions: Vec<Extension>,
}

/// What one run printed.
#[derive(Clone, Debug)]
pub struct RunOutput {
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it wrote to standard output.
    pub stdout: String,
    /// Everything it wrote to standard error.
    pub stderr: String,
}

/// A successful run (the last one, if there were several).
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The interpreter that ran the script.
    pub python: PythonInfo,
    /// Its exit status (non-zero or a signal when a failure was expected).
    pub status: ExitStatus,
    /// Everything it wrote to standard output.
    pub stdout: String,
    /// Everything it wrote to standard error.
    pub stderr: String,
    /// How many runs there were (all of them passed).
    pub runs: u32,
    /// How long the last run took.
    pub elapsed: Duration,
    /// The output of every run, first to last (with [`Script::reruns`], to check each one).
    pub all_runs: Vec<RunOutput>,
}

impl Script {
    /// A script from Python source; the source is dedented like `textwrap.dedent`, and a
    /// leading empty line is dropped, so an indented raw string literal works as is.
    pub fn new(code: impl Into<String>) -> Script {
        Script {
            code: dedent(&code.into()),
            subinterpreter_helpers: false,
            preludes: Vec::new(),
            python: None,
            env: Vec::new(),
            pythonpath: Vec::new(),
            cwd: None,
            timeout: DEFAULT_TIMEOUT,
            reruns: 1,
            expect_failure: None,
            forbidden: Vec::new(),
            extensions: Vec::new(),
        }
    }

    /// Runs the script with this interpreter instead of the default one
    /// ([`PythonInfo::discover`]).
    pub fn python(mut self, path: impl Into<PathBuf>) -> Script {
        self.python = Some(path.into());
        self
    }

    /// Sets an environment variable for the interpreter (after the testkit's own, so it can
    /// override them). A `PYTHONPATH` set here comes after the folders of
    /// [`Script::pythonpath`] and of staged extensions.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Script {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Puts `dir` on `PYTHONPATH`, before the inherited `PYTHONPATH`. May be called many
    /// times; the folders keep their order.
    pub fn pythonpath(mut self, dir: impl Into<PathBuf>) -> Script {
        self.pythonpath.push(dir.into());
        self
    }

    /// The working folder of the interpreter (default: the test's).
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Script {
        self.cwd = Some(dir.into());
        self
    }

    /// The time limit of each run (default 60 s). On expiry the run's whole process group
    /// (the interpreter and anything it started) is killed and the run fails with
    /// [`FailureKind::Timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Script {
        self.timeout = timeout;
        self
    }

    /// Runs the script `n` times, each in a fresh process, stopping at the first failing run
    /// (the failure says which: "run 3 of 8"). Shakes out shutdown bugs that depend on the
    /// order in which the garbage collector meets objects.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    pub fn reruns(mut self, n: u32) -> Script {
        assert!(
            n >= 1,
            "Script::reruns({n}): the script must run at least once"
        );
        self.reruns = n;
        self
    }

    /// Fails a run whose stdout or stderr contains `text`, e.g. `"Traceback"`, `"Exception
    /// ignored"` or `"Fatal Python error"` in a shutdown test whose exit status alone would
    /// not tell; checked on every run (with [`Script::reruns`]), naming the run. May be
    /// called several times.
    pub fn forbid_output(mut self, text: impl Into<String>) -> Script {
        self.forbidden.push(text.into());
        self
    }

    /// Expects every run to fail (non-zero exit or a signal) with `text` in its stdout or
    /// stderr, e.g. a fatal error message. A run that exits with 0 fails with
    /// [`FailureKind::SucceededUnexpectedly`]; one without the text with
    /// [`FailureKind::MissingText`]. A timeout is still a failure.
    pub fn expect_failure_containing(mut self, text: impl Into<String>) -> Script {
        self.expect_failure = Some(text.into());
        self
    }

    /// Builds `extension` for this script's interpreter when the script runs, stages it in a
    /// fresh folder and puts that folder on `PYTHONPATH`. May be called several times.
    pub fn extension(mut self, extension: Extension) -> Script {
        self.extensions.push(extension);
        self
    }

    /// Prepends [`SUBINTERPRETER_HELPERS`] to the (dedented) script, defining
    /// `run_in_subinterpreter(code, own_gil=False)` and `SUBINTERPRETERS_OWN_GIL`.
    pub fn with_subinterpreter_helpers(mut self) -> Script {
        self.subinterpreter_helpers = true;
        self
    }

    /// Python run before the script, dedented on its own: helpers that the tests of one
    /// file share (an `expect(exc, text, call, *args)`, fixtures), written once. Preludes
    /// run in the order given, after the subinterpreter helpers.
    pub fn prelude(mut self, code: impl Into<String>) -> Script {
        self.preludes.push(dedent(&code.into()));
        self
    }

    /// The source as run.
    fn source(&self) -> String {
        let mut source = String::new();
        if self.subinterpreter_helpers {
            source.push_str(SUBINTERPRETER_HELPERS);
            source.push('\n');
        }
        for prelude in &self.preludes {
            source.push_str(prelude);
            source.push('\n');
        }
        source.push_str(&self.code);
        source
    }

    /// Runs the script as configured.
    ///
    /// Finds the interpreter, builds and stages the extensions, then runs the script up to
    /// [`Script::reruns`] times and returns the last run's outcome, or the first failure.
    /// Staging folders made here are removed afterwards.
    #[allow(
        clippy::result_large_err,
        reason = "the public contract returns the failure by value; it is built once, on the \
                  way to failing a test, so its size costs nothing"
    )]
    pub fn run(&self) -> Result<Outcome, ScriptFailure> {
        let source = self.source();
        let fail = |kind, run, python: Option<&PythonInfo>, stdout: String, stderr: String| {
            ScriptFailure {
                kind,
                run,
                runs: self.reruns,
                python: python.cloned(),
                script: source.clone(),
                stdout,
                stderr,
            }
        };

        let found = match &self.python {
            Some(path) => PythonInfo::at(path),
            None => PythonInfo::discover(),
        };
        let python = found.map_err(|e| {
            fail(
                FailureKind::Interpreter(e),
                1,
                None,
                String::new(),
                String::new(),
            )
        })?;

        let mut staged = Vec::new();
        for extension in &self.extensions {
            match extension.stage(&python) {
                Ok(ext) => staged.push(ext),
                Err(e) => {
                    remove_staged(&staged);
                    let kind = FailureKind::Extension(e);
                    return Err(fail(kind, 1, Some(&python), String::new(), String::new()));
                }
            }
        }

        let result = (|| {
            let mut last = None;
            let mut all_runs = Vec::new();
            for run in 1..=self.reruns {
                let command = self.command(&python, &source, &staged);
                let done = run_with_timeout(command, self.timeout).map_err(|e| {
                    let kind = FailureKind::Spawn(format!("{}: {e}", python.executable.display()));
                    fail(kind, run, Some(&python), String::new(), String::new())
                })?;
                let verdict = self.judge(done.timed_out, done.status, &done.stdout, &done.stderr);
                if let Some(kind) = verdict {
                    return Err(fail(kind, run, Some(&python), done.stdout, done.stderr));
                }
                if let Some(status) = done.status {
                    all_runs.push(RunOutput {
                        status,
                        stdout: done.stdout.clone(),
                        stderr: done.stderr.clone(),
                    });
                }
                last = done
                    .status
                    .map(|status| (status, done.stdout, done.stderr, done.elapsed));
            }
            let (status, stdout, stderr, elapsed) =
                last.expect("every passing run has an exit status");
            Ok(Outcome {
                python: python.clone(),
                status,
                stdout,
                stderr,
                runs: self.reruns,
                elapsed,
                all_runs,
            })
        })();
        remove_staged(&staged);
        result
    }

    /// Runs the script like [`Script::run`] and panics with the full failure report (exit
    /// code or signal name, interpreter, numbered script, stdout, stderr) if it failed.
    #[track_caller]
    pub fn check(&self) -> Outcome {
        match self.run() {
            Ok(outcome) => outcome,
            Err(failure) => panic!("{failure}"),
        }
    }

    /// `None` if the run met the expectation, else why not.
    fn judge(
        &self,
        timed_out: bool,
        status: Option<ExitStatus>,
        stdout: &str,
        stderr: &str,
    ) -> Option<FailureKind> {
        if timed_out {
            return Some(FailureKind::Timeout(self.timeout));
        }
        let Some(status) = status else {
            // Not reachable without a timeout; report it as one rather than invent a status.
            return Some(FailureKind::Timeout(self.timeout));
        };
        let failure = match exit_code_or_signal(status) {
            Ok(0) => None,
            Ok(code) => Some(FailureKind::ExitCode(code)),
            Err(number) => Some(FailureKind::Signal {
                number,
                name: signal_name(number),
            }),
        };
        if let Some(text) = self
            .forbidden
            .iter()
            .find(|text| stdout.contains(text.as_str()) || stderr.contains(text.as_str()))
        {
            return Some(FailureKind::ForbiddenText(text.clone()));
        }
        match (&self.expect_failure, failure) {
            (None, failure) => failure,
            (Some(_), None) => Some(FailureKind::SucceededUnexpectedly),
            (Some(text), Some(_)) if stdout.contains(text) || stderr.contains(text) => None,
            (Some(text), Some(_)) => Some(FailureKind::MissingText(text.clone())),
        }
    }

    fn command(&self, python: &PythonInfo, source: &str, staged: &[StagedExtension]) -> Command {
        let mut command = Command::new(&python.executable);
        command
            .arg("-c")
            .arg(source)
            .env("PYTHONFAULTHANDLER", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1");
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
        }
        let mut base_pythonpath = std::env::var_os("PYTHONPATH");
        for (key, value) in &self.env {
            if key == OsStr::new("PYTHONPATH") {
                base_pythonpath = Some(value.clone());
            } else {
                command.env(key, value);
            }
        }
        // Folders are joined with ':' as they are (Unix); the inherited or given
        // PYTHONPATH goes last, unchanged.
        let mut pythonpath = OsString::new();
        let dirs = self
            .pythonpath
            .iter()
            .chain(staged.iter().map(|ext| &ext.dir));
        for part in dirs
            .map(|dir| dir.as_os_str())
            .chain(base_pythonpath.as_deref())
        {
            if part.is_empty() {
                continue;
            }
            if !pythonpath.is_empty() {
                pythonpath.push(":");
            }
            pythonpath.push(part);
        }
        if pythonpath.is_empty() {
            command.env_remove("PYTHONPATH");
        } else {
            command.env("PYTHONPATH", pythonpath);
        }
        command
    }
}

fn remove_staged(staged: &[StagedExtension]) {
    for ext in staged {
        // Best effort: a left-over folder in the temp folder harms nobody.
        let _ = fs::remove_dir_all(&ext.dir);
    }
}
