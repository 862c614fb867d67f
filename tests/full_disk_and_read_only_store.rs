//! A store on a filesystem that fills up, then turns read-only. Runs and nights fail with an
//! error that says the disk is full (or read-only) and names the folder; what was acknowledged
//! before is still there; once space returns the next run works and `memory verify` is ok.
//! Uses a small tmpfs, so it needs root (as `make test` on the build machine has).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn autodidact(args: &[&str], db: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_autodidact")).args(args).env("AUTODIDACT_DB", db).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let _ = std::fs::remove_file(&filler);
    let free = Command::new("df").args(["--output=avail", "-B1"]).arg(dir).output().unwrap();
    let free: u64 = String::from_utf8_lossy(&free.stdout).lines().nth(1).unwrap().trim().parse().unwrap();
    // Whatever fallocate leaves, a few bytes more make it full.
    let ok = Command::new("fallocate").args(["-l", &free.to_string()]).arg(&filler).status().unwrap();
    assert!(ok.success() || std::fs::metadata(&filler).is_ok());
    let _ = std::fs::write(dir.join("crumbs"), vec![0u8; 64 << 10]);
    filler
}

#[test]
fn a_full_then_read_only_disk_is_a_clear_error_and_nothing_acknowledged_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("small");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"]).arg(&mnt).output().unwrap();
    assert!(mounted.status.success(), "this test mounts an 8 MB tmpfs and needs root: {}", text(&mounted));
    let _guard = Mount(mnt.clone());
    let db = format!("sqlite://{}", mnt.join("m.db").display());
    let replies = tmp.path().join("replies.txt");
    std::fs::write(&replies, "```repl\nprint('x' * 300000)\nFINAL(6 * 7)\n```\n").unwrap();
    let model = format!("scripted:{}", replies.display());
    let run = |task: &str| autodidact(&["run", "--json", "--model", &model, task], &db);

    let first = run("before the disk fills");
    assert!(first.status.success(), "{}", text(&first));
    let first: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let first_id = first["run_id"].as_str().unwrap().to_owned();

    let filler = fill(&mnt);
    let full = run("on a full disk");
    let said = text(&full);
    println!("full disk: {said}");
    assert!(!full.status.success(), "{said}");
    assert!(said.contains("disk holding the store is full") && said.contains(mnt.to_str().unwrap()), "{said}");
    assert!(!said.contains("panicked"), "{said}");
    let night = autodidact(&["nightly", "--quick", "--db", &db, "--out", tmp.path().join("night").to_str().unwrap()], &db);
    let said = text(&night);
    println!("night on a full disk: {}", said.lines().last().unwrap_or_default());
    assert!(!night.status.success() && said.contains("disk holding the store is full"), "{said}");

    // Space returns: the next run works, the acknowledged run is intact, the store verifies.
    std::fs::remove_file(&filler).unwrap();
    let _ = std::fs::remove_file(mnt.join("crumbs"));
    let after = run("after space returns");
    assert!(after.status.success(), "{}", text(&after));
    let shown = autodidact(&["memory", "show", &first_id, "--db", &db], &db);
    assert!(shown.status.success() && text(&shown).contains("final answer\n42"), "{}", text(&shown));
    let verify = autodidact(&["memory", "verify", "--db", &db], &db);
    assert!(verify.status.success() && text(&verify).contains("ok"), "{}", text(&verify));

    // Read-only: refused with the reason, and reading still works.
    let ro = Command::new("mount").args(["-o", "remount,ro"]).arg(&mnt).status().unwrap();
    assert!(ro.success());
    let refused = run("on a read-only disk");
    let said = text(&refused);
    println!("read-only: {said}");
    assert!(!refused.status.success() && said.contains("read-only") && said.contains(mnt.to_str().unwrap()), "{said}");
    let _ = Command::new("mount").args(["-o", "remount,rw"]).arg(&mnt).status();
    let shown = autodidact(&["memory", "show", &first_id, "--db", &db], &db);
    assert!(shown.status.success(), "{}", text(&shown));
}
