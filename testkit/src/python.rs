//! Finding a Python interpreter and asking it what it is.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::process::{exit_code_or_signal, run_with_timeout, signal_name};

/// How long an interpreter may take to say what it is.
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// Printed by the interpreter, one item a line.
const QUERY: &str = "\
import sys, sysconfig
print(sys.executable)
print('%d.%d.%d' % sys.version_info[:3])
print(sysconfig.get_config_var('EXT_SUFFIX') or '')
print(1 if sysconfig.get_config_var('Py_GIL_DISABLED') else 0)
";

/// What the testkit needs to know about an interpreter: where it is, which version it is,
/// and how it names extension modules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PythonInfo {
    /// `sys.executable` as the interpreter reports it (a pyenv shim or a `python3` found on
    /// `PATH` resolves to the real interpreter here).
    pub executable: PathBuf,
    /// `sys.version_info[:3]`, e.g. `(3, 11, 7)`.
    pub version: (u32, u32, u32),
    /// `sysconfig.get_config_var("EXT_SUFFIX")`, e.g. `".cpython-311-x86_64-linux-gnu.so"`.
    pub ext_suffix: String,
    /// Whether this is a free-threaded build (`Py_GIL_DISABLED`).
    pub free_threaded: bool,
}

impl PythonInfo {
    /// The default interpreter, in this order:
    ///
    /// 1. `BINDERY_PYTHON` (CI sets it to run the same tests on every Python version),
    /// 2. `PYO3_PYTHON` (the interpreter PyO3-based crates are built for),
    /// 3. `python3` on `PATH`.
    ///
    /// The first variable that is set and non-empty decides: an interpreter named there that
    /// does not work is an error, never a silent fallback to the next choice. The result is
    /// cached for the life of the process.
    pub fn discover() -> Result<PythonInfo, String> {
        static DISCOVERED: OnceLock<Result<PythonInfo, String>> = OnceLock::new();
        DISCOVERED.get_or_init(discover_uncached).clone()
    }

    /// Asks the interpreter at `path` (a path, or a program name looked up on `PATH`) what it
    /// is. Successful answers are cached per path for the life of the process.
    pub fn at(path: impl AsRef<Path>) -> Result<PythonInfo, String> {
        static CACHE: OnceLock<Mutex<HashMap<PathBuf, PythonInfo>>> = OnceLock::new();
        let path = path.as_ref();
        let cache = CACHE.get_or_init(Default::default);
        let cached = cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(path)
            .cloned();
        if let Some(info) = cached {
            return Ok(info);
        }
        let info = query(path)?;
        cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(path.to_path_buf(), info.clone());
        Ok(info)
    }

    /// Whether this interpreter is at least version `major.minor`.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.version.0, self.version.1) >= (major, minor)
    }

    /// `"3.11.7"`, or `"3.13.0 (free-threaded)"`.
    pub(crate) fn describe_version(&self) -> String {
        let (major, minor, patch) = self.version;
        let threading = if self.free_threaded {
            " (free-threaded)"
        } else {
            ""
        };
        format!("{major}.{minor}.{patch}{threading}")
    }

    /// `"cp311"`, `"cp313t"`: the CPython tag for build-folder names.
    pub(crate) fn tag(&self) -> String {
        let threading = if self.free_threaded { "t" } else { "" };
        format!("cp{}{}{threading}", self.version.0, self.version.1)
    }
}

fn discover_uncached() -> Result<PythonInfo, String> {
    for var in ["BINDERY_PYTHON", "PYO3_PYTHON"] {
        if let Some(value) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            return PythonInfo::at(&value).map_err(|e| {
                format!(
                    "{var}={} does not name a working Python interpreter: {e}",
                    show(&value)
                )
            });
        }
    }
    PythonInfo::at("python3").map_err(|e| {
        format!(
            "no Python interpreter found: BINDERY_PYTHON and PYO3_PYTHON are not set, and \
             `python3` on PATH failed: {e}. Set BINDERY_PYTHON=/path/to/python3."
        )
    })
}

fn query(path: &Path) -> Result<PythonInfo, String> {
    let mut command = Command::new(path);
    // -I: ignore PYTHON* variables and the user site folder, which cannot change the answer
    // but could break start-up.
    command.args(["-I", "-c", QUERY]);
    let what = format!("running `{} -I -c <query>`", path.display());
    let done = run_with_timeout(command, QUERY_TIMEOUT).map_err(|e| format!("{what}: {e}"))?;
    if done.timed_out {
        return Err(format!("{what}: no answer within {QUERY_TIMEOUT:?}"));
    }
    let failed = |how: String| format!("{what}: {how}; stderr:\n{}", done.stderr.trim_end());
    match done.status.map(exit_code_or_signal) {
        Some(Ok(0)) => {}
        Some(Ok(code)) => return Err(failed(format!("exit code {code}"))),
        Some(Err(signal)) => {
            return Err(failed(format!(
                "killed by signal {signal} ({})",
                signal_name(signal)
            )));
        }
        None => return Err(failed("no exit status".into())),
    }
    parse_answer(&done.stdout, path)
        .map_err(|e| format!("{what}: {e}; it printed:\n{}", done.stdout))
}

fn parse_answer(stdout: &str, path: &Path) -> Result<PythonInfo, String> {
    let mut lines = stdout.lines();
    let mut next = |what: &str| lines.next().ok_or_else(|| format!("no line for {what}"));
    let executable = next("sys.executable")?;
    let version = next("the version")?;
    let ext_suffix = next("EXT_SUFFIX")?;
    let free_threaded = next("Py_GIL_DISABLED")? == "1";

    let mut parts = version.split('.').map(str::parse::<u32>);
    let (Some(Ok(major)), Some(Ok(minor)), Some(Ok(patch)), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("unreadable version {version:?}"));
    };
    if ext_suffix.is_empty() {
        return Err("sysconfig has no EXT_SUFFIX (not a CPython 3 interpreter?)".into());
    }
    Ok(PythonInfo {
        // An embedded or unusual interpreter may not know its own path: use the one we ran.
        executable: if executable.is_empty() {
            path.to_path_buf()
        } else {
            PathBuf::from(executable)
        },
        version: (major, minor, patch),
        ext_suffix: ext_suffix.to_owned(),
        free_threaded,
    })
}

fn show(value: &OsString) -> String {
    value.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_interpreter_answer() {
        let info = parse_answer(
            "/opt/py/bin/python3.13\n3.13.0\n.cpython-313t-x86_64-linux-gnu.so\n1\n",
            Path::new("python3"),
        )
        .unwrap();
        assert_eq!(info.executable, PathBuf::from("/opt/py/bin/python3.13"));
        assert_eq!(info.version, (3, 13, 0));
        assert!(info.free_threaded);
        assert_eq!(info.tag(), "cp313t");
        assert_eq!(info.describe_version(), "3.13.0 (free-threaded)");
        assert!(info.at_least(3, 12) && info.at_least(3, 13) && !info.at_least(3, 14));
        assert!(!info.at_least(4, 0));
    }

    #[test]
    fn rejects_a_garbled_answer() {
        assert!(parse_answer("/p\n3.x.1\n.so\n0\n", Path::new("p")).is_err());
        assert!(parse_answer("/p\n3.11.7\n", Path::new("p")).is_err());
        assert!(parse_answer("/p\n3.11.7\n\n0\n", Path::new("p")).is_err());
    }

    #[test]
    fn a_missing_interpreter_is_an_error_naming_it() {
        let err = PythonInfo::at("/nonexistent/bindery/python3").unwrap_err();
        assert!(err.contains("/nonexistent/bindery/python3"), "{err}");
    }
}
