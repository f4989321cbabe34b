//! In-process tests against an embedded interpreter (the one this test binary was built
//! for, linked with an rpath): behaviour that needs no interpreter start-up or shutdown.
//! Shutdown, subinterpreters and separately built modules are tested in subprocesses in
//! `py_capsule.rs`.

use bindery_capsule::{
    CapsuleError, Dtor, Owned, Python, SavedError, atomic_get_or_create_in_state_dict,
    capsule_value, get_capsule_from_state_dict, new_capsule, take_error_text,
};
use pyo3_ffi as ffi;
use std::ffi::CString;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};

static INIT: Once = Once::new();
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Detaches and deletes the test's thread state, also when an assertion panics.
struct Attached(*mut ffi::PyThreadState);

impl Drop for Attached {
    fn drop(&mut self) {
        // SAFETY: `self.0` is this thread's attached thread state, made in `with_python`.
        unsafe {
            ffi::PyErr_Clear();
            ffi::PyThreadState_Clear(self.0);
            ffi::PyThreadState_DeleteCurrent();
        }
    }
}

/// Runs `f` attached to the main interpreter, with a fresh thread state of this thread
/// (not PyGILState, like real hosts of subinterpreter-safe code).
fn with_python<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> R {
    INIT.call_once(|| {
        // SAFETY: first and only initialization in this process; afterwards the main thread
        // state is detached so any test thread can attach its own.
        unsafe {
            ffi::Py_InitializeEx(0);
            ffi::PyEval_SaveThread();
        }
    });
    let _serial = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // SAFETY: the interpreter is initialized; a new thread state for the main interpreter,
    // made and attached on this thread, which holds no other thread state.
    let tstate = unsafe {
        let tstate = ffi::PyThreadState_New(ffi::PyInterpreterState_Main());
        ffi::PyEval_RestoreThread(tstate);
        tstate
    };
    let _attached = Attached(tstate);
    Python::with_attached(f).expect("a thread state was just attached on this thread")
}

/// The interpreter state dict (a borrowed pointer; the interpreter owns it).
fn state_dict(py: Python<'_>) -> *mut ffi::PyObject {
    // SAFETY: attached thread state (token).
    let dict = unsafe { ffi::PyInterpreterState_GetDict(py.interpreter()) };
    assert!(!dict.is_null());
    dict
}

fn set_in_state_dict(py: Python<'_>, key: &str, value: &Owned<'_>) {
    let key = CString::new(key).unwrap();
    // SAFETY: attached thread state; live dict and value; SetItemString increfs.
    let rc = unsafe { ffi::PyDict_SetItemString(state_dict(py), key.as_ptr(), value.as_ptr()) };
    assert_eq!(rc, 0);
}

fn del_from_state_dict(py: Python<'_>, key: &str) {
    let key = CString::new(key).unwrap();
    // SAFETY: attached thread state; live dict.
    let rc = unsafe { ffi::PyDict_DelItemString(state_dict(py), key.as_ptr()) };
    assert_eq!(rc, 0);
}

fn raw_in_state_dict(py: Python<'_>, key: &str) -> *mut ffi::PyObject {
    let key = CString::new(key).unwrap();
    // SAFETY: attached thread state; live dict; returns a borrowed pointer or null.
    unsafe { ffi::PyDict_GetItemString(state_dict(py), key.as_ptr()) }
}

fn raise_value_error(text: &str) {
    let text = CString::new(text).unwrap();
    // SAFETY: called only inside `with_python` (attached thread state).
    unsafe { ffi::PyErr_SetString(ffi::PyExc_ValueError, text.as_ptr()) };
}

fn new_list(py: Python<'_>) -> Owned<'_> {
    // SAFETY: attached thread state; new reference.
    unsafe { Owned::from_owned_ptr(py, ffi::PyList_New(0)) }.unwrap()
}

/// A value that counts how it ends.
struct Tracked {
    drops: &'static AtomicUsize,
    tag: u64,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

static CUSTOM_CALLS: AtomicUsize = AtomicUsize::new(0);

fn custom_dispose(value: Box<Tracked>) {
    CUSTOM_CALLS.fetch_add(1, Ordering::SeqCst);
    drop(value);
}

struct Other(#[allow(dead_code)] u32);

#[test]
fn creates_once_then_finds_the_same_value() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    with_python(|py| {
        let key = "embedded.creates_once";
        let make = || Tracked {
            drops: &DROPS,
            tag: 1,
        };
        let (first, created) =
            atomic_get_or_create_in_state_dict(py, key, make, Dtor::Drop).unwrap();
        assert!(created);
        let (second, created) = atomic_get_or_create_in_state_dict(
            py,
            key,
            || -> Tracked { panic!("make must not run when the capsule exists") },
            Dtor::Drop,
        )
        .unwrap();
        assert!(!created);
        assert_eq!(first, second);
        // SAFETY: the capsule is in the state dict, so the value is alive.
        assert_eq!(unsafe { second.as_ref() }.tag, 1);
        assert_eq!(DROPS.load(Ordering::SeqCst), 0);
        del_from_state_dict(py, key);
        assert_eq!(
            DROPS.load(Ordering::SeqCst),
            1,
            "Drop policy drops when the capsule dies"
        );
    });
}

#[test]
fn policies_apply_when_the_capsule_dies() {
    static LEAK_DROPS: AtomicUsize = AtomicUsize::new(0);
    static CUSTOM_DROPS: AtomicUsize = AtomicUsize::new(0);
    with_python(|py| {
        let (leaked, _) = atomic_get_or_create_in_state_dict(
            py,
            "embedded.policy.leak",
            || Tracked {
                drops: &LEAK_DROPS,
                tag: 7,
            },
            Dtor::Leak,
        )
        .unwrap();
        del_from_state_dict(py, "embedded.policy.leak");
        assert_eq!(LEAK_DROPS.load(Ordering::SeqCst), 0, "Leak never drops");
        // SAFETY: leaked values stay valid for the process.
        let tag = unsafe { leaked.as_ref() }.tag;
        assert_eq!(tag, 7, "a leaked value stays readable");

        let before = CUSTOM_CALLS.load(Ordering::SeqCst);
        atomic_get_or_create_in_state_dict(
            py,
            "embedded.policy.custom",
            || Tracked {
                drops: &CUSTOM_DROPS,
                tag: 8,
            },
            Dtor::Custom(custom_dispose),
        )
        .unwrap();
        assert_eq!(CUSTOM_CALLS.load(Ordering::SeqCst), before);
        del_from_state_dict(py, "embedded.policy.custom");
        assert_eq!(
            CUSTOM_CALLS.load(Ordering::SeqCst),
            before + 1,
            "custom runs once"
        );
        assert_eq!(
            CUSTOM_DROPS.load(Ordering::SeqCst),
            1,
            "custom owned the box and dropped it"
        );
    });
}

#[test]
fn race_loser_drops_its_value_exactly_once_even_under_leak() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    with_python(|py| {
        let key = "embedded.race.leak";
        let mut inner = None;
        let (winner, created) = atomic_get_or_create_in_state_dict(
            py,
            key,
            || {
                // `make` re-enters on the same key: the inner call wins the race.
                inner = Some(
                    atomic_get_or_create_in_state_dict(
                        py,
                        key,
                        || Tracked {
                            drops: &DROPS,
                            tag: 2,
                        },
                        Dtor::Leak,
                    )
                    .unwrap(),
                );
                Tracked {
                    drops: &DROPS,
                    tag: 1,
                }
            },
            Dtor::Leak,
        )
        .unwrap();
        let (inner_ptr, inner_created) = inner.unwrap();
        assert!(inner_created);
        assert!(!created, "the outer call lost the race");
        assert_eq!(winner, inner_ptr, "the loser returns the winner's value");
        // SAFETY: the winner's capsule is in the state dict.
        assert_eq!(unsafe { winner.as_ref() }.tag, 2);
        assert_eq!(
            DROPS.load(Ordering::SeqCst),
            1,
            "the loser's value was dropped once"
        );
        del_from_state_dict(py, key);
        assert_eq!(
            DROPS.load(Ordering::SeqCst),
            1,
            "the winner's value is leaked"
        );
    });
}

#[test]
fn race_loser_under_custom_hands_its_value_to_the_function() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    with_python(|py| {
        let key = "embedded.race.custom";
        let before = CUSTOM_CALLS.load(Ordering::SeqCst);
        let (winner, created) = atomic_get_or_create_in_state_dict(
            py,
            key,
            || {
                let (_, inner_created) = atomic_get_or_create_in_state_dict(
                    py,
                    key,
                    || Tracked {
                        drops: &DROPS,
                        tag: 2,
                    },
                    Dtor::Custom(custom_dispose),
                )
                .unwrap();
                assert!(inner_created);
                Tracked {
                    drops: &DROPS,
                    tag: 1,
                }
            },
            Dtor::Custom(custom_dispose),
        )
        .unwrap();
        assert!(!created);
        // SAFETY: the winner's capsule is in the state dict.
        assert_eq!(unsafe { winner.as_ref() }.tag, 2);
        assert_eq!(CUSTOM_CALLS.load(Ordering::SeqCst), before + 1);
        assert_eq!(DROPS.load(Ordering::SeqCst), 1);
        del_from_state_dict(py, key);
        assert_eq!(CUSTOM_CALLS.load(Ordering::SeqCst), before + 2);
        assert_eq!(DROPS.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn pending_error_is_kept_across_every_outcome() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    with_python(|py| {
        let key = "embedded.pending";
        raise_value_error("the caller's error");
        // SAFETY: attached thread state; borrowed pointer to the pending exception type.
        let pending_type = unsafe { ffi::PyErr_Occurred() };
        assert!(!pending_type.is_null());

        let make = || Tracked {
            drops: &DROPS,
            tag: 3,
        };
        let (_, created) = atomic_get_or_create_in_state_dict(py, key, make, Dtor::Drop).unwrap();
        assert!(created, "creation works with an error pending");
        // SAFETY: attached thread state.
        assert_eq!(unsafe { ffi::PyErr_Occurred() }, pending_type);

        let (_, created) = atomic_get_or_create_in_state_dict(py, key, make, Dtor::Drop).unwrap();
        assert!(!created, "lookup works with an error pending");

        let err = atomic_get_or_create_in_state_dict(py, key, || Other(1), Dtor::Drop).unwrap_err();
        assert!(matches!(err, CapsuleError::TypeMismatch { .. }), "{err}");
        let err = atomic_get_or_create_in_state_dict(py, "bad\0key", make, Dtor::Drop).unwrap_err();
        assert!(matches!(err, CapsuleError::InvalidKey { .. }), "{err}");
        assert!(get_capsule_from_state_dict(py, key).unwrap().is_some());

        assert_eq!(
            take_error_text(py).as_deref(),
            Some("ValueError: the caller's error"),
            "the caller's error is still pending, unchanged"
        );
        del_from_state_dict(py, key);
    });
}

#[test]
fn make_leaving_a_python_error_is_an_error_and_its_value_is_dropped() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    with_python(|py| {
        let key = "embedded.make_raises";
        raise_value_error("outer");
        let err = atomic_get_or_create_in_state_dict(
            py,
            key,
            || {
                raise_value_error("raised inside make");
                Tracked {
                    drops: &DROPS,
                    tag: 4,
                }
            },
            Dtor::Leak,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, CapsuleError::Python { .. }), "{text}");
        assert!(text.contains("ValueError: raised inside make"), "{text}");
        assert!(text.contains(key), "{text}");
        assert_eq!(
            DROPS.load(Ordering::SeqCst),
            1,
            "the unshared value is dropped, not leaked"
        );
        assert!(
            raw_in_state_dict(py, key).is_null(),
            "nothing was installed"
        );
        assert_eq!(take_error_text(py).as_deref(), Some("ValueError: outer"));
    });
}

#[test]
fn foreign_object_is_refused_and_left_untouched() {
    with_python(|py| {
        let key = "embedded.foreign";
        let list = new_list(py);
        set_in_state_dict(py, key, &list);
        // SAFETY: `list` is live.
        let refs_before = unsafe { ffi::Py_REFCNT(list.as_ptr()) };
        let err = atomic_get_or_create_in_state_dict(
            py,
            key,
            || -> Other { panic!("make must not run over a foreign object") },
            Dtor::Drop,
        )
        .unwrap_err();
        assert_eq!(
            err,
            CapsuleError::NotACapsule {
                key: key.into(),
                found: "list".into()
            }
        );
        assert!(err.is_wrong_kind());
        let err = get_capsule_from_state_dict(py, key).unwrap_err();
        assert!(matches!(err, CapsuleError::NotACapsule { .. }), "{err}");
        assert_eq!(
            raw_in_state_dict(py, key),
            list.as_ptr(),
            "still the same object"
        );
        // SAFETY: `list` is live.
        assert_eq!(unsafe { ffi::Py_REFCNT(list.as_ptr()) }, refs_before);
        // SAFETY: `list` is a live list.
        assert_eq!(unsafe { ffi::PyList_Size(list.as_ptr()) }, 0);
        // SAFETY: attached thread state.
        let pending = unsafe { ffi::PyErr_Occurred() };
        assert!(pending.is_null(), "no error left pending");
        del_from_state_dict(py, key);
    });
}

#[test]
fn foreign_capsules_are_never_read() {
    static FOREIGN_DATA: [u8; 4] = [1, 2, 3, 4];
    with_python(|py| {
        // A capsule named like our key but made by someone else: its pointer is not ours.
        let key = "embedded.foreign_capsule";
        let name = CString::new(key).unwrap();
        // SAFETY: attached thread state; the pointer and name outlive the capsule (statics /
        // `name` lives to the end of this closure and the capsule is removed before).
        let same_name = unsafe {
            Owned::from_owned_ptr(
                py,
                ffi::PyCapsule_New(FOREIGN_DATA.as_ptr() as *mut _, name.as_ptr(), None),
            )
        }
        .unwrap();
        set_in_state_dict(py, key, &same_name);
        let err = atomic_get_or_create_in_state_dict(py, key, || Other(1), Dtor::Drop).unwrap_err();
        assert!(
            matches!(&err, CapsuleError::NotBindery { reason, .. } if reason.contains("context")),
            "{err}"
        );
        assert!(err.is_wrong_kind());
        del_from_state_dict(py, key);
        drop(same_name);

        // A capsule with another name.
        // SAFETY: as above, with a static name.
        let other_name = unsafe {
            Owned::from_owned_ptr(
                py,
                ffi::PyCapsule_New(
                    FOREIGN_DATA.as_ptr() as *mut _,
                    c"someone.else".as_ptr(),
                    None,
                ),
            )
        }
        .unwrap();
        set_in_state_dict(py, key, &other_name);
        let err = atomic_get_or_create_in_state_dict(py, key, || Other(1), Dtor::Drop).unwrap_err();
        assert_eq!(
            err,
            CapsuleError::WrongName {
                key: key.into(),
                expected: key.into(),
                found: Some("someone.else".into())
            }
        );
        del_from_state_dict(py, key);
        // SAFETY: attached thread state.
        assert!(unsafe { ffi::PyErr_Occurred() }.is_null());
    });
}

#[test]
fn other_value_type_under_the_key_names_both_types() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    with_python(|py| {
        let key = "embedded.other_type";
        atomic_get_or_create_in_state_dict(
            py,
            key,
            || Tracked {
                drops: &DROPS,
                tag: 5,
            },
            Dtor::Drop,
        )
        .unwrap();
        let err = atomic_get_or_create_in_state_dict(py, key, || Other(9), Dtor::Drop).unwrap_err();
        let CapsuleError::TypeMismatch {
            expected, found, ..
        } = &err
        else {
            panic!("expected a type mismatch, got {err}");
        };
        assert!(
            expected.starts_with("embedded::Other (size 4, align 4)"),
            "{err}"
        );
        assert!(found.starts_with("embedded::Tracked (size "), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(key)
                && text.contains("embedded::Other")
                && text.contains("embedded::Tracked")
        );
        assert_eq!(
            DROPS.load(Ordering::SeqCst),
            0,
            "the existing value is untouched"
        );
        del_from_state_dict(py, key);
        assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn capsule_object_pins_a_drop_value() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    with_python(|py| {
        let key = "embedded.pin";
        assert!(get_capsule_from_state_dict(py, key).unwrap().is_none());
        let (value, _) = atomic_get_or_create_in_state_dict(
            py,
            key,
            || Tracked {
                drops: &DROPS,
                tag: 6,
            },
            Dtor::Drop,
        )
        .unwrap();
        let capsule = get_capsule_from_state_dict(py, key).unwrap().unwrap();
        assert_eq!(capsule.as_ptr(), raw_in_state_dict(py, key));
        assert_eq!(capsule_value::<Tracked>(&capsule, key).unwrap(), value);
        del_from_state_dict(py, key);
        assert_eq!(
            DROPS.load(Ordering::SeqCst),
            0,
            "the held capsule keeps the value"
        );
        // SAFETY: `capsule` keeps the value alive.
        assert_eq!(unsafe { value.as_ref() }.tag, 6);
        drop(capsule);
        assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn new_capsule_round_trip_and_name_check() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    with_python(|py| {
        let capsule = new_capsule(
            py,
            "embedded.loose",
            Tracked {
                drops: &DROPS,
                tag: 10,
            },
            Dtor::Drop,
        )
        .unwrap();
        assert_eq!(capsule.type_name(), "PyCapsule");
        let value = capsule_value::<Tracked>(&capsule, "embedded.loose").unwrap();
        // SAFETY: `capsule` is alive.
        assert_eq!(unsafe { value.as_ref() }.tag, 10);
        let err = capsule_value::<Tracked>(&capsule, "embedded.other").unwrap_err();
        assert!(matches!(err, CapsuleError::WrongName { .. }), "{err}");
        let err = capsule_value::<Other>(&capsule, "embedded.loose").unwrap_err();
        assert!(matches!(err, CapsuleError::TypeMismatch { .. }), "{err}");
        let copy = capsule.clone();
        drop(capsule);
        assert_eq!(DROPS.load(Ordering::SeqCst), 0);
        drop(copy);
        assert_eq!(DROPS.load(Ordering::SeqCst), 1);

        let err = new_capsule(
            py,
            "nul\0name",
            Tracked {
                drops: &DROPS,
                tag: 11,
            },
            Dtor::Leak,
        )
        .unwrap_err();
        assert!(matches!(err, CapsuleError::InvalidKey { .. }), "{err}");
        assert_eq!(
            DROPS.load(Ordering::SeqCst),
            2,
            "a value that never got a capsule is dropped"
        );
    });
}

#[test]
fn saved_error_restores_and_type_names_read_well() {
    with_python(|py| {
        raise_value_error("first");
        {
            let saved = SavedError::save(py);
            assert!(saved.had_error());
            // SAFETY: attached thread state.
            let pending = unsafe { ffi::PyErr_Occurred() };
            assert!(pending.is_null(), "cleared while saved");
            raise_value_error("second, replaced on restore");
        }
        assert_eq!(take_error_text(py).as_deref(), Some("ValueError: first"));
        assert_eq!(take_error_text(py), None);
        {
            let saved = SavedError::save(py);
            assert!(!saved.had_error());
        }
        // SAFETY: attached thread state; error without a message.
        unsafe { ffi::PyErr_SetNone(ffi::PyExc_KeyError) };
        assert_eq!(take_error_text(py).as_deref(), Some("KeyError"));

        assert_eq!(new_list(py).type_name(), "list");
        // SAFETY: attached thread state; new references or null.
        let ordered = unsafe {
            let module =
                Owned::from_owned_ptr(py, ffi::PyImport_ImportModule(c"collections".as_ptr()))
                    .unwrap();
            let class = Owned::from_owned_ptr(
                py,
                ffi::PyObject_GetAttrString(module.as_ptr(), c"OrderedDict".as_ptr()),
            )
            .unwrap();
            Owned::from_owned_ptr(py, ffi::compat::PyObject_CallNoArgs(class.as_ptr())).unwrap()
        };
        assert_eq!(ordered.type_name(), "collections.OrderedDict");
        assert!(format!("{ordered:?}").starts_with("<collections.OrderedDict object at 0x"));
    });
}

#[test]
fn token_is_refused_on_a_thread_without_the_gil() {
    with_python(|py| {
        assert_eq!(py.interpreter_id(), 0, "the main interpreter has ID 0");
        // This thread holds the GIL; another thread must not believe it does (on 3.9-3.11
        // CPython's current thread state is process-wide, so this checks the thread id).
        let elsewhere = std::thread::spawn(|| Python::with_attached(|_| ()).is_some())
            .join()
            .unwrap();
        assert!(!elsewhere, "a thread without a thread state got a token");
        assert_eq!(Python::with_attached(|py| py.interpreter_id()), Some(0));
    });
    assert!(
        Python::with_attached(|_| ()).is_none(),
        "no token once this thread detached"
    );
}
