//! A structural check of a GGUF file before llama.cpp sees it.
//!
//! llama.cpp trusts the lengths and offsets in a GGUF header: a flipped bit in a string length,
//! a tensor's shape or its offset can make it read past the file or allocate without bound. This
//! walks the header (magic, version, metadata, tensor infos) with every length checked against
//! the bytes that remain, and checks that each tensor of a known type lies inside the data
//! section. It reads only the header (through a buffer, never the weights): damage inside the
//! weights is caught by the digest of a pinned file, not here.
//!
//! Format (GGUF v2/v3, little-endian): `GGUF`, u32 version, u64 tensor count, u64 metadata count,
//! metadata (string key, u32 type, value), tensor infos (string name, u32 dims, u64 × dims,
//! u32 ggml type, u64 offset), then the data section at the next multiple of
//! `general.alignment` (32 by default).

use std::io::Read;
use std::path::Path;

/// Upper bounds no sane file reaches; a header above them is damaged.
const MAX_TENSORS: u64 = 1 << 20;
const MAX_KV: u64 = 1 << 20;
const MAX_DIMS: u32 = 4;

/// Checks `path`'s structure; the error says what is wrong and where.
pub fn check(path: &Path) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut r = Reader { file: std::io::BufReader::with_capacity(1 << 16, file), pos: 0, len };
    if r.bytes(4)? != b"GGUF" {
        return Err("not a GGUF file (no GGUF magic)".into());
    }
    let version = r.u32()?;
    if !(2..=3).contains(&version) {
        return Err(format!("unsupported GGUF version {version}"));
    }
    let n_tensors = r.u64()?;
    let n_kv = r.u64()?;
    if n_tensors > MAX_TENSORS || n_kv > MAX_KV {
        return Err(format!("damaged header: {n_tensors} tensors and {n_kv} metadata entries"));
    }
    let mut alignment = 32u64;
    for i in 0..n_kv {
        let key = r.string().map_err(|e| format!("metadata entry {i}: {e}"))?;
        let ty = r.u32()?;
        if key == "general.alignment" && ty == 4 {
            alignment = r.u32()? as u64;
            if alignment == 0 || !alignment.is_power_of_two() {
                return Err(format!("damaged header: general.alignment = {alignment}"));
            }
            continue;
        }
        r.value(ty).map_err(|e| format!("metadata {key:?}: {e}"))?;
    }
    let mut tensors = Vec::with_capacity(n_tensors.min(4096) as usize);
    for i in 0..n_tensors {
        let name = r.string().map_err(|e| format!("tensor {i}: {e}"))?;
        let dims = r.u32()?;
        if dims == 0 || dims > MAX_DIMS {
            return Err(format!("tensor {name:?}: {dims} dimensions"));
        }
        let mut elements: u64 = 1;
        let mut first = 0;
        for d in 0..dims {
            let n = r.u64()?;
            if d == 0 {
                first = n;
            }
            elements = elements.checked_mul(n).filter(|&e| e <= len.saturating_mul(8)).ok_or_else(|| format!("tensor {name:?}: its shape is larger than the file"))?;
        }
        let ty = r.u32()?;
        let offset = r.u64()?;
        if offset % alignment != 0 {
            return Err(format!("tensor {name:?}: offset {offset} is not aligned to {alignment}"));
        }
        tensors.push((name, ty, elements, first, offset));
    }
    let data = r.pos.div_ceil(alignment) * alignment;
    for (name, ty, elements, first, offset) in tensors {
        let start = data.checked_add(offset).ok_or_else(|| format!("tensor {name:?}: offset overflows"))?;
        let size = match block(ty) {
            Some((elems_per_block, bytes_per_block)) => {
                if first % elems_per_block != 0 {
                    return Err(format!("tensor {name:?}: a row of {first} is not a whole number of type-{ty} blocks"));
                }
                elements / elems_per_block * bytes_per_block
            }
            // A type this check does not know: its start must still be inside the file.
            None => 0,
        };
        if start.saturating_add(size) > len {
            return Err(format!("tensor {name:?} ends at byte {} of a {len}-byte file (truncated or damaged)", start.saturating_add(size)));
        }
    }
    Ok(())
}

/// Checks a pinned file's SHA-256. The verdict is memoised beside the file under its size and
/// modification time, so the 100 MB are hashed once per copy, not at every load.
pub fn check_digest(path: &Path, want: &str) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    let stamp = format!("{} {mtime} {want}\n", meta.len());
    let mut memo = path.as_os_str().to_owned();
    memo.push(".verified");
    let memo = std::path::PathBuf::from(memo);
    if std::fs::read_to_string(&memo).is_ok_and(|s| s == stamp) {
        return Ok(());
    }
    let got = sha256_file(path).map_err(|e| e.to_string())?;
    if got != want {
        return Err(format!("SHA-256 {got} where {want} was recorded: the file is damaged or was replaced"));
    }
    // A memo that cannot be written only costs the next load a hash.
    let _ = std::fs::write(&memo, stamp);
    Ok(())
}

/// The hex SHA-256 of a file, streamed in 1 MiB reads.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut file = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect());
        }
        h.update(&buf[..n]);
    }
}

/// (elements per block, bytes per block) of the ggml types in common use.
fn block(ty: u32) -> Option<(u64, u64)> {
    Some(match ty {
        0 => (1, 4),      // F32
        1 => (1, 2),      // F16
        2 => (32, 18),    // Q4_0
        3 => (32, 20),    // Q4_1
        6 => (32, 22),    // Q5_0
        7 => (32, 24),    // Q5_1
        8 => (32, 34),    // Q8_0
        9 => (32, 36),    // Q8_1
        10 => (256, 84),  // Q2_K
        11 => (256, 110), // Q3_K
        12 => (256, 144), // Q4_K
        13 => (256, 176), // Q5_K
        14 => (256, 210), // Q6_K
        15 => (256, 292), // Q8_K
        24 => (1, 1),     // I8
        25 => (1, 2),     // I16
        26 => (1, 4),     // I32
        27 => (1, 8),     // I64
        28 => (1, 8),     // F64
        30 => (1, 2),     // BF16
        _ => return None,
    })
}

/// Reads the header through a buffer; every length is checked against the file's size before
/// anything is read or allocated for it.
struct Reader {
    file: std::io::BufReader<std::fs::File>,
    pos: u64,
    len: u64,
}

impl Reader {
    fn left(&self) -> u64 {
        self.len - self.pos
    }
    fn bytes(&mut self, n: u64) -> Result<Vec<u8>, String> {
        if n > self.left() {
            return Err(format!("the header runs past the end of the file (wants {n} bytes at byte {})", self.pos));
        }
        let mut b = vec![0u8; n as usize];
        self.file.read_exact(&mut b).map_err(|e| e.to_string())?;
        self.pos += n;
        Ok(b)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.bytes(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.bytes(8)?.try_into().expect("8 bytes")))
    }
    fn string(&mut self) -> Result<String, String> {
        let n = self.u64()?;
        Ok(String::from_utf8_lossy(&self.bytes(n)?).into_owned())
    }
    /// Skips one metadata value of type `ty`.
    fn value(&mut self, ty: u32) -> Result<(), String> {
        match ty {
            0 | 1 | 7 => self.bytes(1).map(drop),
            2 | 3 => self.bytes(2).map(drop),
            4..=6 => self.bytes(4).map(drop),
            10..=12 => self.bytes(8).map(drop),
            8 => self.string().map(drop),
            9 => {
                let elem = self.u32()?;
                let n = self.u64()?;
                if elem == 9 {
                    return Err("an array of arrays".into());
                }
                // Every element takes at least one byte: a count above what is left is damage.
                if n > self.left() {
                    return Err(format!("an array of {n} elements with {} bytes of the file left", self.left()));
                }
                for _ in 0..n {
                    self.value(elem)?;
                }
                Ok(())
            }
            other => Err(format!("unknown value type {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_model_passes_and_damage_to_its_header_is_named() {
        let path = crate::model::smollm2_path();
        if !path.is_file() {
            panic!("{} is missing: run scripts/bootstrap.sh", path.display());
        }
        check(&path).unwrap();
        let real = std::fs::read(&path).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.gguf");
        // The tensor count: a huge value.
        let mut b = real.clone();
        b[8 + 7] = 0x7f;
        std::fs::write(&bad, &b).unwrap();
        assert!(check(&bad).unwrap_err().contains("damaged header"));
        // The first key's length.
        let mut b = real.clone();
        b[24 + 5] = 0x40;
        std::fs::write(&bad, &b).unwrap();
        assert!(check(&bad).is_err());
        // Truncated inside the weights.
        std::fs::write(&bad, &real[..real.len() - 4096]).unwrap();
        assert!(check(&bad).unwrap_err().contains("truncated"));
        // A bit flipped in the weights passes the structure and fails the digest.
        let mut b = real.clone();
        let mid = b.len() / 2;
        b[mid] ^= 1;
        std::fs::write(&bad, &b).unwrap();
        check(&bad).unwrap();
        assert!(check_digest(&bad, crate::model::SMOLLM2_SHA256).unwrap_err().contains("SHA-256"));
        check_digest(&path, crate::model::SMOLLM2_SHA256).unwrap();
    }
}
