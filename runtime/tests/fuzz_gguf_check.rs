//! Property tests of the check every GGUF passes before llama.cpp reads it
//! (`model::check_gguf`): well-formed files pass, and a well-formed file cut before the end of
//! its last tensor's data is refused; hand-made headers that lie (counts, lengths, types,
//! shapes, offsets), a well-formed header with bytes flipped or overwritten with extreme values,
//! and garbage pass or are refused, never a panic, and nothing absurd is allocated (this test
//! binary's allocator refuses any single allocation above 256 MiB). `PROPTEST_CASES` scales the
//! run (`make fuzz`).

#[path = "../../tests/fuzz_common/mod.rs"]
mod fuzz_common;
#[path = "../../tests/fuzz_common/gguf.rs"]
mod gguf;

use std::path::PathBuf;

use autodidact_runtime::model::check_gguf;
use gguf::{corrupt, corruption, crafted, data_end, well_formed, write_crafted};
use proptest::prelude::*;
use proptest::sample::Index;

/// Refuses absurd allocations: a declared length trusted by the check aborts the test.
#[global_allocator]
static ALLOCATOR: gguf::Capped = gguf::Capped;

/// A folder of this test, removed at the end; `check` writes `bytes` to a file in it and checks
/// the file.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("autodidact-fuzz-gguf-check-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn check(&self, bytes: &[u8]) -> Result<(), String> {
        let path = self.0.join("case.gguf");
        std::fs::write(&path, bytes).unwrap();
        check_gguf(&path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn well_formed_files_pass_and_cut_ones_are_refused() {
    let s = Scratch::new("cut");
    fuzz_common::check("gguf_check_well_formed_and_cut", 1000, (well_formed(), any::<Index>()), |(c, cut)| {
        let bytes = write_crafted(&c);
        if let Err(e) = s.check(&bytes) {
            return Err(TestCaseError::fail(format!("a well-formed file was refused: {e}")));
        }
        let at = cut.index(data_end(&c));
        prop_assert!(s.check(&bytes[..at]).is_err(), "a file cut at byte {} of {} passed", at, data_end(&c));
        Ok(())
    });
}

#[test]
fn corrupted_headers_pass_or_are_refused() {
    let s = Scratch::new("corrupted");
    let input = (well_formed(), prop::collection::vec(corruption(), 1..6));
    fuzz_common::check("gguf_check_corrupted_headers", 1000, input, |(c, corruptions)| {
        let mut bytes = write_crafted(&c);
        let header = bytes.len() - c.data.len();
        corrupt(&mut bytes, header, corruptions);
        let _ = s.check(&bytes);
        Ok(())
    });
}

#[test]
fn crafted_headers_and_garbage_pass_or_are_refused() {
    let s = Scratch::new("crafted");
    let input = prop_oneof![
        4 => crafted().prop_map(|c| write_crafted(&c)),
        1 => prop::collection::vec(any::<u8>(), 0..600),
        1 => (0u32..=4, prop::collection::vec(any::<u8>(), 0..600)).prop_map(|(v, rest)| [b"GGUF".as_slice(), &v.to_le_bytes(), &rest].concat()),
    ];
    fuzz_common::check("gguf_check_crafted_headers", 1000, input, |bytes| {
        let _ = s.check(&bytes);
        Ok(())
    });
}
