//! Records what the internals key must name (rustc version, target) and configures pyo3 cfgs
//! and the rpath of test binaries that embed an interpreter.
use std::process::Command;

fn main() {
    pyo3_build_config::use_pyo3_cfgs();
    pyo3_build_config::add_libpython_rpath_link_args();

    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(&rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    // "rustc 1.95.0 (59807616e 2026-04-14)" -> "1.95.0-59807616e": the commit hash tells
    // nightlies of the same version apart.
    let mut words = version.split_whitespace().skip(1);
    let number = words.next().unwrap_or("unknown");
    let commit = words.next().unwrap_or("").trim_start_matches('(');
    let rustc_id = if commit.is_empty() {
        number.to_string()
    } else {
        format!("{number}-{commit}")
    };
    println!("cargo:rustc-env=BINDERY_RUSTC_ID={rustc_id}");
    println!(
        "cargo:rustc-env=BINDERY_TARGET={}",
        std::env::var("TARGET").unwrap_or_else(|_| "unknown-target".into())
    );
    println!("cargo:rerun-if-changed=build.rs");
}
