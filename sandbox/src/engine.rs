//! The engine and the compiled module: configured once, cached on disk, shared in-process.
//!
//! Compiling `python.wasm` takes minutes and gigabytes, so the compiled module is written to
//! `cache_dir` as a `.cwasm` keyed by wasmtime's version, the engine configuration and the
//! wasm file's SHA-256. Loading it back maps the file (about 10 ms). Within a process, a
//! [`Sandbox`] for the same wasm and configuration is opened once and shared.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::{Config, Engine, Module};

use crate::compiled::Compiled;
use crate::config::{Limits, SandboxConfig};
use crate::host;
use crate::pool::WASM_STACK;
use crate::session::Session;
use crate::tools::ToolSet;
use crate::Error;

const WASMTIME_VERSION: &str = "48.0.8";
/// How often the epoch ticks: the granularity of deadlines and cancellation.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(5);
const BOOTSTRAP: &str = "run `scripts/bootstrap.sh` (or `make bootstrap`) to fetch it";

/// A compiled CPython-WASI module ready to start sessions. Cheap to clone.
#[derive(Clone)]
pub struct Sandbox {
    pub(crate) inner: Arc<Compiled>,
}


impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").field("stdlib_dir", &self.inner.stdlib_dir).field("fuel", &self.inner.fuel).finish()
    }
}

fn engine_config(fuel: bool) -> Config {
    let mut c = Config::new();
    c.wasm_exceptions(true)
        .epoch_interruption(true)
        .max_wasm_stack(WASM_STACK)
        .async_stack_size(WASM_STACK + (1 << 20))
        .consume_fuel(fuel)
        .parallel_compilation(true);
    c
}

impl Sandbox {
    /// Opens (or reuses, within this process) the sandbox for `config`.
    ///
    /// Compiles and caches the module first if no cached copy exists and
    /// `config.compile_if_missing` is set; that takes minutes once.
    pub fn open(config: &SandboxConfig) -> Result<Sandbox, Error> {
        static OPEN: OnceLock<Mutex<HashMap<(PathBuf, PathBuf, bool), Sandbox>>> = OnceLock::new();
        let key = (config.wasm.clone(), config.cache_dir.clone(), config.fuel);
        let mut open = OPEN.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = open.get(&key) {
            return Ok(s.clone());
        }
        let s = Self::open_uncached(config)?;
        open.insert(key, s.clone());
        Ok(s)
    }

    fn open_uncached(config: &SandboxConfig) -> Result<Sandbox, Error> {
        check_assets(config)?;
        let engine = Engine::new(&engine_config(config.fuel)).map_err(|e| Error::Engine(format!("{e:#}")))?;
        let cwasm = cache_path(config, &engine)?;
        if !cwasm.exists() {
            if !config.compile_if_missing {
                return Err(Error::NotPrepared { path: cwasm });
            }
            compile_to(config, &engine, &cwasm)?;
        } else if let Err(why) = check_sum(&cwasm) {
            // The cached file is native code that is mapped and run as is: a truncated or
            // bit-flipped one must never reach wasmtime. Its checksum was written beside it.
            if !config.compile_if_missing {
                return Err(Error::Compile { path: cwasm, message: format!("cached module is damaged ({why}); delete it and run `autodidact sandbox prepare`") });
            }
            eprintln!("sandbox: cached module {} is damaged ({why}); compiling it again (minutes, once)", cwasm.display());
            let _ = std::fs::remove_file(&cwasm);
            compile_to(config, &engine, &cwasm)?;
        }
        let started = Instant::now();
        // SAFETY: the file is one this crate wrote with `Engine::precompile_module` for an
        // engine of the same configuration (its name is keyed by that configuration and the
        // wasm's hash) and renamed into place only once complete. wasmtime also checks the
        // header's compatibility and refuses a mismatched artifact.
        #[allow(unsafe_code)]
        let module = match unsafe { Module::deserialize_file(&engine, &cwasm) } {
            Ok(m) => m,
            Err(e) => {
                // A stale or damaged cache entry: compile again once, if allowed.
                if !config.compile_if_missing {
                    return Err(Error::Compile { path: cwasm, message: format!("cached module is unusable: {e:#}") });
                }
                let _ = std::fs::remove_file(&cwasm);
                compile_to(config, &engine, &cwasm)?;
                // SAFETY: as above; the file was just written by this process.
                #[allow(unsafe_code)]
                unsafe { Module::deserialize_file(&engine, &cwasm) }
                    .map_err(|e| Error::Compile { path: cwasm.clone(), message: format!("{e:#}") })?
            }
        };
        let module_load = started.elapsed();
        let instantiate = |e: wasmtime::Error| Error::Instantiate(format!("{e:#}"));
        let linker = host::guest_linker(&engine).map_err(instantiate)?;
        let pre = linker.instantiate_pre(&module).map_err(instantiate)?;
        start_epoch_ticker(&engine);
        Ok(Sandbox {
            inner: Arc::new(Compiled {
                engine,
                pre,
                stdlib_dir: config.stdlib_dir.clone(),
                fuel: config.fuel,
                module_load,
            }),
        })
    }

    /// Compiles the module for `config` into the cache if it is not there yet, and returns the
    /// cached file's path. `progress` is told what is happening.
    pub fn prepare(config: &SandboxConfig, mut progress: impl FnMut(&str)) -> Result<PathBuf, Error> {
        check_assets(config)?;
        let engine = Engine::new(&engine_config(config.fuel)).map_err(|e| Error::Engine(format!("{e:#}")))?;
        progress("hashing the module");
        let cwasm = cache_path(config, &engine)?;
        if cwasm.exists() {
            match check_sum(&cwasm) {
                Ok(()) => {
                    progress("already compiled");
                    return Ok(cwasm);
                }
                Err(why) => {
                    progress(&format!("the cached module is damaged ({why})"));
                    let _ = std::fs::remove_file(&cwasm);
                }
            }
        }
        progress("compiling python.wasm for this machine (minutes, once)");
        compile_to(config, &engine, &cwasm)?;
        Ok(cwasm)
    }

    /// How long loading the cached module took when this sandbox was opened.
    pub fn module_load_time(&self) -> Duration {
        self.inner.module_load
    }

    /// Starts a session: a fresh interpreter with its own globals, under `limits`, able to
    /// call `tools`.
    pub fn session(&self, limits: Limits, tools: ToolSet) -> Result<Session, Error> {
        Session::start(&self.inner, limits, tools)
    }
}

fn check_assets(config: &SandboxConfig) -> Result<(), Error> {
    if !config.wasm.is_file() {
        return Err(Error::MissingAsset { path: config.wasm.clone(), hint: BOOTSTRAP });
    }
    let zip = config.stdlib_dir.join("python315.zip");
    if !zip.is_file() {
        return Err(Error::MissingAsset { path: zip, hint: BOOTSTRAP });
    }
    Ok(())
}

fn compile_to(config: &SandboxConfig, engine: &Engine, cwasm: &Path) -> Result<(), Error> {
    let io = |source| Error::Cache { path: cwasm.to_owned(), source };
    let wasm = std::fs::read(&config.wasm).map_err(|source| Error::Cache { path: config.wasm.clone(), source })?;
    let bytes = engine
        .precompile_module(&wasm)
        .map_err(|e| Error::Compile { path: config.wasm.clone(), message: format!("{e:#}") })?;
    let dir = cwasm.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = cwasm.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, &bytes).map_err(io)?;
    // The checksum goes in place first: a module without its checksum is never trusted.
    write_sum(cwasm, bytes.len() as u64, crc32fast::hash(&bytes)).map_err(io)?;
    std::fs::rename(&tmp, cwasm).map_err(io)?;
    Ok(())
}

/// `python-<key>.cwasm.sum`: the cached module's length and CRC-32, written with it.
fn sum_path(cwasm: &Path) -> PathBuf {
    let mut name = cwasm.as_os_str().to_owned();
    name.push(".sum");
    PathBuf::from(name)
}

/// Checks the cached module against its checksum file. CRC-32 catches truncation and random
/// corruption (it is not a defence against someone who can write the cache: they could write
/// the checksum too) and streams at several GB/s.
fn check_sum(cwasm: &Path) -> Result<(), String> {
    let sum = sum_path(cwasm);
    let want = match std::fs::read_to_string(&sum) {
        Ok(w) => w,
        // A cache from before checksums: adopted once (it was trusted as is until now).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (size, crc) = crc_of(cwasm)?;
            return write_sum(cwasm, size, crc).map_err(|e| format!("cannot write {}: {e}", sum.display()));
        }
        Err(e) => return Err(format!("its checksum file {} cannot be read: {e}", sum.display())),
    };
    let (len, crc) = want
        .split_once(' ')
        .and_then(|(l, c)| Some((l.parse::<u64>().ok()?, u32::from_str_radix(c.trim(), 16).ok()?)))
        .ok_or_else(|| format!("its checksum file {} is malformed", sum.display()))?;
    let (size, got) = crc_of(cwasm)?;
    if size != len {
        return Err(format!("{size} bytes where {len} were written"));
    }
    if got != crc {
        return Err(format!("CRC-32 {got:08x} where {crc:08x} was written"));
    }
    Ok(())
}

/// The file's length and CRC-32, streamed.
fn crc_of(path: &Path) -> Result<(u64, u32), String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok((size, h.finalize()));
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
}

/// Writes a cached module's checksum file (whole, by rename).
fn write_sum(cwasm: &Path, size: u64, crc: u32) -> std::io::Result<()> {
    let sum = sum_path(cwasm);
    let tmp = sum.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, format!("{size} {crc:08x}\n"))?;
    std::fs::rename(&tmp, &sum)
}

/// `<cache_dir>/python-<key>.cwasm`, the key covering wasmtime's version, the engine's
/// configuration and the wasm's SHA-256.
fn cache_path(config: &SandboxConfig, engine: &Engine) -> Result<PathBuf, Error> {
    let wasm_sha = wasm_sha256(config)?;
    let mut compat = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut compat);
    let mut h = Sha256::new();
    h.update(WASMTIME_VERSION.as_bytes());
    h.update(compat.finish().to_le_bytes());
    h.update([config.fuel as u8]);
    h.update(wasm_sha.as_bytes());
    let key: String = h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect();
    let stem = config.wasm.file_stem().and_then(|s| s.to_str()).unwrap_or("python");
    Ok(config.cache_dir.join(format!("{stem}-{key}.cwasm")))
}

/// The wasm file's SHA-256, memoised beside the cache by size and modification time so that
/// opening a sandbox does not hash 100 MB every time.
fn wasm_sha256(config: &SandboxConfig) -> Result<String, Error> {
    let meta = std::fs::metadata(&config.wasm).map_err(|source| Error::Cache { path: config.wasm.clone(), source })?;
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    let mut id = Sha256::new();
    id.update(config.wasm.to_string_lossy().as_bytes());
    let id: String = id.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
    let memo = config.cache_dir.join(format!("sha256-{id}-{}-{mtime}", meta.len()));
    if let Ok(s) = std::fs::read_to_string(&memo) {
        if s.len() == 64 {
            return Ok(s);
        }
    }
    let bytes = std::fs::read(&config.wasm).map_err(|source| Error::Cache { path: config.wasm.clone(), source })?;
    let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    let _ = std::fs::create_dir_all(&config.cache_dir);
    let _ = std::fs::write(&memo, &sha);
    Ok(sha)
}

/// Ticks the engine's epoch until the engine is dropped.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let _ = std::thread::Builder::new().name("sandbox-epoch".into()).spawn(move || {
        while let Some(engine) = weak.upgrade() {
            engine.increment_epoch();
            drop(engine);
            std::thread::sleep(EPOCH_TICK);
        }
    });
}

impl Sandbox {
    /// Opens the sandbox afresh, bypassing the in-process cache: a new engine that loads the
    /// cached module again. For benchmarks of [`Sandbox::module_load_time`].
    pub fn open_uncached_for_bench(config: &SandboxConfig) -> Result<Sandbox, Error> {
        Self::open_uncached(&SandboxConfig { compile_if_missing: false, ..config.clone() })
    }
}
