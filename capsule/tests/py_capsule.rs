//! bindery-capsule seen from Python, in fresh interpreter processes (CI reruns this binary
//! on every Python version with BINDERY_PYTHON): destructor policies at interpreter
//! shutdown, two separately built modules sharing a capsule, one capsule per
//! subinterpreter, refusal of foreign objects, and the race loser's disposal.
//!
//! The modules are `examples/capsule-a` and `examples/capsule-b`; their `Probe` value writes
//! `bindery-probe: drop <tag>` (or `custom <tag>` under the custom policy) to stderr, so
//! counting those lines counts how each value ended.
//!
//! Where shutdown order matters, a script runs three times, each in a fresh process (the
//! shake-out `Script::reruns(3)` gives); the runs are driven from here because an `Outcome`
//! carries only the last run's stderr, and every run's counts must be right.

use bindery_testkit::{Extension, Outcome, Script};

/// Fresh processes per shutdown-sensitive script.
const RUNS: u32 = 3;

/// A script with both example modules built for the test's interpreter and importable.
fn with_modules(code: &str) -> Script {
    Script::new(code)
        .extension(Extension::new("bindery-example-capsule-a"))
        .extension(Extension::new("bindery-example-capsule-b"))
}

/// Runs `script` [`RUNS`] times, checking each run's outcome.
fn check_each_run(script: &Script, verify: impl Fn(&Outcome)) {
    for _ in 0..RUNS {
        verify(&script.check());
    }
}

/// The `bindery-probe:` lines of a run's stderr, plus the markers a script wrote there
/// (`marker: ...`), in order.
fn events(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .map(str::trim_end)
        .filter(|line| line.starts_with("bindery-probe: ") || line.starts_with("marker: "))
        .collect()
}

fn count(events: &[&str], line: &str) -> usize {
    events.iter().filter(|event| **event == line).count()
}

/// Index of `line` in `events`; panics with the events if absent.
fn position(events: &[&str], line: &str) -> usize {
    events
        .iter()
        .position(|event| *event == line)
        .unwrap_or_else(|| panic!("{line:?} not in {events:#?}"))
}

/// Python that writes `marker: <text>` to stderr, flushed, so its place among the probe
/// lines (written by Rust to fd 2) tells when things happened.
const MARK: &str = r#"
import sys
def mark(text):
    sys.stderr.write("marker: " + text + "\n")
    sys.stderr.flush()
"#;

fn policy_script(policy: &str) -> Script {
    with_modules(&format!(
        r#"{MARK}
import bindery_example_capsule_a as a, bindery_example_capsule_b as b
address, created = a.get_or_create("bindery.test.policy", "{policy}", "first")
assert created
# The second module finds it: its make (and its probe) never runs.
assert b.get_or_create("bindery.test.policy", "{policy}", "second") == (address, False)
assert a.read("bindery.test.policy") == "first"
mark("end of script")
"#
    ))
}

#[test]
fn drop_policy_drops_exactly_once_at_shutdown() {
    check_each_run(&policy_script("drop"), |outcome| {
        let events = events(&outcome.stderr);
        assert_eq!(
            count(&events, "bindery-probe: drop first"),
            1,
            "{events:#?}"
        );
        assert!(
            position(&events, "marker: end of script")
                < position(&events, "bindery-probe: drop first"),
            "the value lives until shutdown: {events:#?}"
        );
        assert!(!outcome.stderr.contains("second"), "{}", outcome.stderr);
        assert!(!outcome.stderr.contains("custom"), "{}", outcome.stderr);
    });
}

#[test]
fn leak_policy_never_drops() {
    check_each_run(&policy_script("leak"), |outcome| {
        let events = events(&outcome.stderr);
        assert_eq!(events, ["marker: end of script"], "leaked values never end");
    });
}

#[test]
fn custom_policy_runs_once_at_shutdown() {
    check_each_run(&policy_script("custom"), |outcome| {
        let events = events(&outcome.stderr);
        assert_eq!(
            events,
            ["marker: end of script", "bindery-probe: custom first"],
            "the custom function runs exactly once, instead of Drop"
        );
    });
}

#[test]
fn two_separately_built_modules_share_one_capsule_per_key() {
    let script = with_modules(
        r#"
        import bindery_example_capsule_a as a, bindery_example_capsule_b as b
        # Two different shared objects, two copies of bindery-capsule's code.
        assert a.__file__ != b.__file__, (a.__file__, b.__file__)
        assert a.get_or_create is not b.get_or_create

        first = a.get_or_create("bindery.test.shared", "drop", "from-a")
        assert first[1] is True, first
        again = b.get_or_create("bindery.test.shared", "drop", "from-b")
        assert again == (first[0], False), (first, again)
        assert b.read("bindery.test.shared") == "from-a"
        assert a.capsule("bindery.test.shared") is b.capsule("bindery.test.shared")

        # The other way round: b creates, a finds.
        first = b.get_or_create("bindery.test.shared2", "leak", "b-first")
        assert first[1] is True
        assert a.get_or_create("bindery.test.shared2", "leak", "a-second") == (first[0], False)
        assert a.read("bindery.test.shared2") == "b-first"

        # Different keys never share.
        other = a.get_or_create("bindery.test.shared3", "drop", "third")
        assert other[1] is True and other[0] != first[0]
        print("shared ok")
        "#,
    );
    check_each_run(&script, |outcome| {
        assert_eq!(outcome.stdout, "shared ok\n");
        let events = events(&outcome.stderr);
        assert_eq!(
            count(&events, "bindery-probe: drop from-a"),
            1,
            "{events:#?}"
        );
        assert_eq!(
            count(&events, "bindery-probe: drop third"),
            1,
            "{events:#?}"
        );
        for never in ["from-b", "b-first", "a-second"] {
            assert!(
                !outcome.stderr.contains(never),
                "{never}: {}",
                outcome.stderr
            );
        }
    });
}

/// Body run in a subinterpreter: its own capsule under the main interpreter's key, found by
/// both modules, dropped when the subinterpreter is destroyed.
const IN_SUBINTERPRETER: &str = r#"
import bindery_example_capsule_a as a, bindery_example_capsule_b as b
assert a.interpreter_id() != 0
address, created = a.get_or_create("bindery.test.interp", "drop", TAG)
assert created is True, "a subinterpreter starts without the main interpreter's capsule"
assert address != MAIN_ADDRESS
assert b.get_or_create("bindery.test.interp", "drop", "unused") == (address, False)
assert b.read("bindery.test.interp") == TAG
"#;

fn subinterpreter_script(own_gil: bool) -> Script {
    let tag = if own_gil { "own-gil" } else { "shared-gil" };
    with_modules(&format!(
        r#"{MARK}
import bindery_example_capsule_a as a
main_address, created = a.get_or_create("bindery.test.interp", "drop", "main")
assert created and a.interpreter_id() == 0
body = "TAG = %r\nMAIN_ADDRESS = %d\n" % ("{tag}", main_address) + {IN_SUBINTERPRETER:?}
run_in_subinterpreter(body, own_gil={own_gil})
mark("subinterpreter destroyed")
run_in_subinterpreter(body, own_gil={own_gil})
mark("second subinterpreter destroyed")
assert a.get_or_create("bindery.test.interp", "drop", "late") == (main_address, False)
assert a.read("bindery.test.interp") == "main"
mark("end of script")
"#,
        own_gil = if own_gil { "True" } else { "False" },
    ))
    .with_subinterpreter_helpers()
}

fn check_subinterpreter_outcome(outcome: &Outcome, tag: &str) {
    let events = events(&outcome.stderr);
    let drop_sub = format!("bindery-probe: drop {tag}");
    assert_eq!(
        events,
        [
            drop_sub.as_str(),
            "marker: subinterpreter destroyed",
            drop_sub.as_str(),
            "marker: second subinterpreter destroyed",
            "marker: end of script",
            "bindery-probe: drop main",
        ],
        "each subinterpreter's value is dropped once, when it is destroyed; main's at exit"
    );
}

#[test]
fn each_shared_gil_subinterpreter_gets_its_own_capsule() {
    check_each_run(&subinterpreter_script(false), |outcome| {
        check_subinterpreter_outcome(outcome, "shared-gil");
    });
}

#[test]
fn each_own_gil_subinterpreter_gets_its_own_capsule() {
    if !bindery_testkit::requires_python(3, 12, "own-GIL subinterpreters") {
        return;
    }
    check_each_run(&subinterpreter_script(true), |outcome| {
        check_subinterpreter_outcome(outcome, "own-gil");
    });
}

#[test]
fn foreign_objects_under_the_key_are_refused_and_left_untouched() {
    let outcome = with_modules(
        r#"
        import bindery_example_capsule_a as a
        import datetime  # its C API capsule is a real capsule with another name

        def refused(key, expected_type, *expected_text):
            for call in (lambda: a.get_or_create(key, "drop", "x"), lambda: a.capsule(key)):
                try:
                    call()
                except expected_type as error:
                    text = str(error)
                    for part in expected_text:
                        assert part in text, (part, text)
                else:
                    raise AssertionError("no error for %r" % (key,))

        state = a.state_dict()
        foreign = ["payload"]
        state["bindery.test.foreign"] = foreign
        refused("bindery.test.foreign", TypeError,
                '"bindery.test.foreign"', "`list`", "not a capsule", "left untouched")
        assert state["bindery.test.foreign"] is foreign and foreign == ["payload"]

        capi = datetime.datetime_CAPI
        state["bindery.test.capsule"] = capi
        refused("bindery.test.capsule", TypeError,
                '"bindery.test.capsule"', '"datetime.datetime_CAPI"', "choose a different key")
        assert state["bindery.test.capsule"] is capi
        import datetime as again
        assert again.datetime(2000, 1, 2).day == 2  # the foreign capsule still works

        # Nothing was created under those keys; a fresh key still works.
        assert a.get_or_create("bindery.test.fresh", "leak", "fresh")[1] is True
        print("refused ok")
        "#,
    )
    .check();
    assert_eq!(outcome.stdout, "refused ok\n");
    assert!(
        !outcome.stderr.contains("bindery-probe: drop x"),
        "make never ran: {}",
        outcome.stderr
    );
}

#[test]
fn a_capsule_of_another_value_type_is_refused_naming_both_types() {
    let outcome = with_modules(
        r#"
        import bindery_example_capsule_a as a, bindery_example_capsule_b as b
        address, _ = a.get_or_create("bindery.test.types", "drop", "probe")
        try:
            b.get_or_create_other("bindery.test.types")
        except TypeError as error:
            print(error)
        else:
            raise AssertionError("a Probe capsule was read as Other")
        assert b.read("bindery.test.types") == "probe"
        assert a.get_or_create("bindery.test.types", "drop", "y") == (address, False)
        "#,
    )
    .check();
    let message = outcome.stdout.trim();
    assert!(message.contains("\"bindery.test.types\""), "{message}");
    assert!(
        message.contains("::Probe (size "),
        "found type named: {message}"
    );
    assert!(
        message.contains("::Other (size 4, align 4)"),
        "requested type named: {message}"
    );
    let events = events(&outcome.stderr);
    assert_eq!(
        events,
        ["bindery-probe: drop probe"],
        "the existing value is untouched"
    );
}

#[test]
fn race_loser_drops_its_value_exactly_once_even_under_leak() {
    let script = with_modules(&format!(
        r#"{MARK}
import bindery_example_capsule_a as a, bindery_example_capsule_b as b
inner = []
def race():
    # Runs inside a's make: b installs first, so a's outer call must lose.
    inner.append(b.get_or_create("bindery.test.race", "leak", "winner"))
outer = a.get_or_create_with("bindery.test.race", "leak", "loser", race)
assert inner[0][1] is True, inner
assert outer == (inner[0][0], False), (outer, inner)
assert a.read("bindery.test.race") == "winner"
mark("after race")

inner = []
def race_custom():
    inner.append(b.get_or_create("bindery.test.race_custom", "custom", "custom-winner"))
outer = a.get_or_create_with("bindery.test.race_custom", "custom", "custom-loser", race_custom)
assert outer == (inner[0][0], False), (outer, inner)
mark("end of script")
"#
    ));
    check_each_run(&script, |outcome| {
        let events = events(&outcome.stderr);
        assert_eq!(
            events,
            [
                "bindery-probe: drop loser",
                "marker: after race",
                "bindery-probe: custom custom-loser",
                "marker: end of script",
                "bindery-probe: custom custom-winner",
            ],
            "the loser disposes of its value at once, exactly once; the leaked winner never ends"
        );
    });
}

#[test]
fn an_exception_in_make_is_reported_and_its_value_dropped() {
    let outcome = with_modules(
        r#"
        import bindery_example_capsule_a as a
        def fail():
            raise KeyError("from the callback")
        try:
            a.get_or_create_with("bindery.test.raising", "leak", "doomed", fail)
        except RuntimeError as error:
            print(error)
        else:
            raise AssertionError("the callback's exception was lost")
        assert a.capsule("bindery.test.raising") is None, "nothing was installed"
        assert a.get_or_create("bindery.test.raising", "leak", "later")[1] is True
        "#,
    )
    .check();
    let message = outcome.stdout.trim();
    assert!(
        message.contains("KeyError: 'from the callback'"),
        "{message}"
    );
    assert!(message.contains("\"bindery.test.raising\""), "{message}");
    let events = events(&outcome.stderr);
    assert_eq!(
        events,
        ["bindery-probe: drop doomed"],
        "an unshared value is dropped, not leaked"
    );
}
