//! Emits the `Py_3_x` cfgs of the interpreter pyo3-ffi was configured for (used only by the
//! private `compat` module) and an rpath to its libpython, so test and bench binaries that
//! embed an interpreter load the right one instead of the system's.

fn main() {
    pyo3_build_config::use_pyo3_cfgs();
    pyo3_build_config::add_libpython_rpath_link_args();
}
