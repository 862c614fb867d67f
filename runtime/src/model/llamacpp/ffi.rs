//! The two things llama-cpp-2 0.1.160 does not do safely, done here through llama-cpp-sys-2.
//!
//! - **Freeing LoRA adapters.** `LlamaLoraAdapter` has no `Drop`, so every load leaked the
//!   adapter's size (60 reloads of a 19.5 MB adapter grew a prototype from 116 MB to 1.2 GB).
//!   [`OwnedAdapter`] frees it with `llama_adapter_lora_free` when dropped.
//! - **Reading llama.cpp's log.** Loading functions report failure only as a null pointer;
//!   the reason ("tensor ... has incorrect shape", "invalid magic") goes to llama.cpp's log.
//!   [`install_log_callback`] routes the log through [`capture`], which records what one thread
//!   logs while it runs a closure. Otherwise the log is dropped, or copied to stderr when
//!   `AUTODIDACT_LLAMA_LOG` is set.
//! - **Asking ggml what it was compiled for.** `ggml-cpu.h` is not in llama-cpp-sys-2's
//!   bindings; [`compiled_isa`] declares its `ggml_cpu_has_*` functions, which return
//!   compile-time constants, and [`cpu_extra_buffer_types`] lists the CPU device's extra
//!   weight-buffer types (`CPU_REPACK`, and `AMX` in a build with AMX).
//!
//! This is the only module of the crate with `unsafe` code; each block says why it is sound.

use std::cell::RefCell;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::mem::ManuallyDrop;

use llama_cpp_2::model::LlamaLoraAdapter;
use llama_cpp_sys_2::{ggml_log_level, llama_adapter_lora};

thread_local! {
    static CAPTURED: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `f`, returning its result and everything llama.cpp logged on this thread meanwhile.
pub(crate) fn capture<T>(f: impl FnOnce() -> T) -> (T, String) {
    CAPTURED.with(|c| *c.borrow_mut() = Some(String::new()));
    let out = f();
    let log = CAPTURED.with(|c| c.borrow_mut().take()).unwrap_or_default();
    (out, log)
}

/// The last error-looking lines of a captured log, as a one-line reason for an error message.
pub(crate) fn reason_from_log(log: &str, fallback: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("error")
                || l.contains("fail")
                || l.contains("invalid")
                || l.contains("incorrect")
                || l.contains("mismatch")
                || l.contains("not found")
                || l.contains("unknown")
                || l.contains("missing")
        })
        .collect();
    if lines.is_empty() {
        return fallback.to_string();
    }
    let start = lines.len().saturating_sub(4);
    lines[start..].join(" | ")
}

#[allow(unsafe_code)]
unsafe extern "C" fn log_callback(level: ggml_log_level, text: *const c_char, _user: *mut c_void) {
    if text.is_null() {
        return;
    }
    // SAFETY: llama.cpp passes a valid NUL-terminated string that lives for this call; we copy
    // it before returning.
    let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    let _ = CAPTURED.try_with(|c| {
        if let Ok(mut c) = c.try_borrow_mut()
            && let Some(buf) = c.as_mut()
        {
            buf.push_str(&text);
        }
    });
    if std::env::var_os("AUTODIDACT_LLAMA_LOG").is_some() {
        let _ = level;
        eprint!("{text}");
    }
}

/// Routes llama.cpp's and ggml's logs through [`capture`]. Call once, after backend init.
#[allow(unsafe_code)]
pub(crate) fn install_log_callback() {
    // SAFETY: `log_callback` is a plain function valid for the whole program, it ignores the
    // user-data pointer (null here), and it neither unwinds nor calls back into llama.cpp.
    unsafe {
        llama_cpp_sys_2::llama_log_set(Some(log_callback), std::ptr::null_mut());
        llama_cpp_sys_2::ggml_log_set(Some(log_callback), std::ptr::null_mut());
    }
}

// `LlamaLoraAdapter` is `#[repr(transparent)]` over `Ptr<llama_adapter_lora>`, itself
// `#[repr(transparent)]` over `NonNull<llama_adapter_lora>` (llama-cpp-2 =0.1.160, pinned).
const _: () = assert!(
    std::mem::size_of::<LlamaLoraAdapter>() == std::mem::size_of::<*mut llama_adapter_lora>()
);

/// A LoRA adapter that is freed when dropped.
///
/// It must be dropped before the model it was loaded for, and while no context has it active;
/// the llama.cpp backend's worker thread guarantees both (it drops every context before
/// freeing an adapter, and every adapter before the model).
#[derive(Debug)]
pub(crate) struct OwnedAdapter(ManuallyDrop<LlamaLoraAdapter>);

impl OwnedAdapter {
    pub(crate) fn new(adapter: LlamaLoraAdapter) -> Self {
        OwnedAdapter(ManuallyDrop::new(adapter))
    }

    pub(crate) fn get_mut(&mut self) -> &mut LlamaLoraAdapter {
        &mut self.0
    }
}

impl Drop for OwnedAdapter {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: the size assertion above and the two `repr(transparent)` layers make the
        // adapter exactly one non-null `*mut llama_adapter_lora`, so reading it as that pointer
        // is a plain copy of the field.
        let ptr: *mut llama_adapter_lora =
            unsafe { std::mem::transmute_copy::<LlamaLoraAdapter, _>(&*self.0) };
        // SAFETY: the pointer came from `llama_adapter_lora_init` and is freed exactly once:
        // the wrapper is `ManuallyDrop` and `OwnedAdapter` is not `Clone`. The model is still
        // alive and no context uses the adapter (see the type's documentation).
        unsafe { llama_cpp_sys_2::llama_adapter_lora_free(ptr) };
    }
}

// `ggml-cpu.h`: each returns 1 when ggml-cpu was compiled with the instruction set, else 0.
// They are `return <constant>;` bodies, safe to call on any x86-64 CPU (the check in `cpu.rs`
// calls them before any kernel runs).
// SAFETY: the declarations match ggml-cpu.h (`int ggml_cpu_has_*(void)`), and the library that
// defines them is linked by llama-cpp-sys-2.
#[allow(unsafe_code)]
unsafe extern "C" {
    fn ggml_cpu_has_sse3() -> c_int;
    fn ggml_cpu_has_ssse3() -> c_int;
    fn ggml_cpu_has_avx() -> c_int;
    fn ggml_cpu_has_avx_vnni() -> c_int;
    fn ggml_cpu_has_avx2() -> c_int;
    fn ggml_cpu_has_bmi2() -> c_int;
    fn ggml_cpu_has_f16c() -> c_int;
    fn ggml_cpu_has_fma() -> c_int;
    fn ggml_cpu_has_avx512() -> c_int;
    fn ggml_cpu_has_avx512_vbmi() -> c_int;
    fn ggml_cpu_has_avx512_vnni() -> c_int;
    fn ggml_cpu_has_avx512_bf16() -> c_int;
    fn ggml_cpu_has_amx_int8() -> c_int;
}

/// The instruction sets ggml-cpu was compiled with, by ggml's names (`AVX2`, `AVX512_VNNI`,
/// `AMX_INT8`, ...), in `ggml_cpu_has_*` order.
#[allow(unsafe_code)]
pub(crate) fn compiled_isa() -> Vec<&'static str> {
    let table: [(&'static str, unsafe extern "C" fn() -> c_int); 13] = [
        ("SSE3", ggml_cpu_has_sse3),
        ("SSSE3", ggml_cpu_has_ssse3),
        ("AVX", ggml_cpu_has_avx),
        ("AVX_VNNI", ggml_cpu_has_avx_vnni),
        ("AVX2", ggml_cpu_has_avx2),
        ("BMI2", ggml_cpu_has_bmi2),
        ("F16C", ggml_cpu_has_f16c),
        ("FMA", ggml_cpu_has_fma),
        ("AVX512", ggml_cpu_has_avx512),
        ("AVX512_VBMI", ggml_cpu_has_avx512_vbmi),
        ("AVX512_VNNI", ggml_cpu_has_avx512_vnni),
        ("AVX512_BF16", ggml_cpu_has_avx512_bf16),
        ("AMX_INT8", ggml_cpu_has_amx_int8),
    ];
    table
        .into_iter()
        // SAFETY: each function takes no argument, touches no state and returns a constant
        // fixed when ggml-cpu was compiled (ggml-cpu.c); linked statically by llama-cpp-sys-2.
        .filter(|(_, f)| unsafe { f() } != 0)
        .map(|(name, _)| name)
        .collect()
}

/// llama.cpp's one-line system report (`CPU : SSE3 = 1 | ... | REPACK = 1 |`).
#[allow(unsafe_code)]
pub(crate) fn system_info() -> String {
    // SAFETY: llama_print_system_info returns a pointer to a static NUL-terminated buffer that
    // it fills on each call; we copy it at once. Calls are made from one thread at a time in
    // practice (the report is read at start-up and by benchmarks), and the copy is immediate.
    let p = unsafe { llama_cpp_sys_2::llama_print_system_info() };
    if p.is_null() {
        return String::new();
    }
    // SAFETY: non-null, NUL-terminated, valid until the next call (see above).
    unsafe { CStr::from_ptr(p) }.to_string_lossy().trim().to_string()
}

/// The names of the CPU device's extra buffer types: the weight layouts its kernels may use
/// besides plain host memory (`CPU_REPACK`; `AMX` when ggml-cpu was built with AMX and the
/// CPU and kernel allow it).
#[allow(unsafe_code)]
pub(crate) fn cpu_extra_buffer_types() -> Vec<String> {
    type GetExtraBufts = unsafe extern "C" fn(
        llama_cpp_sys_2::ggml_backend_dev_t,
    ) -> *mut llama_cpp_sys_2::ggml_backend_buffer_type_t;
    let mut names = Vec::new();
    // SAFETY: the registry calls take no pointers from us but a static C string; a null
    // device or procedure (no CPU backend, an older ggml) is handled by returning no names.
    let dev = unsafe { llama_cpp_sys_2::ggml_backend_dev_by_type(llama_cpp_sys_2::GGML_BACKEND_DEVICE_TYPE_CPU) };
    if dev.is_null() {
        return names;
    }
    // SAFETY: `dev` is a live device of the static registry.
    let reg = unsafe { llama_cpp_sys_2::ggml_backend_dev_backend_reg(dev) };
    if reg.is_null() {
        return names;
    }
    // SAFETY: `reg` is live; the name is a NUL-terminated static string.
    let proc = unsafe { llama_cpp_sys_2::ggml_backend_reg_get_proc_address(reg, c"ggml_backend_dev_get_extra_bufts".as_ptr()) };
    if proc.is_null() {
        return names;
    }
    // SAFETY: ggml-backend.h documents this procedure's type as
    // `ggml_backend_buffer_type_t * (*)(ggml_backend_dev_t)`; a data and a function pointer
    // have the same size on every platform llama.cpp supports.
    let get: GetExtraBufts = unsafe { std::mem::transmute::<*mut c_void, GetExtraBufts>(proc) };
    // SAFETY: it returns a static, null-terminated array of buffer types (ggml-cpu.cpp).
    let mut p = unsafe { get(dev) };
    while !p.is_null() {
        // SAFETY: `p` points into that array, which ends with a null entry we stop at.
        let buft = unsafe { *p };
        if buft.is_null() {
            break;
        }
        // SAFETY: a live buffer type; its name is a static NUL-terminated string.
        let name = unsafe { llama_cpp_sys_2::ggml_backend_buft_name(buft) };
        if !name.is_null() {
            // SAFETY: non-null, NUL-terminated, static.
            names.push(unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned());
        }
        // SAFETY: still inside the array: the current entry was not its terminator.
        p = unsafe { p.add(1) };
    }
    names
}
