//! Emits the `Py_3_x` cfgs (used only by the private `compat` module).

fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
