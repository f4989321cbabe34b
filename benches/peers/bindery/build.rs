//! Link flags an extension module needs (macOS); nothing else.
fn main() {
    pyo3_build_config::add_extension_module_link_args();
}
