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
//!
//! This is the only module of the crate with `unsafe` code; each block says why it is sound.

use std::cell::RefCell;
use std::ffi::{CStr, c_char, c_void};
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
