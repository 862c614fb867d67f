//! Tidy: checks the rules that review would otherwise have to remember.
//!
//! - every workspace crate appears in `ARCHITECTURE.md`'s code map;
//! - the dependency invariants between workspace crates hold (`cargo metadata`);
//! - library crates do not use `anyhow`;
//! - every Rust file opens with a `//!` doc comment;
//! - every `unsafe` block carries a `// SAFETY:` comment;
//! - no test is marked ignored or expected to panic;
//! - no model, wasm or other binary asset is tracked by git.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn metadata() -> Value {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

/// (crate, its folder relative to the root, the workspace crates it depends on, all deps).
fn workspace_crates() -> Vec<(String, PathBuf, Vec<String>, Vec<String>)> {
    let meta = metadata();
    let names: Vec<String> =
        meta["packages"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let manifest = PathBuf::from(p["manifest_path"].as_str().unwrap());
            let dir = manifest.parent().unwrap().strip_prefix(root()).unwrap().to_owned();
            let deps: Vec<(String, String)> = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| (d["name"].as_str().unwrap().to_owned(), d["kind"].as_str().unwrap_or("normal").to_owned()))
                .collect();
            let internal = deps.iter().filter(|(n, _)| names.contains(n)).map(|(n, _)| n.clone()).collect();
            let normal = deps.iter().filter(|(_, k)| k == "normal").map(|(n, _)| n.clone()).collect();
            (p["name"].as_str().unwrap().to_owned(), dir, internal, normal)
        })
        .collect()
}

#[test]
fn every_crate_is_in_the_code_map() {
    let arch = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md exists");
    for (name, dir, _, _) in workspace_crates() {
        let folder = if dir.as_os_str().is_empty() { "src/".to_owned() } else { format!("{}/", dir.display()) };
        let heading = format!("### `{folder}` (crate `{name}`)");
        assert!(arch.contains(&heading), "ARCHITECTURE.md's code map lacks `{heading}`");
    }
}

#[test]
fn code_map_lists_no_missing_crate() {
    let arch = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let crates: Vec<String> = workspace_crates().into_iter().map(|c| c.0).collect();
    for line in arch.lines().filter(|l| l.starts_with("### `")) {
        let name = line.split("(crate `").nth(1).and_then(|r| r.split('`').next()).unwrap_or("");
        assert!(crates.iter().any(|c| c == name), "ARCHITECTURE.md maps `{name}`, which is not a workspace crate");
    }
}

#[test]
fn dependency_invariants_hold() {
    // crate -> workspace crates it must never depend on ("*" = any).
    let forbidden: &[(&str, &[&str])] = &[
        ("autodidact-sandbox", &["*"]),
        ("autodidact-policies", &["*"]),
        ("autodidact-memory", &["autodidact-sandbox", "autodidact-runtime", "autodidact-trainer", "autodidact-evals", "autodidact-nightly", "autodidact-serve"]),
        ("autodidact-trainer", &["autodidact-runtime", "autodidact-sandbox", "autodidact-evals", "autodidact-nightly", "autodidact-serve"]),
        ("autodidact-runtime", &["autodidact-trainer", "autodidact-evals", "autodidact-nightly", "autodidact-serve"]),
        ("autodidact-evals", &["autodidact-trainer", "autodidact-nightly", "autodidact-serve"]),
        ("autodidact-nightly", &["autodidact-serve"]),
        ("autodidact-serve", &["autodidact-trainer", "autodidact-nightly"]),
    ];
    for (name, _, internal, _) in workspace_crates() {
        for (rule_crate, banned) in forbidden {
            if name != *rule_crate {
                continue;
            }
            for dep in &internal {
                assert!(
                    !banned.contains(&"*") && !banned.contains(&dep.as_str()),
                    "Architecture Invariant broken: `{name}` depends on `{dep}`"
                );
            }
        }
    }
}

#[test]
fn only_the_cli_uses_anyhow() {
    for (name, _, _, normal) in workspace_crates() {
        if name != "autodidact" {
            assert!(!normal.iter().any(|d| d == "anyhow"), "library crate `{name}` depends on anyhow; use a thiserror enum");
        }
    }
}

fn tracked_files() -> Vec<PathBuf> {
    let out = Command::new("git").args(["ls-files", "-z"]).current_dir(root()).output().expect("git runs");
    assert!(out.status.success());
    out.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()).map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned())).collect()
}

fn rust_files() -> Vec<PathBuf> {
    tracked_files().into_iter().filter(|p| p.extension().is_some_and(|e| e == "rs")).filter(|p| root().join(p).exists()).collect()
}

#[test]
fn every_rust_file_opens_with_a_doc_comment() {
    for path in rust_files() {
        let text = std::fs::read_to_string(root().join(&path)).unwrap();
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        assert!(first.starts_with("//!"), "{} must open with a `//!` comment saying what it is", path.display());
    }
}

#[test]
fn every_unsafe_block_says_why_it_is_safe() {
    for path in rust_files() {
        let text = std::fs::read_to_string(root().join(&path)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let needle = ["unsafe", " {"].concat();
            if code.contains(&needle) {
                let before = &lines[i.saturating_sub(8)..i];
                assert!(
                    before.iter().any(|l| l.contains("// SAFETY:")) || line.contains("// SAFETY:"),
                    "{}:{}: `unsafe` block without a `// SAFETY:` comment",
                    path.display(),
                    i + 1
                );
            }
        }
    }
}

#[test]
fn no_test_is_ignored_or_expected_to_panic() {
    let ignore = ["#[", "ignore"].concat();
    let should_panic = ["#[", "should_panic"].concat();
    for path in rust_files() {
        let text = std::fs::read_to_string(root().join(&path)).unwrap();
        assert!(!text.contains(&ignore), "{}: tests must not be ignored", path.display());
        assert!(!text.contains(&should_panic), "{}: assert on the error instead of expecting a panic", path.display());
    }
}

#[test]
fn no_binary_asset_is_tracked() {
    for path in tracked_files() {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        assert!(
            !["gguf", "wasm", "cwasm", "safetensors", "bin", "whl", "zip", "parquet"].contains(&ext.as_str()),
            "{} is a binary asset: the bootstrap fetches assets, they are never committed",
            path.display()
        );
        if let Ok(meta) = std::fs::metadata(root().join(&path)) {
            assert!(meta.len() < 1 << 20, "{} is over 1 MiB; large files are fetched, not committed", path.display());
        }
    }
}

#[test]
fn sandbox_public_api_has_no_wasmtime_types() {
    // The public items are re-exported from lib.rs; their signatures live in these files.
    let dir = root().join("sandbox/src");
    for file in ["lib.rs", "config.rs", "session.rs", "tools.rs", "engine.rs"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        for line in text.lines().filter(|l| l.trim_start().starts_with("pub fn") || l.trim_start().starts_with("pub async fn")) {
            assert!(!line.contains("wasmtime"), "{file}: public signature mentions wasmtime: {line}");
        }
    }
    let _ = Path::new("");
}

#[test]
fn llama_cpp_is_built_with_the_cpu_options_never_march_native() {
    // `-march=native` for llama.cpp turns on the AMX kernels that crash (issue 16) and makes
    // start-up code CPU-specific; the per-instruction-set options of scripts/llama-cpu-flags.sh
    // replace it. Cargo config files and every build entry point are checked.
    for file in [".cargo/config.toml", ".cargo/config", "Makefile", "scripts/bootstrap.sh", ".ci/run"] {
        let Ok(text) = std::fs::read_to_string(root().join(file)) else { continue };
        let flagged = text.lines().filter(|l| !l.trim_start().starts_with('#')).any(|l| l.contains("CMAKE_") && l.contains("march=native"));
        assert!(!flagged, "{file} compiles llama.cpp with -march=native; use scripts/llama-cpu-flags.sh");
    }
    for file in ["Makefile", "scripts/bootstrap.sh"] {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        assert!(text.contains("scripts/llama-cpu-flags.sh"), "{file} builds without llama.cpp's CPU options");
    }
}
