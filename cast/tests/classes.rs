//! Registered classes in an embedded interpreter: Rust values become instances of their
//! registered type, instances (subclasses included) give `Ref`, `RefMut` or a clone, borrows
//! conflict loudly, empty instances are refused, and the GC lookup never sees a dropped or
//! mutably borrowed value. Separately built modules are tested in `py_cast.rs`.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};

use bindery_capsule::Owned;
use bindery_cast::{
    CastError, ClassObject, ExceptionKind, InstanceMut, InstanceRef, Ref, RefMut, RegisteredClass,
    cast, to_python, try_borrow_in_gc,
};
use support::{
    Point, Unregistered, eval, eval_in, exec, namespace, point_type, raised, repr, with_python,
};

fn point_name() -> &'static str {
    std::any::type_name::<Point>()
}

#[test]
fn a_rust_value_becomes_an_instance_of_its_registered_type_and_comes_back() {
    with_python(|py| {
        let ty = point_type(py);
        let obj = to_python(py, Point { x: 1.5, y: -2.0 }).unwrap();
        assert_eq!(obj.as_borrowed().type_ptr(), ty.as_ptr().cast());
        assert_eq!(obj.type_name(), "tests.Point");
        {
            let point: Ref<Point> = cast(obj.as_borrowed()).unwrap();
            assert_eq!(*point, Point { x: 1.5, y: -2.0 });
        }
        {
            let mut point: RefMut<Point> = cast(obj.as_borrowed()).unwrap();
            point.x = 10.0;
        }
        let copy: Point = cast(obj.as_borrowed()).unwrap();
        assert_eq!(copy, Point { x: 10.0, y: -2.0 });
        // In containers, by clone, both ways.
        let list = to_python(py, vec![Point { x: 1.0, y: 2.0 }, copy.clone()]).unwrap();
        let back: Vec<Point> = cast(list.as_borrowed()).unwrap();
        assert_eq!(back, [Point { x: 1.0, y: 2.0 }, copy]);
    });
}

#[test]
fn python_subclasses_are_instances_of_the_rust_type() {
    with_python(|py| {
        let ns = namespace(py);
        support::exec(py, &ns, "pass");
        let ty = point_type(py);
        // SAFETY: attached thread state; `ns` is a live dict, `ty` a live type.
        unsafe {
            pyo3_ffi::PyDict_SetItemString(ns.as_ptr(), c"Point".as_ptr(), ty.as_ptr());
        }
        exec(
            py,
            &ns,
            "class Sub(Point):\n    extra = 'python side'\nclass SubSub(Sub): pass\n",
        );
        let obj = eval_in(py, &ns, "SubSub()");
        // A subclass instance starts empty: refused until it gets a value.
        let error = cast::<Ref<Point>>(obj.as_borrowed()).unwrap_err();
        assert_eq!(
            raised(py, error),
            format!(
                "TypeError: cannot convert Python 'SubSub' to Rust '{}': the instance holds \
                 no Rust value (it was created without calling the class's constructor, or \
                 it was already cleared); create it by calling the class",
                point_name()
            )
        );
        // SAFETY: SubSub's instances are ClassObject<Point> (inherited layout).
        unsafe { ClassObject::<Point>::init(obj.as_ptr(), Point { x: 3.0, y: 4.0 }) }.unwrap();
        // A second init is refused and gives the value back.
        // SAFETY: as above.
        let again = unsafe { ClassObject::<Point>::init(obj.as_ptr(), Point { x: 0.0, y: 0.0 }) };
        assert_eq!(again.unwrap_err(), Point { x: 0.0, y: 0.0 });
        let point: Ref<Point> = cast(obj.as_borrowed()).unwrap();
        assert_eq!(point.x.hypot(point.y), 5.0);
        drop(point);
        assert_eq!(repr(&eval_in(py, &ns, "SubSub.extra")), "'python side'");
    });
}

#[test]
fn conflicting_borrows_are_runtime_errors_never_aliases() {
    with_python(|py| {
        point_type(py);
        let obj = to_python(py, Point { x: 0.0, y: 0.0 }).unwrap();
        let held = cast::<RefMut<Point>>(obj.as_borrowed()).unwrap();
        let error = cast::<Ref<Point>>(obj.as_borrowed()).unwrap_err();
        assert_eq!(error.kind(), ExceptionKind::RuntimeError);
        assert_eq!(
            error.to_string(),
            format!(
                "cannot borrow Python 'tests.Point' as Rust '&{}': it is already mutably \
                 borrowed (by a call that is still running, e.g. one that called back into \
                 Python)",
                point_name()
            )
        );
        assert!(
            cast::<Point>(obj.as_borrowed()).is_err(),
            "clone needs a shared borrow"
        );
        assert!(cast::<RefMut<Point>>(obj.as_borrowed()).is_err());
        assert!(try_borrow_in_gc::<Point>(obj.as_borrowed()).is_none());
        drop(held);

        let first = cast::<Ref<Point>>(obj.as_borrowed()).unwrap();
        let second = cast::<Ref<Point>>(obj.as_borrowed()).unwrap();
        let error = cast::<RefMut<Point>>(obj.as_borrowed()).unwrap_err();
        assert_eq!(
            raised(py, error),
            format!(
                "RuntimeError: cannot borrow Python 'tests.Point' as Rust '&mut {}': it is \
                 already borrowed (by a call that is still running, e.g. one that called back \
                 into Python)",
                point_name()
            )
        );
        drop((first, second));
        let mut exclusive = cast::<RefMut<Point>>(obj.as_borrowed()).unwrap();
        exclusive.y = 1.0;
    });
}

#[test]
fn instance_guards_hold_the_object_and_release_their_borrow() {
    with_python(|py| {
        point_type(py);
        let obj = to_python(py, Point { x: 1.0, y: 2.0 }).unwrap();
        // SAFETY: a live object (held by `obj`), attached thread state.
        let refcnt = || unsafe { pyo3_ffi::Py_REFCNT(obj.as_ptr()) };
        let before = refcnt();

        let mut exclusive = cast::<InstanceMut<Point>>(obj.as_borrowed()).unwrap();
        exclusive.x = 5.0;
        assert_eq!(refcnt(), before + 1, "the guard holds a reference");
        assert_eq!(exclusive.object().as_ptr(), obj.as_ptr());
        assert!(
            cast::<Ref<Point>>(obj.as_borrowed()).is_err(),
            "exclusively borrowed"
        );
        drop(exclusive);
        assert_eq!(refcnt(), before, "the reference is released");
        assert_eq!(cast::<Ref<Point>>(obj.as_borrowed()).unwrap().x, 5.0);

        let shared = cast::<InstanceRef<Point>>(obj.as_borrowed()).unwrap();
        let again = cast::<InstanceRef<Point>>(obj.as_borrowed()).unwrap();
        assert!(
            cast::<RefMut<Point>>(obj.as_borrowed()).is_err(),
            "shared borrows live"
        );
        assert_eq!((shared.x, again.y), (5.0, 2.0));
        drop(again);

        // Dropped without an attached thread state: nothing is touched; the reference and
        // the borrow are leaked (the interpreter might be gone), never released unattached.
        // SAFETY: detaching this thread's state and attaching it again on the same thread;
        // nothing touches Python in between but the guard's drop, which checks first.
        unsafe {
            let tstate = pyo3_ffi::PyEval_SaveThread();
            drop(shared);
            pyo3_ffi::PyEval_RestoreThread(tstate);
        }
        assert_eq!(refcnt(), before + 1, "leaked, not released unattached");
        assert!(cast::<RefMut<Point>>(obj.as_borrowed()).is_err());
    });
}

#[test]
fn wrong_and_unregistered_types_are_named() {
    with_python(|py| {
        point_type(py);
        support::tracked_type(py);
        let int = eval(py, "42");
        assert_eq!(
            raised(py, cast::<Ref<Point>>(int.as_borrowed()).unwrap_err()),
            format!(
                "TypeError: cannot convert Python 'int' to Rust '{}'",
                point_name()
            )
        );
        let tracked = to_python(py, support::Tracked { label: "t".into() }).unwrap();
        assert_eq!(
            raised(py, cast::<Point>(tracked.as_borrowed()).unwrap_err()),
            format!(
                "TypeError: cannot convert Python 'tests.Tracked' to Rust '{}'",
                point_name()
            )
        );
        let unregistered = std::any::type_name::<Unregistered>();
        assert_eq!(
            raised(py, cast::<Unregistered>(int.as_borrowed()).unwrap_err()),
            format!(
                "TypeError: cannot convert Python 'int' to Rust '{unregistered}': the Rust type \
                 is not registered in this interpreter; register it with \
                 bindery_cast::register_class (or the facade's class builder) in the module's \
                 exec slot"
            )
        );
        let error = to_python(py, Unregistered).unwrap_err();
        assert!(matches!(error, CastError::UnregisteredValue { .. }));
        assert_eq!(
            raised(py, error),
            format!(
                "TypeError: cannot convert Rust '{unregistered}' to Python: the Rust type is \
                 not registered in this interpreter; register it with \
                 bindery_cast::register_class (or the facade's class builder) in the module's \
                 exec slot"
            )
        );
        assert!(try_borrow_in_gc::<Point>(int.as_borrowed()).is_none());
        assert!(try_borrow_in_gc::<Point>(tracked.as_borrowed()).is_none());
    });
}

static TRACKED_DROPS: AtomicUsize = AtomicUsize::new(0);

impl Drop for support::Tracked {
    fn drop(&mut self) {
        TRACKED_DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn the_value_is_dropped_exactly_once_with_its_instance() {
    with_python(|py| {
        support::tracked_type(py);
        let before = TRACKED_DROPS.load(Ordering::SeqCst);
        let obj = to_python(
            py,
            support::Tracked {
                label: "one".into(),
            },
        )
        .unwrap();
        assert_eq!(TRACKED_DROPS.load(Ordering::SeqCst), before);
        assert_eq!(
            try_borrow_in_gc::<support::Tracked>(obj.as_borrowed()).map(|t| t.label.as_str()),
            Some("one")
        );
        // SAFETY: a live instance of a class registered for Tracked.
        assert!(unsafe { ClassObject::<support::Tracked>::is_initialized(obj.as_ptr()) });
        drop(obj);
        assert_eq!(TRACKED_DROPS.load(Ordering::SeqCst), before + 1);

        // Emptied explicitly (what a tp_clear may do): later casts and GC lookups see an
        // empty instance, and dealloc does not drop again.
        let obj: Owned<'_> = to_python(
            py,
            support::Tracked {
                label: "two".into(),
            },
        )
        .unwrap();
        // SAFETY: as above.
        assert!(unsafe { ClassObject::<support::Tracked>::drop_value(obj.as_ptr()) });
        assert_eq!(TRACKED_DROPS.load(Ordering::SeqCst), before + 2);
        // SAFETY: as above.
        assert!(!unsafe { ClassObject::<support::Tracked>::drop_value(obj.as_ptr()) });
        assert!(try_borrow_in_gc::<support::Tracked>(obj.as_borrowed()).is_none());
        // SAFETY: as above.
        assert!(unsafe { ClassObject::<support::Tracked>::gc_get(obj.as_ptr()) }.is_none());
        let error = cast::<Ref<support::Tracked>>(obj.as_borrowed()).unwrap_err();
        assert!(matches!(error, CastError::Uninitialized { .. }), "{error}");
        drop(obj);
        assert_eq!(TRACKED_DROPS.load(Ordering::SeqCst), before + 2);

        // A borrowed value is not dropped from under its borrower.
        let obj = to_python(
            py,
            support::Tracked {
                label: "three".into(),
            },
        )
        .unwrap();
        let guard = cast::<Ref<support::Tracked>>(obj.as_borrowed()).unwrap();
        // SAFETY: as above.
        assert!(!unsafe { ClassObject::<support::Tracked>::drop_value(obj.as_ptr()) });
        assert_eq!(guard.label, "three");
        drop(guard);
        drop(obj);
        assert_eq!(TRACKED_DROPS.load(Ordering::SeqCst), before + 3);
    });
}

#[test]
fn registering_a_type_too_small_for_the_value_is_refused() {
    #[derive(Debug)]
    struct Big([u64; 8]);
    impl RegisteredClass for Big {
        const TYPE_KEY: &'static str = "bindery-cast tests::Big";
    }
    with_python(|py| {
        let object_type = eval(py, "object");
        // SAFETY: the call fails before anything is registered (object's basicsize is 16).
        let error = unsafe {
            bindery_cast::register_class::<Big>(
                py,
                object_type.as_ptr().cast(),
                "tests",
                bindery_cast::Visibility::Shared,
            )
        }
        .unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("cannot register Python type 'object' for Rust '"),
            "{message}"
        );
        assert!(
            message.contains("make the type spec's basicsize ClassObject::<T>::BASIC_SIZE"),
            "{message}"
        );
        let _ = Big([0; 8]).0;
    });
}
