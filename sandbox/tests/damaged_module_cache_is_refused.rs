//! The cached `.cwasm` is native code that wasmtime maps and runs as is, so a damaged one must
//! never reach it. A bit-flipped or truncated cache file is refused with a clear error naming
//! the file (and, when compiling is allowed, compiled again); an intact copy opens and runs.

use std::path::{Path, PathBuf};

use autodidact_sandbox::{Sandbox, SandboxConfig};

/// A cache folder holding a copy of the real compiled module (and its checksum), altered by
/// `damage`.
fn cache_with(name: &str, cwasm: &Path, damage: impl FnOnce(&Path)) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("autodidact-cache-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join(cwasm.file_name().unwrap());
    std::fs::copy(cwasm, &copy).unwrap();
    let mut sum = cwasm.as_os_str().to_owned();
    sum.push(".sum");
    let mut sum_copy = copy.as_os_str().to_owned();
    sum_copy.push(".sum");
    std::fs::copy(PathBuf::from(sum), PathBuf::from(sum_copy)).unwrap();
    damage(&copy);
    dir
}

fn open_without_compiling(cache_dir: PathBuf) -> Result<Sandbox, String> {
    let config = SandboxConfig { cache_dir, compile_if_missing: false, ..SandboxConfig::from_env() };
    Sandbox::open(&config).map_err(|e| e.to_string())
}

#[test]
fn a_bit_flipped_or_truncated_cache_is_refused_and_an_intact_one_runs() {
    // The real cache (prepared by the bootstrap; this also writes a checksum for a cache from
    // before checksums).
    let cwasm = Sandbox::prepare(&SandboxConfig::from_env(), |_| {}).unwrap();

    let intact = cache_with("intact", &cwasm, |_| {});
    let sandbox = open_without_compiling(intact.clone()).expect("an intact copy opens");
    let mut session = sandbox.session(Default::default(), Default::default()).unwrap();
    assert_eq!(session.exec("6 * 7").unwrap().stdout.trim(), "42");
    drop(session);

    let flipped = cache_with("flipped", &cwasm, |f| {
        let mut bytes = std::fs::read(f).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x10;
        std::fs::write(f, bytes).unwrap();
    });
    let e = open_without_compiling(flipped.clone()).err().expect("a bit-flipped module is refused");
    println!("flipped: {e}");
    assert!(e.contains("damaged") && e.contains("CRC-32") && e.contains(".cwasm"), "{e}");

    let truncated = cache_with("truncated", &cwasm, |f| {
        let len = std::fs::metadata(f).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(f).unwrap().set_len(len / 3).unwrap();
    });
    let e = open_without_compiling(truncated.clone()).err().expect("a truncated module is refused");
    println!("truncated: {e}");
    assert!(e.contains("damaged") && e.contains("bytes where"), "{e}");

    let lost_sum = cache_with("garbled-sum", &cwasm, |f| {
        let mut sum = f.as_os_str().to_owned();
        sum.push(".sum");
        std::fs::write(PathBuf::from(sum), "not a checksum").unwrap();
    });
    let e = open_without_compiling(lost_sum.clone()).err().expect("a malformed checksum is refused");
    assert!(e.contains("malformed"), "{e}");

    for d in [intact, flipped, truncated, lost_sum] {
        let _ = std::fs::remove_dir_all(d);
    }
}
