//! Saying why a write failed when the filesystem under the store is the reason.
//!
//! SQLite reports a full disk as "database or disk is full", or, when it cannot even create
//! its shared-memory file, as "database is locked"; tantivy as an I/O error deep in a commit.
//! Neither names the folder or says what to do. When a store operation fails, the filesystem
//! holding the store is looked at: if it is read-only or nearly full, the error says so and
//! names the folder.

use std::path::Path;

use crate::Error;

/// Below this many free bytes a failed write is blamed on the disk.
const NEARLY_FULL: u64 = 4 << 20;

/// `e`, explained by the state of the filesystem holding `dir` when that is the likely cause.
pub(crate) fn explain(dir: Option<&Path>, e: Error) -> Error {
    let Some(dir) = dir else { return e };
    if matches!(e, Error::Storage { .. }) {
        return e;
    }
    let Ok(fs) = rustix::fs::statvfs(dir) else { return e };
    let note = if fs.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY) {
        "the filesystem holding the store is read-only".to_owned()
    } else {
        let free = fs.f_bavail.saturating_mul(fs.f_frsize);
        if free >= NEARLY_FULL {
            return e;
        }
        format!("the disk holding the store is full ({free} bytes free): free some space, then run `autodidact memory verify`")
    };
    Error::Storage { path: dir.to_owned(), note, source: Box::new(e) }
}
