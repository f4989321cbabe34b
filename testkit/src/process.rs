//! Running a child process with a timeout: its own process group, output read on threads,
//! and the whole group killed on expiry so that grandchildren holding the pipes open cannot
//! hang the test. Also: signal numbers to names.

use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long to wait, after killing the process group, for the child to be reaped and for
/// the pipes to close.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// `SIGKILL` (the same number on every Unix).
const SIGKILL: i32 = 9;

// std exposes no way to signal a process group, and this crate has no dependencies (not
// even `libc`), so it declares the one POSIX function it needs. `pid_t` is `i32` on every
// Unix Rust supports.
unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

/// What became of one child process.
#[derive(Debug)]
pub(crate) struct Finished {
    /// The exit status; `None` only if the child could not be reaped after being killed.
    pub(crate) status: Option<ExitStatus>,
    /// Whether the time ran out (the whole process group was then killed).
    pub(crate) timed_out: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) elapsed: Duration,
}

/// Runs `command` with stdin from `/dev/null`, stdout and stderr captured, in a new process
/// group, for at most `timeout`.
///
/// On expiry the whole process group gets `SIGKILL`, and whatever output arrived until then
/// is returned. If the child exits but something it started keeps the output pipes open past
/// the timeout, that counts as a timeout too (the group is killed, a note is appended to
/// stderr).
pub(crate) fn run_with_timeout(mut command: Command, timeout: Duration) -> io::Result<Finished> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let start = Instant::now();
    let deadline = start + timeout;
    let mut child = command.spawn()?;
    // The child is its own process group leader, so its pid is the group id.
    let group =
        i32::try_from(child.id()).map_err(|_| io::Error::other("child pid does not fit pid_t"))?;

    let (done_tx, done_rx) = mpsc::channel::<()>();
    let stdout = spawn_reader(child.stdout.take(), done_tx.clone());
    let stderr = spawn_reader(child.stderr.take(), done_tx);
    let status_rx = spawn_waiter(child);

    let mut timed_out = false;
    let mut note = None;
    let status = match status_rx.recv_timeout(timeout) {
        Ok(status) => {
            let status = status?;
            if !wait_for_readers(&done_rx, deadline) {
                timed_out = true;
                note = Some(format!(
                    "[bindery-testkit: the interpreter exited ({status}) but a process it \
                     started kept stdout/stderr open until the timeout of {timeout:?}; the \
                     process group was killed]"
                ));
                kill_group(group);
                wait_for_readers(&done_rx, Instant::now() + KILL_GRACE);
            }
            Some(status)
        }
        Err(RecvTimeoutError::Timeout) => {
            timed_out = true;
            kill_group(group);
            let status = status_rx.recv_timeout(KILL_GRACE).ok().and_then(Result::ok);
            wait_for_readers(&done_rx, Instant::now() + KILL_GRACE);
            status
        }
        Err(RecvTimeoutError::Disconnected) => {
            return Err(io::Error::other(
                "the thread waiting for the child vanished",
            ));
        }
    };
    let elapsed = start.elapsed();

    let stdout = take_text(&stdout);
    let mut stderr = take_text(&stderr);
    if let Some(note) = note {
        if !stderr.is_empty() && !stderr.ends_with('\n') {
            stderr.push('\n');
        }
        stderr.push_str(&note);
        stderr.push('\n');
    }
    Ok(Finished {
        status,
        timed_out,
        stdout,
        stderr,
        elapsed,
    })
}

type Buffer = Arc<Mutex<Vec<u8>>>;

/// Copies `pipe` into a shared buffer on a thread (so partial output survives a kill), and
/// signals `done` at end of file.
fn spawn_reader(pipe: Option<impl Read + Send + 'static>, done: mpsc::Sender<()>) -> Buffer {
    let buffer = Buffer::default();
    let sink = Arc::clone(&buffer);
    thread::spawn(move || {
        if let Some(mut pipe) = pipe {
            let mut chunk = [0u8; 8192];
            loop {
                match pipe.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => lock(&sink).extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
        }
        // The receiver may be gone if the run gave up on this reader: nothing to tell.
        let _ = done.send(());
    });
    buffer
}

/// Reaps `child` on a thread and sends its status.
fn spawn_waiter(mut child: Child) -> Receiver<io::Result<ExitStatus>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        // The receiver may be gone if the run gave up waiting: nothing to tell.
        let _ = tx.send(child.wait());
    });
    rx
}

/// Waits until both readers reached end of file or `deadline` passed; true if they did.
fn wait_for_readers(done: &Receiver<()>, deadline: Instant) -> bool {
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(Instant::now());
        if done.recv_timeout(left).is_err() {
            return false;
        }
    }
    true
}

/// Sends `SIGKILL` to every process in the process group `group`.
fn kill_group(group: i32) {
    // SAFETY: kill(2) only reads its two integer arguments; a negative pid addresses the
    // process group, which exists at least as long as any of its members (the group id
    // cannot be reused before then). A failure (ESRCH: the group is already gone) is fine.
    unsafe {
        kill(-group, SIGKILL);
    }
}

fn lock(buffer: &Buffer) -> std::sync::MutexGuard<'_, Vec<u8>> {
    // A reader thread never panics while holding the lock, but a poisoned buffer still holds
    // valid bytes.
    buffer
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn take_text(buffer: &Buffer) -> String {
    String::from_utf8_lossy(&lock(buffer)).into_owned()
}

/// The conventional name of signal `number` (`"SIGSEGV"` for 11), or `"unknown signal"`.
///
/// Numbers 1-15 except 7 and 10 are the same on every Unix; the rest follows the platform.
pub(crate) fn signal_name(number: i32) -> &'static str {
    match number {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => platform_signal_name(number),
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn platform_signal_name(number: i32) -> &'static str {
    match number {
        7 => "SIGBUS",
        10 => "SIGUSR1",
        12 => "SIGUSR2",
        16 => "SIGSTKFLT",
        17 => "SIGCHLD",
        18 => "SIGCONT",
        19 => "SIGSTOP",
        20 => "SIGTSTP",
        21 => "SIGTTIN",
        22 => "SIGTTOU",
        23 => "SIGURG",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        26 => "SIGVTALRM",
        27 => "SIGPROF",
        28 => "SIGWINCH",
        29 => "SIGIO",
        30 => "SIGPWR",
        31 => "SIGSYS",
        32..=64 => "SIGRT (real-time signal)",
        _ => "unknown signal",
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn platform_signal_name(number: i32) -> &'static str {
    // macOS and the BSDs share this numbering.
    match number {
        7 => "SIGEMT",
        10 => "SIGBUS",
        12 => "SIGSYS",
        16 => "SIGURG",
        17 => "SIGSTOP",
        18 => "SIGTSTP",
        19 => "SIGCONT",
        20 => "SIGCHLD",
        21 => "SIGTTIN",
        22 => "SIGTTOU",
        23 => "SIGIO",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        26 => "SIGVTALRM",
        27 => "SIGPROF",
        28 => "SIGWINCH",
        29 => "SIGINFO",
        30 => "SIGUSR1",
        31 => "SIGUSR2",
        _ => "unknown signal",
    }
}

/// How an exit status ended: `Ok(code)` for a normal exit, `Err(signal)` for a signal.
pub(crate) fn exit_code_or_signal(status: ExitStatus) -> Result<i32, i32> {
    match (status.code(), status.signal()) {
        (Some(code), _) => Ok(code),
        (None, Some(signal)) => Err(signal),
        // Neither (stopped/continued statuses are never returned by wait()): report as-is.
        (None, None) => Ok(status.into_raw()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_signals_a_crash_test_meets() {
        assert_eq!(signal_name(11), "SIGSEGV");
        assert_eq!(signal_name(6), "SIGABRT");
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(8), "SIGFPE");
        assert_eq!(signal_name(4), "SIGILL");
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(2), "SIGINT");
        assert_eq!(signal_name(0), "unknown signal");
        assert_eq!(signal_name(-3), "unknown signal");
        assert_eq!(signal_name(1000), "unknown signal");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn names_linux_specific_numbers() {
        assert_eq!(signal_name(7), "SIGBUS");
        assert_eq!(signal_name(10), "SIGUSR1");
        assert_eq!(signal_name(31), "SIGSYS");
        assert_eq!(signal_name(34), "SIGRT (real-time signal)");
    }

    #[test]
    fn captures_output_and_status() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let done = run_with_timeout(cmd, Duration::from_secs(30)).unwrap();
        assert!(!done.timed_out);
        assert_eq!(exit_code_or_signal(done.status.unwrap()), Ok(3));
        assert_eq!(done.stdout, "out\n");
        assert_eq!(done.stderr, "err\n");
    }

    #[test]
    fn reports_death_by_signal() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "kill -SEGV $$"]);
        let done = run_with_timeout(cmd, Duration::from_secs(30)).unwrap();
        assert_eq!(exit_code_or_signal(done.status.unwrap()), Err(11));
    }

    #[test]
    fn kills_the_whole_group_when_a_grandchild_holds_the_pipes() {
        // The shell starts a background grandchild that inherits stdout and sleeps; the
        // shell itself waits too. Killing only the shell would leave the pipe open.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo started; sleep 100 & wait"]);
        let start = Instant::now();
        let done = run_with_timeout(cmd, Duration::from_millis(500)).unwrap();
        assert!(done.timed_out);
        assert_eq!(done.stdout, "started\n");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(exit_code_or_signal(done.status.unwrap()), Err(SIGKILL));
    }

    #[test]
    fn a_grandchild_outliving_the_child_with_the_pipes_is_a_timeout() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 100 & exit 0"]);
        let start = Instant::now();
        let done = run_with_timeout(cmd, Duration::from_millis(500)).unwrap();
        assert!(done.timed_out);
        assert_eq!(exit_code_or_signal(done.status.unwrap()), Ok(0));
        assert!(
            done.stderr.contains("kept stdout/stderr open"),
            "{}",
            done.stderr
        );
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
    }
}
