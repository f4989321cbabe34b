//! In-process tests against an embedded interpreter: what `Traverse` reports, what `Clear`
//! releases and when, and what the slot functions do before a value exists, while it lives
//! and after it was dropped. Shutdown, subinterpreters and collections driven by CPython are
//! tested in subprocesses in `py_shutdown.rs`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ffi::{CStr, c_int, c_void};
use std::sync::{Mutex, Once};

use bindery_capsule::{Handle, Owned, Python};
use bindery_cast::{ClassObject, RegisteredClass, Visibility, register_class, tp_dealloc};
use bindery_gc_support::{
    Clear, Cleared, Traverse, Visit, VisitError, tp_clear, tp_traverse, tp_traverse_by_cast,
};
use pyo3_ffi as ffi;
use smallvec::{SmallVec, smallvec};

static INIT: Once = Once::new();
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Detaches and deletes the test's thread state, also when an assertion panics.
struct Attached;

impl Drop for Attached {
    fn drop(&mut self) {
        // SAFETY: this thread's attached thread state, made in `with_python`.
        unsafe {
            ffi::PyErr_Clear();
            ffi::PyThreadState_Clear(ffi::PyThreadState_Get());
            ffi::PyThreadState_DeleteCurrent();
        }
    }
}

/// Runs `f` attached to the main interpreter with a fresh thread state of this thread, one
/// test at a time.
fn with_python<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> R {
    INIT.call_once(|| {
        // SAFETY: the only initialization in this process; the main thread state is then
        // detached so any test thread can attach its own.
        unsafe {
            ffi::Py_InitializeEx(0);
            ffi::PyEval_SaveThread();
        }
    });
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    // SAFETY: initialized interpreter; a new thread state made and attached on this thread,
    // which holds no other.
    unsafe { ffi::PyEval_RestoreThread(ffi::PyThreadState_New(ffi::PyInterpreterState_Main())) };
    let _attached = Attached;
    Python::with_attached(f).expect("a thread state was just attached")
}

fn new_list(py: Python<'_>) -> Owned<'_> {
    // SAFETY: attached thread state; a new reference or null.
    unsafe { Owned::from_owned_ptr(py, ffi::PyList_New(0)) }.expect("a list")
}

fn refcount(obj: &Owned<'_>) -> isize {
    // SAFETY: live object, attached thread state (its token).
    unsafe { ffi::Py_REFCNT(obj.as_ptr()) }
}

/// A visit function that records what it is shown (allowed in a test: no collection runs).
unsafe extern "C" fn record(obj: *mut ffi::PyObject, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Vec<usize>` `visited` passes, borrowed for the traverse call.
    let seen = unsafe { &mut *arg.cast::<Vec<usize>>() };
    seen.push(obj as usize);
    0
}

/// A visit function that stops (returns 7) at the second object.
unsafe extern "C" fn stop_at_second(obj: *mut ffi::PyObject, arg: *mut c_void) -> c_int {
    // SAFETY: as in `record`.
    let seen = unsafe { &mut *arg.cast::<Vec<usize>>() };
    seen.push(obj as usize);
    if seen.len() == 2 { 7 } else { 0 }
}

/// The addresses `f` reports, in order.
fn visited(f: impl FnOnce(Visit<'_>) -> Result<(), VisitError>) -> Vec<usize> {
    let mut seen = Vec::new();
    // SAFETY: `record` and a pointer to `seen`, which outlives the Visit.
    let visit = unsafe { Visit::from_raw(record, (&raw mut seen).cast()) };
    f(visit).expect("record never stops");
    seen
}

fn addr(obj: &Owned<'_>) -> usize {
    obj.as_ptr() as usize
}

#[test]
fn traverse_reports_every_owned_handle_once_in_order() {
    with_python(|py| {
        let [a, b, c] = [new_list(py), new_list(py), new_list(py)];
        let h = |o: &Owned<'_>| Handle::new(o.clone());
        let expected = vec![addr(&a), addr(&b), addr(&c)];

        let vec = vec![h(&a), h(&b), h(&c)];
        assert_eq!(visited(|v| vec.traverse(v)), expected);
        let options = [Some(h(&a)), None, Some(h(&b)), Some(h(&c))];
        assert_eq!(visited(|v| options.traverse(v)), expected);
        let small: SmallVec<[Handle; 2]> = smallvec![h(&a), h(&b), h(&c)];
        assert_eq!(visited(|v| small.traverse(v)), expected);
        let deque: VecDeque<Handle> = [h(&a), h(&b), h(&c)].into();
        assert_eq!(visited(|v| deque.traverse(v)), expected);
        let tuple = (
            h(&a),
            String::from("data"),
            3_u32,
            Box::new(h(&b)),
            Some(h(&c)),
        );
        assert_eq!(visited(|v| tuple.traverse(v)), expected);
        let btree: BTreeMap<u8, Vec<Handle>> = [(1, vec![h(&a)]), (2, vec![h(&b), h(&c)])].into();
        assert_eq!(visited(|v| btree.traverse(v)), expected);
        let hash: HashMap<String, Handle> = [("x".into(), h(&a)), ("y".into(), h(&b))].into();
        let mut seen = visited(|v| hash.traverse(v));
        seen.sort_unstable();
        let mut want = vec![addr(&a), addr(&b)];
        want.sort_unstable();
        assert_eq!(seen, want, "every map value, in any order");
        let nothing: Option<Handle> = None;
        assert!(visited(|v| nothing.traverse(v)).is_empty());

        let before = refcount(&a);
        let _ = visited(|v| vec.traverse(v));
        assert_eq!(refcount(&a), before, "traverse changes no reference count");
    });
}

#[test]
fn a_non_zero_visit_result_stops_the_traversal_and_is_returned() {
    with_python(|py| {
        let items: Vec<Handle> = (0..4).map(|_| Handle::new(new_list(py))).collect();
        let mut seen: Vec<usize> = Vec::new();
        // SAFETY: `stop_at_second` and a pointer to `seen`, which outlives the Visit.
        let visit = unsafe { Visit::from_raw(stop_at_second, (&raw mut seen).cast()) };
        let error = (items.as_slice(), Some(&items[3]))
            .traverse(visit)
            .expect_err("the visit function stopped");
        assert_eq!(error.code(), 7);
        assert_eq!(seen.len(), 2, "nothing is visited after the stop");
        assert!(error.to_string().contains("returned 7"), "{error}");
    });
}

#[test]
fn clear_empties_now_and_releases_when_cleared_drops() {
    with_python(|py| {
        let obj = new_list(py);
        let base = refcount(&obj);
        let h = || Handle::new(obj.clone());
        let mut vec = vec![h(), h()];
        let mut option = Some(h());
        let mut map: HashMap<u8, Handle> = [(1, h())].into();
        let mut btree: BTreeMap<u8, Handle> = [(1, h())].into();
        let mut small: SmallVec<[Handle; 1]> = smallvec![h(), h()];
        let mut deque: VecDeque<Handle> = [h()].into();
        let mut nested = ([Some(h()), None], (String::from("kept"), vec![h()]));
        assert_eq!(refcount(&obj), base + 10);

        let mut cleared = Cleared::new();
        vec.clear_refs(&mut cleared);
        option.clear_refs(&mut cleared);
        map.clear_refs(&mut cleared);
        btree.clear_refs(&mut cleared);
        small.clear_refs(&mut cleared);
        deque.clear_refs(&mut cleared);
        nested.clear_refs(&mut cleared);
        assert!(vec.is_empty() && option.is_none() && map.is_empty() && btree.is_empty());
        assert!(small.is_empty() && deque.is_empty());
        assert!(nested.0[0].is_none() && nested.1.1.is_empty());
        assert_eq!(nested.1.0, "kept", "plain data is left alone");
        assert_eq!(
            refcount(&obj),
            base + 10,
            "nothing released before `cleared` drops"
        );
        assert_eq!(cleared.len(), 8);

        drop(cleared);
        assert_eq!(
            refcount(&obj),
            base,
            "every reference released exactly once"
        );

        let mut empty: Vec<Handle> = Vec::new();
        let mut cleared = Cleared::new();
        empty.clear_refs(&mut cleared);
        assert!(cleared.is_empty(), "an empty container defers nothing");
        vec.push(h());
        assert_eq!(vec.len(), 1, "a cleared value stays usable");
    });
}

/// A registered class for the slot tests.
struct Holder {
    items: Vec<Handle>,
}

impl RegisteredClass for Holder {
    const TYPE_KEY: &'static str = "bindery-gc-support tests::Holder";
}

impl Traverse for Holder {
    fn traverse(&self, visit: Visit<'_>) -> Result<(), VisitError> {
        self.items.traverse(visit)
    }
}

impl Clear for Holder {
    fn clear_refs(&mut self, cleared: &mut Cleared) {
        self.items.clear_refs(cleared);
    }
}

/// A GC heap type named `name` for `T`, registered in the shared internals; made once per
/// type key and kept for the process.
fn class_type<T: RegisteredClass + Traverse + Clear>(
    py: Python<'_>,
    name: &'static CStr,
) -> *mut ffi::PyTypeObject {
    static TYPES: Mutex<BTreeMap<&'static str, usize>> = Mutex::new(BTreeMap::new());
    let mut types = TYPES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(&ty) = types.get(T::TYPE_KEY) {
        return ty as *mut ffi::PyTypeObject;
    }
    bindery_internals::on_module_exec(py).expect("internals");
    let slot = |slot, pfunc: *mut c_void| ffi::PyType_Slot { slot, pfunc };
    let mut slots = [
        slot(ffi::Py_tp_traverse, tp_traverse::<T> as *mut c_void),
        slot(ffi::Py_tp_clear, tp_clear::<T> as *mut c_void),
        slot(ffi::Py_tp_dealloc, tp_dealloc::<T> as *mut c_void),
        slot(0, std::ptr::null_mut()),
    ];
    let mut spec = ffi::PyType_Spec {
        name: name.as_ptr(),
        basicsize: ClassObject::<T>::BASIC_SIZE as c_int,
        itemsize: 0,
        flags: (ffi::Py_TPFLAGS_DEFAULT | ffi::Py_TPFLAGS_HAVE_GC) as u32,
        slots: slots.as_mut_ptr(),
    };
    // SAFETY: attached thread state; the spec and slots are valid for the call and the name
    // is 'static. The type is kept for the process (never released).
    let ty = unsafe { ffi::PyType_FromSpec(&mut spec) }.cast::<ffi::PyTypeObject>();
    assert!(!ty.is_null(), "PyType_FromSpec failed");
    // SAFETY: instances are ClassObject<T>, allocated by tp_alloc, initialised by
    // ClassObject::init, destroyed by tp_dealloc::<T>; the type is never freed.
    unsafe { register_class::<T>(py, ty, "tests", Visibility::Shared) }.expect("registered");
    types.insert(T::TYPE_KEY, ty as usize);
    ty
}

fn holder_type(py: Python<'_>) -> *mut ffi::PyTypeObject {
    class_type::<Holder>(py, c"tests.Holder")
}

/// A fresh, empty (no value yet) instance of `ty`.
fn allocate(py: Python<'_>, ty: *mut ffi::PyTypeObject) -> Owned<'_> {
    // SAFETY: attached thread state; `ty` is a live type; a new zeroed instance or null.
    unsafe { Owned::from_owned_ptr(py, ffi::PyType_GenericAlloc(ty, 0)) }.expect("allocated")
}

/// What a traverse slot reports for `obj`.
fn slot_reports(
    slot: unsafe extern "C" fn(*mut ffi::PyObject, ffi::visitproc, *mut c_void) -> c_int,
    obj: &Owned<'_>,
) -> Vec<usize> {
    let mut seen: Vec<usize> = Vec::new();
    // SAFETY: `obj` is a live Holder instance and `record`'s argument outlives the call.
    let code = unsafe { slot(obj.as_ptr(), record, (&raw mut seen).cast()) };
    assert_eq!(code, 0);
    seen
}

#[test]
fn slots_touch_the_value_only_while_it_is_constructed() {
    with_python(|py| {
        let obj = allocate(py, holder_type(py));
        let ty = holder_type(py) as usize;
        let item = new_list(py);
        let base = refcount(&item);

        // Before the value exists (pybind11 #4869): the type only, clear does nothing.
        for slot in [tp_traverse::<Holder>, tp_traverse_by_cast::<Holder>] {
            assert_eq!(slot_reports(slot, &obj), vec![ty]);
        }
        // SAFETY: `obj` is a live Holder instance; attached thread state.
        assert_eq!(unsafe { tp_clear::<Holder>(obj.as_ptr()) }, 0);

        // SAFETY: `obj` is an empty Holder instance.
        let stored = unsafe {
            ClassObject::<Holder>::init(
                obj.as_ptr(),
                Holder {
                    items: vec![Handle::new(item.clone()), Handle::new(obj.clone())],
                },
            )
        };
        assert!(stored.is_ok());
        let want = vec![ty, addr(&item), addr(&obj)];
        for slot in [tp_traverse::<Holder>, tp_traverse_by_cast::<Holder>] {
            assert_eq!(slot_reports(slot, &obj), want);
        }

        // Clear: the references go, the value stays constructed and empty.
        // SAFETY: as above.
        assert_eq!(unsafe { tp_clear::<Holder>(obj.as_ptr()) }, 0);
        assert_eq!(refcount(&item), base, "the item's reference was released");
        // SAFETY: as above.
        assert!(unsafe { ClassObject::<Holder>::is_initialized(obj.as_ptr()) });
        // SAFETY: as above; the reference is not kept beyond this statement.
        let len = unsafe { ClassObject::<Holder>::gc_get(obj.as_ptr()) }.map(|h| h.items.len());
        assert_eq!(len, Some(0));
        assert_eq!(slot_reports(tp_traverse::<Holder>, &obj), vec![ty]);
        assert!(!py_err_occurred(), "tp_clear leaves no error set");

        // After the value was dropped: the type only again.
        // SAFETY: as above.
        assert!(unsafe { ClassObject::<Holder>::drop_value(obj.as_ptr()) });
        for slot in [tp_traverse::<Holder>, tp_traverse_by_cast::<Holder>] {
            assert_eq!(slot_reports(slot, &obj), vec![ty]);
        }
        // SAFETY: as above.
        assert_eq!(unsafe { tp_clear::<Holder>(obj.as_ptr()) }, 0);
    });
}

#[test]
fn by_cast_traverse_of_a_foreign_object_reports_only_its_type() {
    with_python(|py| {
        // A list is not a Holder: the registry lookup finds nothing, nothing is read.
        let list = new_list(py);
        let seen = slot_reports(tp_traverse_by_cast::<Holder>, &list);
        assert!(
            seen.is_empty(),
            "list is a static type: nothing to report, got {seen:?}"
        );
    });
}

fn py_err_occurred() -> bool {
    // SAFETY: called with an attached thread state (inside `with_python`).
    !unsafe { ffi::PyErr_Occurred() }.is_null()
}

/// A class whose traverse panics, for the abort test.
struct Panics;

impl RegisteredClass for Panics {
    const TYPE_KEY: &'static str = "bindery-gc-support tests::Panics";
}

impl Traverse for Panics {
    fn traverse(&self, _visit: Visit<'_>) -> Result<(), VisitError> {
        panic!("traverse exploded on purpose")
    }
}

impl Clear for Panics {
    fn clear_refs(&mut self, _cleared: &mut Cleared) {}
}

#[test]
fn a_panic_in_traverse_aborts_with_a_message_naming_the_types() {
    const CHILD: &str = "BINDERY_GC_SUPPORT_PANIC_CHILD";
    if std::env::var_os(CHILD).is_some() {
        // In the child: the slot of a class whose value panics in `traverse`.
        with_python(|py| {
            let obj = allocate(py, class_type::<Panics>(py, c"tests.Panics"));
            // SAFETY: `obj` is an empty instance of Panics' class.
            let _ = unsafe { ClassObject::<Panics>::init(obj.as_ptr(), Panics) };
            let mut seen: Vec<usize> = Vec::new();
            // SAFETY: as in `slot_reports`.
            unsafe { tp_traverse::<Panics>(obj.as_ptr(), record, (&raw mut seen).cast()) };
        });
        unreachable!("tp_traverse must abort on a panic");
    }
    let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "a_panic_in_traverse_aborts_with_a_message_naming_the_types",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .expect("run the child");
    let stderr = String::from_utf8_lossy(&output.stderr);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        output.status.signal(),
        Some(6),
        "SIGABRT expected; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("bindery: a panic in tp_traverse of Python type 'tests.Panics'")
            && stderr.contains("embedded::Panics")
            && stderr.contains("traverse exploded on purpose"),
        "{stderr}"
    );
}
