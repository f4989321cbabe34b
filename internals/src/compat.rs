//! Everything that depends on the Python version or build lives here, so the rest of the
//! crate is free of `#[cfg]`s.

/// Whether this module was built for a free-threaded interpreter (`Py_GIL_DISABLED`).
pub(crate) const FREE_THREADED: bool = cfg!(Py_GIL_DISABLED);
