//! Emits the `Py_3_12`-style cfgs used by `src/compat.rs`, and the link flags an extension
//! module needs (macOS).
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
    pyo3_build_config::add_extension_module_link_args();
}
