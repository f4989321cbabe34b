//! An rpath to the configured interpreter's libpython, so test binaries that embed an
//! interpreter load the right one instead of the system's (and the `Py_3_x` cfgs, for
//! completeness: this crate has no per-version code today).

fn main() {
    pyo3_build_config::use_pyo3_cfgs();
    pyo3_build_config::add_libpython_rpath_link_args();
}
