//! bindery-testkit's behaviour against a real interpreter: the default one, or the one in
//! BINDERY_PYTHON (CI reruns this binary on every installed Python version).

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bindery_testkit::{
    Extension, FailureKind, PythonInfo, Script, ScriptFailure, check_script_success_in_subprocess,
    python, requires_python,
};

const PROBE_PACKAGE: &str = "bindery-example-testkit-probe";
const PROBE_MODULE: &str = "bindery_example_testkit_probe";

/// A fresh empty folder for one test.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "bindery-testkit-test-{}-{name}",
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn expect_failure(script: &Script) -> ScriptFailure {
    match script.run() {
        Ok(outcome) => panic!("expected the script to fail, but it passed: {outcome:?}"),
        Err(failure) => failure,
    }
}

#[test]
fn successful_script_returns_its_output() {
    check_script_success_in_subprocess("import sys; assert sys.version_info >= (3, 9)");

    let outcome = Script::new("import sys\nprint('hello'); print('warn', file=sys.stderr)").check();
    assert!(outcome.status.success());
    assert_eq!(outcome.stdout, "hello\n");
    assert_eq!(outcome.stderr, "warn\n");
    assert_eq!(outcome.runs, 1);
    assert_eq!(outcome.python, python());
}

#[test]
fn the_script_sees_the_testkits_environment() {
    let outcome = Script::new(
        "
        import os, sys
        print(os.environ['PYTHONFAULTHANDLER'], os.environ['PYTHONDONTWRITEBYTECODE'])
        print(sys.flags.dont_write_bytecode, sys.stdin.read() == '')
        ",
    )
    .check();
    assert_eq!(outcome.stdout, "1 1\n1 True\n");
}

#[test]
fn pythonpath_env_and_cwd_reach_the_interpreter() {
    let modules = scratch_dir("pythonpath-modules");
    let more = scratch_dir("pythonpath-more");
    let work = scratch_dir("pythonpath-cwd");
    fs::write(
        modules.join("testkit_helper_mod.py"),
        "VALUE = 'from helper'\n",
    )
    .unwrap();
    fs::write(more.join("testkit_other_mod.py"), "VALUE = 'from other'\n").unwrap();

    let outcome = Script::new(
        "
        import os, testkit_helper_mod, testkit_other_mod
        print(testkit_helper_mod.VALUE, testkit_other_mod.VALUE, os.environ['BINDERY_TESTKIT_X'])
        print(os.getcwd())
        ",
    )
    .pythonpath(&modules)
    .pythonpath(&more)
    .env("BINDERY_TESTKIT_X", "42")
    .cwd(&work)
    .check();
    let cwd = fs::canonicalize(&work).unwrap();
    assert_eq!(
        outcome.stdout,
        format!("from helper from other 42\n{}\n", cwd.display())
    );
    for dir in [modules, more, work] {
        fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn a_failing_exit_code_is_reported_with_the_code() {
    let failure = expect_failure(&Script::new("import sys; print('bye'); sys.exit(3)"));
    assert_eq!(failure.kind, FailureKind::ExitCode(3));
    assert_eq!((failure.run, failure.runs), (1, 1));
    assert_eq!(failure.stdout, "bye\n");
    let report = failure.to_string();
    assert!(
        report.starts_with("Python script exited with code 3 on run 1 of 1\n"),
        "{report}"
    );

    let failure = expect_failure(&Script::new("raise ValueError('no good')"));
    assert_eq!(failure.kind, FailureKind::ExitCode(1));
    assert!(
        failure.stderr.contains("ValueError: no good"),
        "{}",
        failure.stderr
    );
}

#[test]
fn a_crash_is_reported_with_the_signal_name_and_traceback() {
    let failure = expect_failure(&Script::new(
        "
        import os
        def crash_here():
            os.abort()
        crash_here()
        ",
    ));
    assert_eq!(
        failure.kind,
        FailureKind::Signal {
            number: 6,
            name: "SIGABRT"
        }
    );
    let report = failure.to_string();
    assert!(
        report.starts_with("Python script killed by signal 6 (SIGABRT) on run 1 of 1\n"),
        "{report}"
    );
    // PYTHONFAULTHANDLER=1: the Python traceback of the crash is in stderr.
    assert!(
        failure.stderr.contains("Fatal Python error: Aborted"),
        "{}",
        failure.stderr
    );
    assert!(failure.stderr.contains("crash_here"), "{}", failure.stderr);
}

#[test]
fn a_hang_is_killed_and_reported_as_a_timeout() {
    let start = Instant::now();
    let failure = expect_failure(
        &Script::new("import time\nprint('about to sleep')\ntime.sleep(100)")
            .timeout(Duration::from_secs(1)),
    );
    let elapsed = start.elapsed();
    assert_eq!(failure.kind, FailureKind::Timeout(Duration::from_secs(1)));
    // A bound, not a benchmark: the 100 s sleep must not be waited out.
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    // Output printed before the kill is kept (PYTHONUNBUFFERED=1).
    assert_eq!(failure.stdout, "about to sleep\n");
    let report = failure.to_string();
    assert!(
        report.starts_with("Python script timed out after 1s on run 1 of 1"),
        "{report}"
    );
}

#[test]
fn a_grandchild_holding_the_pipes_cannot_hang_the_test() {
    let start = Instant::now();
    let failure = expect_failure(
        &Script::new(
            "
            import subprocess, sys, time
            subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(100)'])
            time.sleep(100)
            ",
        )
        .timeout(Duration::from_secs(1)),
    );
    assert_eq!(failure.kind, FailureKind::Timeout(Duration::from_secs(1)));
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
}

/// A script that counts its runs in a file and fails on run `fail_on` (if any).
fn counting_script(counter: &PathBuf, fail_on: u32) -> Script {
    Script::new(format!(
        "
        import os, sys
        path = os.environ['BINDERY_TESTKIT_COUNTER']
        n = (int(open(path).read()) if os.path.exists(path) else 0) + 1
        open(path, 'w').write(str(n))
        print('run', n)
        if n == {fail_on}:
            sys.exit('failing on run %d' % n)
        "
    ))
    .env("BINDERY_TESTKIT_COUNTER", counter)
}

#[test]
fn reruns_stop_at_the_first_failing_run_and_name_it() {
    let dir = scratch_dir("reruns-failing");
    let counter = dir.join("counter");
    let failure = expect_failure(&counting_script(&counter, 3).reruns(5));
    assert_eq!(failure.kind, FailureKind::ExitCode(1));
    assert_eq!((failure.run, failure.runs), (3, 5));
    assert_eq!(failure.stdout, "run 3\n");
    assert!(
        failure.stderr.contains("failing on run 3"),
        "{}",
        failure.stderr
    );
    assert!(failure.to_string().contains("on run 3 of 5"), "{failure}");
    // It stopped there: no fourth run.
    assert_eq!(fs::read_to_string(&counter).unwrap(), "3");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn reruns_that_all_pass_return_the_last_run() {
    let dir = scratch_dir("reruns-passing");
    let counter = dir.join("counter");
    let outcome = counting_script(&counter, 0).reruns(4).check();
    assert_eq!(outcome.runs, 4);
    assert_eq!(outcome.stdout, "run 4\n");
    assert_eq!(fs::read_to_string(&counter).unwrap(), "4");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn expect_failure_containing_passes_when_the_text_is_there() {
    let outcome = Script::new("raise SystemExit('fatal: internals were already created')")
        .expect_failure_containing("internals were already created")
        .check();
    assert_eq!(outcome.status.code(), Some(1));

    // A crash counts as a failure too; the text may be in stdout or stderr.
    Script::new("import os; print('marker in stdout'); os.abort()")
        .expect_failure_containing("marker in stdout")
        .check();
}

#[test]
fn expect_failure_containing_fails_when_the_text_is_absent() {
    let failure = expect_failure(
        &Script::new("raise RuntimeError('something else')")
            .expect_failure_containing("internals were already created"),
    );
    assert_eq!(
        failure.kind,
        FailureKind::MissingText("internals were already created".into())
    );
    assert!(failure.stderr.contains("something else"));
}

#[test]
fn expect_failure_containing_fails_when_the_script_succeeds() {
    let failure = expect_failure(
        &Script::new("print('internals were already created')")
            .expect_failure_containing("internals were already created"),
    );
    assert_eq!(failure.kind, FailureKind::SucceededUnexpectedly);
    assert!(
        failure.to_string().contains("expected to fail"),
        "{failure}"
    );
}

#[test]
fn indented_code_with_a_leading_newline_is_dedented() {
    let outcome = Script::new(
        "
            import sys
            if sys.version_info >= (3, 9):
                print('dedented')
        ",
    )
    .check();
    assert_eq!(outcome.stdout, "dedented\n");
}

#[test]
fn the_panic_message_is_a_complete_report() {
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        check_script_success_in_subprocess(
            "
            import sys
            print('to stdout')
            print('to stderr', file=sys.stderr)
            sys.exit(5)
            ",
        );
    }));
    let payload = result.expect_err("the script failed, so the check must panic");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .expect("the panic message is a String");
    let python = python();
    let expected = [
        "Python script exited with code 5 on run 1 of 1".to_owned(),
        format!("interpreter: {}", python.executable.display()),
        format!(
            "(Python {}.{}.{}",
            python.version.0, python.version.1, python.version.2
        ),
        "1 | import sys".to_owned(),
        "2 | print('to stdout')".to_owned(),
        "4 | sys.exit(5)".to_owned(),
        "--- stdout ---\nto stdout\n".to_owned(),
        "--- stderr ---\nto stderr\n".to_owned(),
    ];
    for part in expected {
        assert!(message.contains(&part), "{part:?} not in:\n{message}");
    }
}

#[test]
fn a_missing_interpreter_is_reported_as_such() {
    let failure = expect_failure(&Script::new("pass").python("/nonexistent/bindery/python3"));
    assert!(
        matches!(&failure.kind, FailureKind::Interpreter(e) if e.contains("/nonexistent/bindery/python3")),
        "{failure}"
    );
    assert_eq!(failure.python, None);
}

#[test]
fn a_staged_extension_is_importable_and_works() {
    let outcome = Script::new(
        "
        import bindery_example_testkit_probe as probe
        assert probe.add(2, 3) == 5, probe.add(2, 3)
        assert probe.add(10**30, 1) == 10**30 + 1
        assert probe.interpreter_id == 0
        for args in [(1,), (1, 'x'), (1.5, 2)]:
            try:
                probe.add(*args)
            except TypeError as e:
                print(e)
            else:
                raise AssertionError('no TypeError for %r' % (args,))
        ",
    )
    .extension(Extension::new(PROBE_PACKAGE))
    .check();
    assert_eq!(
        outcome.stdout,
        "add() takes exactly 2 arguments (1 given)\n\
         add() argument 2 must be int, not str\n\
         add() argument 1 must be int, not float\n"
    );
}

#[test]
fn stage_puts_the_module_alone_under_the_interpreters_suffix() {
    let python = python();
    let staged = Extension::new(PROBE_PACKAGE)
        .module_name(PROBE_MODULE)
        .stage(&python)
        .unwrap();
    assert_eq!(staged.module, PROBE_MODULE);
    assert_eq!(
        staged.path,
        staged
            .dir
            .join(format!("{PROBE_MODULE}{}", python.ext_suffix))
    );
    let entries: Vec<_> = fs::read_dir(&staged.dir).unwrap().collect();
    assert_eq!(entries.len(), 1);
    // Staging again gives a fresh folder with the same (cached) build.
    let again = Extension::new(PROBE_PACKAGE).stage(&python).unwrap();
    assert_ne!(again.dir, staged.dir);
    assert_eq!(
        fs::read(&again.path).unwrap(),
        fs::read(&staged.path).unwrap()
    );
    fs::remove_dir_all(staged.dir).unwrap();
    fs::remove_dir_all(again.dir).unwrap();
}

#[test]
fn an_extension_that_does_not_build_reports_cargos_error() {
    let failure =
        expect_failure(&Script::new("pass").extension(Extension::new("bindery-no-such-package")));
    match &failure.kind {
        FailureKind::Extension(e) => {
            assert!(e.contains("bindery-no-such-package"), "{e}");
            assert!(e.contains("cargo's stderr"), "{e}");
        }
        other => panic!("expected an Extension failure, got {other:?}\n{failure}"),
    }
}

#[test]
fn subinterpreters_with_a_shared_gil_import_the_extension() {
    let outcome = Script::new(
        "
        run_in_subinterpreter('''
        import bindery_example_testkit_probe as probe
        assert probe.add(2, 3) == 5
        assert probe.interpreter_id != 0, probe.interpreter_id
        print('shared-GIL subinterpreter', probe.interpreter_id)
        ''')
        try:
            run_in_subinterpreter('raise ValueError(\"from the subinterpreter\")')
        except RuntimeError as e:
            assert 'from the subinterpreter' in str(e), e
        else:
            raise AssertionError('the error in the subinterpreter was lost')
        import bindery_example_testkit_probe as probe
        assert probe.interpreter_id == 0 and probe.add(1, 1) == 2
        ",
    )
    .with_subinterpreter_helpers()
    .extension(Extension::new(PROBE_PACKAGE))
    .check();
    assert!(
        outcome.stdout.starts_with("shared-GIL subinterpreter "),
        "{}",
        outcome.stdout
    );
}

#[test]
fn subinterpreters_with_their_own_gil_import_the_extension() {
    if !requires_python(3, 12, "own-GIL subinterpreters") {
        // Below 3.12 the helper must refuse rather than silently share the GIL.
        Script::new(
            "
            assert not SUBINTERPRETERS_OWN_GIL
            run_in_subinterpreter('pass', own_gil=True)
            ",
        )
        .with_subinterpreter_helpers()
        .expect_failure_containing("own-GIL subinterpreters need Python 3.12+")
        .check();
        return;
    }
    let outcome = Script::new(
        "
        assert SUBINTERPRETERS_OWN_GIL
        run_in_subinterpreter('''
        import bindery_example_testkit_probe as probe
        assert probe.add(2, 3) == 5 and probe.interpreter_id != 0
        print('own-GIL subinterpreter')
        ''', own_gil=True)
        ",
    )
    .with_subinterpreter_helpers()
    .extension(Extension::new(PROBE_PACKAGE))
    .check();
    assert_eq!(outcome.stdout, "own-GIL subinterpreter\n");
}

#[test]
fn the_interpreter_is_the_one_bindery_python_names() {
    let default = python();
    if let Some(path) = std::env::var_os("BINDERY_PYTHON").filter(|v| !v.is_empty()) {
        let named = PythonInfo::at(&path).unwrap();
        assert_eq!(default, named, "BINDERY_PYTHON={path:?} was not used");
        // A pyenv interpreter's folder names its version: .../versions/3.12.1/bin/python3.
        let path = PathBuf::from(&path);
        let folder_version = path
            .ancestors()
            .nth(2)
            .filter(|dir| dir.parent().is_some_and(|p| p.ends_with("versions")))
            .and_then(|dir| dir.file_name())
            .map(|name| name.to_string_lossy().into_owned());
        if let Some(folder_version) = folder_version {
            let (a, b, c) = named.version;
            assert_eq!(folder_version, format!("{a}.{b}.{c}"));
        }
    }
    // Whatever was chosen, the scripts really run on it, and it reports itself truthfully.
    let outcome = Script::new(
        "
        import sys, sysconfig
        print('%d.%d.%d' % sys.version_info[:3])
        print(sys.executable)
        print(sysconfig.get_config_var('EXT_SUFFIX'))
        ",
    )
    .check();
    let (a, b, c) = default.version;
    assert_eq!(
        outcome.stdout,
        format!(
            "{a}.{b}.{c}\n{}\n{}\n",
            default.executable.display(),
            default.ext_suffix
        )
    );
    // The explicit choice wins over discovery, and reports the same facts.
    let explicit = Script::new("import sys; print(sys.executable)")
        .python(&default.executable)
        .check();
    assert_eq!(explicit.python, default);
}

#[test]
fn requires_python_compares_with_the_running_version() {
    let (major, minor, _) = python().version;
    assert!(requires_python(3, 9, "anything bindery supports"));
    assert!(requires_python(major, minor, "the running version"));
    assert!(!requires_python(major, minor + 1, "a newer version"));
    assert!(!requires_python(major + 1, 0, "the next major version"));
}

#[test]
fn forbidden_output_fails_the_run_that_prints_it_and_all_runs_are_kept() {
    use bindery_testkit::FailureKind;
    let dir = std::env::temp_dir().join(format!("bindery-forbid-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let counter = dir.join("count");
    let code = r#"
        import os, sys
        path = os.environ["COUNTER"]
        n = int(open(path).read()) + 1 if os.path.exists(path) else 1
        open(path, "w").write(str(n))
        print(f"run {n}")
        if n == 2:
            print("Exception ignored in: something", file=sys.stderr)
        "#;
    let failure = Script::new(code)
        .env("COUNTER", &counter)
        .reruns(3)
        .forbid_output("Exception ignored")
        .run()
        .expect_err("the second run prints forbidden text");
    assert_eq!(failure.run, 2, "{failure}");
    assert_eq!(
        failure.kind,
        FailureKind::ForbiddenText("Exception ignored".into())
    );
    assert!(failure.to_string().contains("forbid_output"), "{failure}");

    std::fs::remove_file(&counter).unwrap();
    let outcome = Script::new("print('same every time')")
        .reruns(3)
        .forbid_output("Traceback")
        .check();
    assert_eq!(outcome.all_runs.len(), 3);
    assert!(
        outcome
            .all_runs
            .iter()
            .all(|run| run.stdout == "same every time\n" && run.status.success())
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn preludes_run_before_the_script_each_dedented_on_its_own() {
    let outcome = Script::new(
        "
        assert first() == 1 and second() == 2
        print(order)
        ",
    )
    .prelude(
        "
        order = ['first']
        def first():
            return 1
        ",
    )
    .prelude(
        "
            order.append('second')
            def second():
                return 2
        ",
    )
    .check();
    assert_eq!(outcome.stdout, "['first', 'second']\n");
}
