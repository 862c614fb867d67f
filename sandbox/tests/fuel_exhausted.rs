//! With `sandbox.fuel` set, a cell that runs out of instructions is stopped and reported.

use autodidact_sandbox::{Limit, Limits, Sandbox, SandboxConfig, Status, ToolSet};

fn fuel_session(fuel: u64) -> autodidact_sandbox::Session {
    let config = SandboxConfig { fuel: true, ..SandboxConfig::from_env() };
    let sandbox = Sandbox::open(&config).unwrap_or_else(|e| panic!("{e}"));
    sandbox.session(Limits { fuel: Some(fuel), ..Limits::default() }, ToolSet::new()).unwrap()
}

#[test]
fn a_busy_loop_runs_out_of_fuel() {
    let mut s = fuel_session(50_000_000);
    let cell = s.exec("n = 0\nwhile True:\n    n += 1\n").unwrap();
    assert_eq!(cell.status, Status::Trapped);
    assert_eq!(cell.trapped, Some(Limit::Fuel));
    assert!(cell.stderr.contains("sandbox.fuel"), "{}", cell.stderr);
}

#[test]
fn fuel_is_per_cell() {
    let mut s = fuel_session(50_000_000);
    for _ in 0..5 {
        let cell = s.exec("sum(range(10_000))").unwrap();
        assert_eq!(cell.status, Status::Ok, "{}", cell.stderr);
        assert_eq!(cell.stdout.trim(), "49995000");
    }
}
