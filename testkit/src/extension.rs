//! Building an extension module with cargo for one interpreter and staging it under the file
//! name that interpreter imports.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::{fs, io, thread};

use crate::json::Json;
use crate::python::PythonInfo;

/// A Cargo package of the workspace the test runs in, with crate-type `cdylib`, to be built
/// for a test's interpreter and staged where that interpreter can import it.
///
/// ```no_run
/// use bindery_testkit::{Extension, Script};
///
/// Script::new("import my_module; assert my_module.answer() == 42")
///     .extension(Extension::new("my-module-crate"))
///     .check();
/// ```
///
/// The build is `cargo build -p <package> --message-format=json-render-diagnostics` (cargo
/// is `$CARGO` if set), with:
/// - the test's profile (`--release` if this crate was built without debug assertions);
/// - `PYO3_BUILD_EXTENSION_MODULE=1` (do not link libpython, as maturin builds) and
///   `PYO3_PYTHON=<the interpreter>` (`PYO3_CONFIG_FILE` is removed so it cannot override
///   that choice);
/// - its own target folder, `<workspace target dir>/bindery-testkit/<tag>`, where the tag
///   names the interpreter and the feature set, so builds for different interpreters and
///   features never evict one another nor the test build.
///
/// The built file is whatever cargo reports as the package's `cdylib` artifact. Each
/// (package, features, interpreter, folder) is built once per test process.
#[derive(Clone, Debug)]
pub struct Extension {
    package: String,
    module_name: Option<String>,
    features: Vec<String>,
    manifest_dir: Option<PathBuf>,
}

/// An extension module built for one interpreter and copied alone into a fresh folder.
#[derive(Clone, Debug)]
pub struct StagedExtension {
    /// A fresh folder under the system temp folder holding only this module; put it on
    /// `PYTHONPATH`.
    pub dir: PathBuf,
    /// The import name.
    pub module: String,
    /// `dir/<module><EXT_SUFFIX>`.
    pub path: PathBuf,
}

impl Extension {
    /// The Cargo package `package` (its package name, as in `cargo build -p`).
    pub fn new(package: impl Into<String>) -> Extension {
        Extension {
            package: package.into(),
            module_name: None,
            features: Vec::new(),
            manifest_dir: None,
        }
    }

    /// The import name; it must match the module's `PyInit_<name>` function. Default: the
    /// cdylib's lib name (`libfoo_bar.so` -> `foo_bar`).
    pub fn module_name(mut self, name: impl Into<String>) -> Extension {
        self.module_name = Some(name.into());
        self
    }

    /// Cargo features to enable (added to any given before).
    pub fn features(mut self, features: impl IntoIterator<Item = impl Into<String>>) -> Extension {
        self.features.extend(features.into_iter().map(Into::into));
        self
    }

    /// Where to run cargo from (any folder of the workspace). Default: `CARGO_MANIFEST_DIR`
    /// at run time (cargo and nextest set it for tests), else the current folder.
    pub fn manifest_dir(mut self, dir: impl Into<PathBuf>) -> Extension {
        self.manifest_dir = Some(dir.into());
        self
    }

    /// Builds the module for `python` (once per process) and copies it into a fresh folder
    /// as `<module><EXT_SUFFIX>`.
    ///
    /// The folder is not removed afterwards ([`Script::run`](crate::Script::run) removes the
    /// ones it stages itself). The error text includes cargo's output.
    pub fn stage(&self, python: &PythonInfo) -> Result<StagedExtension, String> {
        let built = self.build(python)?;
        let module = self.module_name.clone().unwrap_or(built.lib_name);
        let dir = fresh_temp_dir().map_err(|e| {
            format!(
                "creating a staging folder under {}: {e}",
                std::env::temp_dir().display()
            )
        })?;
        let path = dir.join(format!("{module}{}", python.ext_suffix));
        fs::copy(&built.file, &path).map_err(|e| {
            format!(
                "copying {} to {}: {e}",
                built.file.display(),
                path.display()
            )
        })?;
        Ok(StagedExtension { dir, module, path })
    }

    fn manifest_dir_or_default(&self) -> PathBuf {
        self.manifest_dir
            .clone()
            .or_else(|| std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from))
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_else(|| PathBuf::from("."))
    }

    fn sorted_features(&self) -> Vec<String> {
        let mut features = self.features.clone();
        features.sort();
        features.dedup();
        features
    }

    /// Runs (or reuses) the cargo build for `python`.
    fn build(&self, python: &PythonInfo) -> Result<Built, String> {
        type Key = (PathBuf, String, Vec<String>, PathBuf);
        static BUILT: OnceLock<Mutex<HashMap<Key, Built>>> = OnceLock::new();

        let manifest_dir = self.manifest_dir_or_default();
        let features = self.sorted_features();
        let key = (
            manifest_dir.clone(),
            self.package.clone(),
            features.clone(),
            python.executable.clone(),
        );
        // Held during the build: threads of one test process build one thing at a time
        // (cargo would serialise them on its folder lock anyway).
        let mut built = BUILT
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(done) = built.get(&key) {
            return Ok(done.clone());
        }

        let target_root = workspace_target_dir(&manifest_dir)?;
        let mut tag = format!(
            "{}-{:08x}",
            python.tag(),
            fnv1a(python.executable.as_os_str().as_encoded_bytes())
        );
        if !features.is_empty() {
            tag.push_str(&format!("-f{:08x}", fnv1a(features.join(",").as_bytes())));
        }
        let target_dir = target_root.join("bindery-testkit").join(tag);

        let mut command = Command::new(cargo());
        command
            .current_dir(&manifest_dir)
            .args(["build", "-p", &self.package])
            .arg("--message-format=json-render-diagnostics")
            .arg("--target-dir")
            .arg(&target_dir)
            .env("PYO3_BUILD_EXTENSION_MODULE", "1")
            .env("PYO3_PYTHON", &python.executable)
            .env_remove("PYO3_CONFIG_FILE");
        if !cfg!(debug_assertions) {
            command.arg("--release");
        }
        if !features.is_empty() {
            command.arg("--features").arg(features.join(","));
        }
        eprintln!(
            "bindery-testkit: building {} for Python {} ({}) in {}",
            self.package,
            python.describe_version(),
            python.executable.display(),
            target_dir.display()
        );
        let output = run_collecting(command).map_err(|e| {
            format!(
                "running cargo ({}) in {}: {e}",
                cargo(),
                manifest_dir.display()
            )
        })?;
        let what = format!(
            "`cargo build -p {}` for Python {} in {}",
            self.package,
            python.describe_version(),
            manifest_dir.display()
        );
        if !output.success {
            return Err(format!(
                "{what} failed ({}); cargo's stderr:\n{}",
                output.status, output.stderr
            ));
        }
        let artifact = find_cdylib(&output.stdout, &self.package).map_err(|e| {
            format!(
                "{what}: {e} (is crate-type \"cdylib\" set in its [lib]?); cargo's stderr:\n{}",
                output.stderr
            )
        })?;
        built.insert(key, artifact.clone());
        Ok(artifact)
    }
}

/// A built cdylib.
#[derive(Clone, Debug)]
struct Built {
    file: PathBuf,
    lib_name: String,
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

struct Collected {
    success: bool,
    status: String,
    stdout: String,
    stderr: String,
}

/// Runs a command to completion, reading stdout and stderr concurrently.
fn run_collecting(mut command: Command) -> io::Result<Collected> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take();
    let stderr_reader = thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = stderr {
            // Partial text is still worth showing if reading fails midway.
            let _ = io::Read::read_to_string(&mut pipe, &mut text);
        }
        text
    });
    let mut stdout = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        io::Read::read_to_string(&mut pipe, &mut stdout)?;
    }
    let status = child.wait()?;
    let stderr = stderr_reader.join().unwrap_or_default();
    Ok(Collected {
        success: status.success(),
        status: status.to_string(),
        stdout,
        stderr,
    })
}

/// The workspace's target folder (`cargo metadata`), cached per manifest folder.
fn workspace_target_dir(manifest_dir: &Path) -> Result<PathBuf, String> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, PathBuf>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(dir) = cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(manifest_dir)
    {
        return Ok(dir.clone());
    }
    let mut command = Command::new(cargo());
    command
        .current_dir(manifest_dir)
        .args(["metadata", "--format-version", "1", "--no-deps"]);
    let what = format!("`cargo metadata` in {}", manifest_dir.display());
    let output = run_collecting(command).map_err(|e| format!("{what}: {e}"))?;
    if !output.success {
        return Err(format!(
            "{what} failed ({}):\n{}",
            output.status, output.stderr
        ));
    }
    let metadata =
        Json::parse(&output.stdout).map_err(|e| format!("{what}: unreadable output: {e}"))?;
    let dir = metadata
        .get("target_directory")
        .and_then(Json::as_str)
        .map(PathBuf::from)
        .ok_or_else(|| format!("{what}: no target_directory in its output"))?;
    cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(manifest_dir.to_path_buf(), dir.clone());
    Ok(dir)
}

/// Finds the cdylib among cargo's JSON messages; if several packages produced one, prefers
/// the one whose package id names `package`.
fn find_cdylib(messages: &str, package: &str) -> Result<Built, String> {
    let mut found: Vec<(String, Built)> = Vec::new();
    for line in messages.lines().filter(|l| l.starts_with('{')) {
        let Ok(message) = Json::parse(line) else {
            continue;
        };
        if message.get("reason").and_then(Json::as_str) != Some("compiler-artifact") {
            continue;
        }
        let Some(target) = message.get("target") else {
            continue;
        };
        let is_cdylib = target
            .get("kind")
            .is_some_and(|kinds| kinds.items().iter().any(|k| k.as_str() == Some("cdylib")));
        if !is_cdylib {
            continue;
        }
        let file = message.get("filenames").and_then(|names| {
            names.items().iter().filter_map(Json::as_str).find(|name| {
                [".so", ".dylib", ".pyd", ".dll"]
                    .iter()
                    .any(|ext| name.ends_with(ext))
            })
        });
        let Some(file) = file.map(PathBuf::from) else {
            continue;
        };
        let lib_name = target
            .get("name")
            .and_then(Json::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| lib_name_from_file(&file));
        let package_id = message
            .get("package_id")
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_owned();
        found.push((package_id, Built { file, lib_name }));
    }
    let names_package = |id: &str| {
        // "path+file:///ws/examples/foo#my-pkg@0.1.0" or the older "my-pkg 0.1.0 (path+...)".
        id.contains(&format!("#{package}@")) || id.starts_with(&format!("{package} "))
    };
    match found.len() {
        0 => Err("cargo reported no cdylib artifact".into()),
        1 => Ok(found.remove(0).1),
        _ => found
            .iter()
            .find(|(id, _)| names_package(id))
            .or(found.last())
            .map(|(_, built)| built.clone())
            .ok_or_else(|| "cargo reported no cdylib artifact".into()),
    }
}

/// `libfoo_bar.so` -> `foo_bar`.
fn lib_name_from_file(file: &Path) -> String {
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    stem.strip_prefix("lib").map(str::to_owned).unwrap_or(stem)
}

/// A new empty folder `bindery-testkit-<pid>-<n>` under the system temp folder.
fn fresh_temp_dir() -> io::Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("bindery-testkit-{}-{n}", std::process::id()));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            // Left over by an earlier process that had the same pid: take the next number.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// 32-bit FNV-1a: a short hash that stays the same across Rust releases, for folder names.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash, &b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_packages_cdylib_among_cargo_messages() {
        let messages = r#"{"reason":"compiler-artifact","package_id":"registry+https://github.com/rust-lang/crates.io-index#pyo3-ffi@0.30.1","target":{"kind":["lib"],"name":"pyo3_ffi"},"filenames":["/t/debug/deps/libpyo3_ffi-1.rlib"]}
{"reason":"build-script-executed","package_id":"x"}
{"reason":"compiler-artifact","package_id":"path+file:///ws/other#other-ext@0.1.0","target":{"kind":["cdylib"],"name":"other_ext"},"filenames":["/t/debug/libother_ext.so"]}
{"reason":"compiler-artifact","package_id":"path+file:///ws/examples/probe#my-probe@0.1.0","target":{"kind":["cdylib"],"name":"my_probe"},"filenames":["/t/debug/libmy_probe.so"]}
{"reason":"build-finished","success":true}
"#;
        let built = find_cdylib(messages, "my-probe").unwrap();
        assert_eq!(built.file, PathBuf::from("/t/debug/libmy_probe.so"));
        assert_eq!(built.lib_name, "my_probe");
        assert!(find_cdylib(messages.lines().next().unwrap(), "my-probe").is_err());
    }

    #[test]
    fn lib_name_comes_from_the_file_name() {
        assert_eq!(lib_name_from_file(Path::new("/t/libfoo_bar.so")), "foo_bar");
        assert_eq!(lib_name_from_file(Path::new("/t/foo_bar.pyd")), "foo_bar");
    }

    #[test]
    fn fnv1a_matches_the_reference_values() {
        assert_eq!(fnv1a(b""), 0x811c_9dc5);
        assert_eq!(fnv1a(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn temp_dirs_are_fresh_and_distinct() {
        let a = fresh_temp_dir().unwrap();
        let b = fresh_temp_dir().unwrap();
        assert_ne!(a, b);
        assert!(a.is_dir() && b.is_dir());
        assert_eq!(fs::read_dir(&a).unwrap().count(), 0);
        fs::remove_dir(a).unwrap();
        fs::remove_dir(b).unwrap();
    }
}
