//! A missing asset or an unprepared module is a clear error that says what to run.

use autodidact_sandbox::{Sandbox, SandboxConfig};

#[test]
fn missing_wasm_names_the_bootstrap() {
    let dir = std::env::temp_dir().join(format!("autodidact-empty-home-{}", std::process::id()));
    let config = SandboxConfig::from_home(&dir);
    let e = Sandbox::open(&config).unwrap_err().to_string();
    assert!(e.contains("python-snapshot.wasm"), "{e}");
    assert!(e.contains("scripts/bootstrap.sh"), "{e}");
}

#[test]
fn unprepared_module_names_the_prepare_command() {
    let real = SandboxConfig::from_env();
    let cache = std::env::temp_dir().join(format!("autodidact-empty-cache-{}", std::process::id()));
    let config = SandboxConfig { cache_dir: cache, compile_if_missing: false, ..real };
    let e = Sandbox::open(&config).unwrap_err().to_string();
    assert!(e.contains("autodidact sandbox prepare"), "{e}");
}
