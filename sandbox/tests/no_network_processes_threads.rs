//! The guest cannot open sockets, start processes or start threads.

mod common;

use autodidact_sandbox::Status;
use common::*;

fn refused(code: &str) -> String {
    let mut s = session();
    let cell = s.exec(code).unwrap();
    assert_eq!(cell.status, Status::Error, "`{code}` should fail, printed: {}", cell.stdout);
    cell.stderr
}

#[test]
fn sockets_are_refused() {
    let e = refused("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\ns.connect(('127.0.0.1', 22))");
    assert!(e.contains("Error"), "{e}");
    refused("import socket\nsocket.create_connection(('127.0.0.1', 80), timeout=1)");
    refused("import urllib.request\nurllib.request.urlopen('http://127.0.0.1:1/')");
}

#[test]
fn processes_are_refused() {
    refused("import subprocess\nsubprocess.run(['ls', '/'])");
    refused("import os\nos.system('ls')\nassert False, 'os.system returned'");
    refused("import os\nos.fork()");
}

#[test]
fn threads_are_refused() {
    let e = refused("import threading\nt = threading.Thread(target=print, args=('hi',))\nt.start()");
    assert!(e.contains("Error"), "{e}");
}
