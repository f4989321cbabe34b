//! Emits the `Py_3_12`-style cfgs used by `src/compat.rs`.
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
