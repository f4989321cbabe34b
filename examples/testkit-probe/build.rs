//! Emits the `Py_3_12`-style cfgs for the interpreter named by `PYO3_PYTHON` (used only by
//! `src/compat.rs`) and, on macOS, the link flags an extension module needs.

fn main() {
    pyo3_build_config::use_pyo3_cfgs();
    pyo3_build_config::add_extension_module_link_args();
}
