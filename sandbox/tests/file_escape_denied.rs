//! The guest sees no host files but the read-only standard library and the folders a policy
//! grants: `..` escapes, absolute host paths, symlinks out and writes outside grants all fail.

mod common;

use std::path::PathBuf;

use autodidact_sandbox::{Grant, Limit, Limits, Status};
use common::*;

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("autodidact-grant-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn granted(dir: &PathBuf, writable: bool) -> Limits {
    Limits { grants: vec![Grant { host: dir.clone(), guest: "/data".into(), writable }], ..Limits::default() }
}

fn fails(s: &mut autodidact_sandbox::Session, code: &str) -> String {
    let cell = s.exec(code).unwrap();
    assert_eq!(cell.status, Status::Error, "expected failure for {code}: {}", cell.stdout);
    cell.stderr
}

#[test]
fn host_files_are_invisible_by_default() {
    let mut s = session();
    let e = fails(&mut s, "open('/etc/passwd').read()");
    assert!(e.contains("Error"), "{e}");
    fails(&mut s, "open('../../../../etc/passwd').read()");
    fails(&mut s, "open('/usr/local/lib/../../../etc/passwd').read()");
    fails(&mut s, "import os\nos.listdir('/')\nopen('/root/x', 'w')");
    fails(&mut s, "open('/tmp/x', 'w').write('x')");
}

#[test]
fn the_standard_library_is_read_only() {
    let mut s = session();
    assert_eq!(out(&mut s, "import os\n'python315.zip' in os.listdir('/usr/local/lib')"), "True");
    let e = fails(&mut s, "open('/usr/local/lib/evil.py', 'w').write('x')");
    assert!(e.contains("Error"), "{e}");
}

#[test]
fn a_read_only_grant_reads_but_does_not_write() {
    let dir = temp_dir("ro");
    std::fs::write(dir.join("hello.txt"), "hi from the host").unwrap();
    let mut s = session_with(granted(&dir, false));
    assert_eq!(out(&mut s, "open('/data/hello.txt').read()"), "'hi from the host'");
    fails(&mut s, "open('/data/new.txt', 'w').write('x')");
    fails(&mut s, "open('/data/../../etc/passwd').read()");
    assert!(!dir.join("new.txt").exists());
}

#[test]
fn symlinks_cannot_leave_a_grant() {
    let dir = temp_dir("link");
    std::os::unix::fs::symlink("/etc/passwd", dir.join("passwd")).unwrap();
    std::os::unix::fs::symlink("/etc", dir.join("etc")).unwrap();
    let mut s = session_with(granted(&dir, true));
    fails(&mut s, "open('/data/passwd').read()");
    fails(&mut s, "open('/data/etc/passwd').read()");
}

#[test]
fn a_writable_grant_writes_inside_only() {
    let dir = temp_dir("rw");
    let mut s = session_with(granted(&dir, true));
    ok(&mut s, "open('/data/out.txt', 'w').write('written by the guest')");
    assert_eq!(std::fs::read_to_string(dir.join("out.txt")).unwrap(), "written by the guest");
    fails(&mut s, "open('/data/../escape.txt', 'w').write('x')");
    assert!(!dir.parent().unwrap().join("escape.txt").exists());
}

#[test]
fn file_calls_are_capped() {
    let dir = temp_dir("cap");
    std::fs::write(dir.join("f"), "x").unwrap();
    let mut limits = granted(&dir, false);
    limits.max_file_calls = 20;
    let mut s = session_with(limits);
    let cell = s.exec("import os\nfor i in range(100):\n    os.stat('/data/f')\n").unwrap();
    assert_eq!(cell.status, Status::Error);
    assert!(cell.limits_hit.contains(&Limit::FileCalls));
    assert!(cell.stderr.contains("sandbox.max_file_calls"), "{}", cell.stderr);
    // The count is per cell.
    ok(&mut s, "os.stat('/data/f')");
}
