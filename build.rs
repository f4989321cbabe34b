//! Emits the `Py_3_12`-style cfgs used by `src/compat.rs`, and the rpath that test binaries
//! embedding an interpreter need.
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
    pyo3_build_config::add_libpython_rpath_link_args();
}
