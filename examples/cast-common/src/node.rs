//! `Node`: a GC-tracked registered class whose Rust value holds one Python object, so
//! instances form cycles. Its `tp_traverse` and `tp_clear` reach the value through
//! [`try_borrow_in_gc`], the garbage-collector lookup, and check what the lookup promises:
//! it finds every constructed instance (also in the interpreter's last collection, after
//! the state dict was cleared) and allocates nothing on the Rust heap. Any breach is
//! written to stderr (`bindery-example-cast: ...`) and counted ([`node_stats`]).
//!
//! The module's global allocator counts allocations made while a GC lookup runs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::{c_int, c_void};
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use bindery_capsule::{Borrowed, Python};
use bindery_cast::{ClassObject, RegisteredClass, try_borrow_in_gc};
use pyo3_ffi as ffi;

/// The system allocator, counting allocations made while `IN_LOOKUP` is set.
pub struct CountingAllocator;

/// Set around each GC lookup (GC runs under the GIL of one interpreter at a time per thread;
/// an allocation by another thread meanwhile would be counted too, which only makes the
/// check stricter).
static IN_LOOKUP: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS_IN_LOOKUP: AtomicUsize = AtomicUsize::new(0);
static LOOKUPS_OK: AtomicUsize = AtomicUsize::new(0);
static LOOKUPS_FAILED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; the counter is an atomic.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if IN_LOOKUP.load(Ordering::Relaxed) {
            ALLOCATIONS_IN_LOOKUP.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if IN_LOOKUP.load(Ordering::Relaxed) {
            ALLOCATIONS_IN_LOOKUP.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// A node holding (a strong reference to) one Python object, or none.
pub struct Node {
    /// For messages.
    pub label: String,
    /// The held object (owned reference) or null. Swapped out by `tp_clear`.
    child: AtomicPtr<ffi::PyObject>,
}

impl RegisteredClass for Node {
    const TYPE_KEY: &'static str = "bindery-example-cast-common 0.1.0::Node";
}

impl Node {
    /// A node holding nothing.
    pub fn new(label: String) -> Node {
        Node {
            label,
            child: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// Holds `child` (a new reference is taken), releasing the previous one.
    pub fn set_child(&self, child: Borrowed<'_, '_>) {
        let new = child.to_owned().into_ptr();
        let old = self.child.swap(new, Ordering::AcqRel);
        // SAFETY: `old` is null or a reference this node owned; the token in `child`
        // proves an attached thread state.
        unsafe { ffi::Py_XDECREF(old) };
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = writeln!(
            std::io::stderr(),
            "bindery-example-cast: dropped node '{}'",
            self.label
        );
        let old = self.child.swap(std::ptr::null_mut(), Ordering::AcqRel);
        // SAFETY: a Node is dropped only by tp_dealloc / drop_value, with the GIL held;
        // `old` is null or a reference it owned.
        unsafe { ffi::Py_XDECREF(old) };
    }
}

/// The GC lookup of `obj`'s value, checked: found if constructed, nothing allocated.
fn lookup<'a>(obj: *mut ffi::PyObject) -> Option<&'a Node> {
    // SAFETY: GC slots run with an attached thread state.
    let py = unsafe { Python::assume_attached() };
    // SAFETY: the slot's object is alive for the call.
    let borrowed = unsafe { Borrowed::from_ptr(py, obj) }?;
    let before = ALLOCATIONS_IN_LOOKUP.load(Ordering::Relaxed);
    IN_LOOKUP.store(true, Ordering::Relaxed);
    let found = try_borrow_in_gc::<Node>(borrowed);
    IN_LOOKUP.store(false, Ordering::Relaxed);
    if ALLOCATIONS_IN_LOOKUP.load(Ordering::Relaxed) != before {
        let _ = writeln!(
            std::io::stderr(),
            "bindery-example-cast: a GC lookup allocated"
        );
    }
    // SAFETY: `obj` is a Node instance (the slots belong to Node's type).
    let constructed = unsafe { ClassObject::<Node>::is_initialized(obj) };
    if found.is_some() {
        LOOKUPS_OK.fetch_add(1, Ordering::Relaxed);
    } else if constructed {
        LOOKUPS_FAILED.fetch_add(1, Ordering::Relaxed);
        let _ = writeln!(
            std::io::stderr(),
            "bindery-example-cast: GC lookup failed for a constructed Node"
        );
    }
    found
}

/// `(lookups that found the value, lookups that failed on a constructed node, allocations
/// made during lookups)`.
pub fn node_stats() -> (usize, usize, usize) {
    (
        LOOKUPS_OK.load(Ordering::Relaxed),
        LOOKUPS_FAILED.load(Ordering::Relaxed),
        ALLOCATIONS_IN_LOOKUP.load(Ordering::Relaxed),
    )
}

fn abort_on_panic<R>(what: &str, body: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        let _ = writeln!(
            std::io::stderr(),
            "bindery-example-cast: panic in Node's {what}"
        );
        std::process::abort()
    })
}

/// `tp_traverse`: visits the type (heap types must) and the held object.
pub(crate) unsafe extern "C" fn node_traverse(
    obj: *mut ffi::PyObject,
    visit: ffi::visitproc,
    arg: *mut c_void,
) -> c_int {
    abort_on_panic("tp_traverse", || {
        // SAFETY: `obj` is alive; its type is a live heap type, visited as CPython requires
        // of heap types' instances (3.9+).
        let rc = unsafe { visit(ffi::Py_TYPE(obj).cast(), arg) };
        if rc != 0 {
            return rc;
        }
        let Some(node) = lookup(obj) else {
            return 0;
        };
        let child = node.child.load(Ordering::Acquire);
        if child.is_null() {
            0
        } else {
            // SAFETY: `child` is a live object the node owns a reference to.
            unsafe { visit(child, arg) }
        }
    })
}

/// `tp_clear`: releases the held object.
pub(crate) unsafe extern "C" fn node_clear(obj: *mut ffi::PyObject) -> c_int {
    abort_on_panic("tp_clear", || {
        if let Some(node) = lookup(obj) {
            let old = node.child.swap(std::ptr::null_mut(), Ordering::AcqRel);
            // SAFETY: GC runs with the GIL held; `old` is null or a reference the node
            // owned, released after it was detached from the node.
            unsafe { ffi::Py_XDECREF(old) };
        }
        0
    })
}
