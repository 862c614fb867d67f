//! A binary built on one CPU and run on an older one (a copied `$AUTODIDACT_HOME`, a binary
//! moved between VMs) refuses with an error that says to rebuild, instead of dying of SIGILL
//! inside a llama.cpp kernel (issue 16).
//!
//! The older CPU is real in the way that matters: QEMU's user-mode emulator runs the binary as
//! an Intel Nehalem (SSE4.2, no AVX), answering `cpuid` as that CPU would and raising SIGILL
//! for any instruction it lacks. Everything the process runs before the check (its start-up,
//! llama.cpp's static initialisers, argument parsing) must therefore be free of AVX too.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

#[test]
fn generate_on_a_cpu_without_avx_says_to_rebuild() {
    let qemu = "qemu-x86_64";
    let out = Command::new(qemu)
        .args(["-cpu", "Nehalem", env!("CARGO_BIN_EXE_autodidact"), "generate", "--json", "Say hi"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {qemu} ({e}); scripts/bootstrap.sh installs it (Debian's qemu-user)"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), None, "killed by a signal instead of refusing: {stderr}");
    assert!(!out.status.success(), "ran on an emulated Nehalem: {stderr}");
    // The build machine has AVX (every x86-64 CPU since 2011 that this project builds on), so
    // llama.cpp was compiled with it and the emulated CPU lacks it.
    assert!(stderr.contains("this CPU lacks") && stderr.contains("AVX"), "{stderr}");
    assert!(stderr.contains("make build"), "the error must say how to rebuild: {stderr}");
    assert!(out.stdout.is_empty(), "printed a result: {}", String::from_utf8_lossy(&out.stdout));
}
