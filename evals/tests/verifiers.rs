//! Every verifier, with hostile `check` sources and hostile agent answers. `python` checks run
//! in the real sandbox.

use std::time::{Duration, Instant};

use autodidact_evals::builtin::{countdown_check, integral_check};
use autodidact_evals::suite::{Item, VerifierKind};
use autodidact_evals::verify::{last_number, numeric_matches};
use autodidact_evals::Verifier;
use autodidact_memory::Split;
use autodidact_sandbox::{Sandbox, SandboxConfig};

fn sandbox() -> Sandbox {
    Sandbox::open(&SandboxConfig::from_env()).unwrap_or_else(|e| panic!("{e}"))
}

fn item(verifier: VerifierKind, answer: &str, check: Option<String>) -> Item {
    Item { id: "t".into(), family: "f".into(), prompt: "p".into(), context: None, answer: answer.into(), verifier, check, split: Split::Eval, parent_id: None, hint: None, level: 0, solution: None }
}

async fn passes(item: &Item, given: &str) -> bool {
    Verifier::new(item, Some(sandbox())).with_deadline(Duration::from_secs(20)).passes(given).await
}

#[test]
fn numeric_takes_the_last_number_without_commas() {
    assert_eq!(last_number("so 3 apples and 1,234.5 pears"), Some(1234.5));
    assert_eq!(last_number("the answer is -17."), Some(-17.0));
    assert_eq!(last_number("x-3"), Some(3.0));
    assert_eq!(last_number("no digits"), None);
    assert!(numeric_matches("The total is $1,000,000", "1000000"));
    assert!(numeric_matches("18", "18.0000000001"));
    assert!(!numeric_matches("18.1", "18"));
    assert!(!numeric_matches("first 18 then 19", "18"));
    assert!(numeric_matches("0", "0"));
    assert!(!numeric_matches("", "0"));
}

#[tokio::test]
async fn exact_and_contains_fold_case_and_trim() {
    let exact = item(VerifierKind::Exact, "Paris", None);
    assert!(passes(&exact, "  paris\n").await);
    assert!(!passes(&exact, "Paris, France").await);
    let contains = item(VerifierKind::Contains, "Paris", None);
    assert!(passes(&contains, "It is PARIS, France").await);
    assert!(!passes(&contains, "Lyon").await);
}

#[tokio::test]
async fn python_check_runs_in_the_sandbox_and_only_true_passes() {
    let good = item(VerifierKind::Python, "", Some("def check(answer: str) -> bool:\n    return answer.strip() == 'yes'\n".into()));
    assert!(passes(&good, "yes").await);
    assert!(!passes(&good, "no").await);
    // Truthy is not True.
    let truthy = item(VerifierKind::Python, "", Some("def check(answer):\n    return 'True'\n".into()));
    assert!(!passes(&truthy, "anything").await);
    // A check that raises, or does not define check, fails.
    let raises = item(VerifierKind::Python, "", Some("def check(answer):\n    raise ValueError('no')\n".into()));
    assert!(!passes(&raises, "x").await);
    let undefined = item(VerifierKind::Python, "", Some("def check_other(answer):\n    return True\n# def check".into()));
    assert!(!passes(&undefined, "x").await);
    // Without a sandbox a python item cannot pass.
    assert!(!Verifier::new(&good, None).passes("yes").await);
}

#[tokio::test]
async fn hostile_checks_are_contained() {
    // It loops forever: the deadline stops it.
    let spin = item(VerifierKind::Python, "", Some("def check(answer):\n    while True:\n        pass\n".into()));
    let started = Instant::now();
    assert!(!Verifier::new(&spin, Some(sandbox())).with_deadline(Duration::from_millis(500)).passes("x").await);
    assert!(started.elapsed() < Duration::from_secs(10), "the deadline did not stop the check");
    // It reads host files, spawns processes, opens sockets: all refused inside the sandbox.
    for body in [
        "return open('/etc/passwd').read() != ''",
        "import os\n    return os.system('true') == 0",
        "import socket\n    socket.create_connection(('127.0.0.1', 22))\n    return True",
        "import subprocess\n    subprocess.run(['true'])\n    return True",
    ] {
        let hostile = item(VerifierKind::Python, "", Some(format!("def check(answer):\n    {body}\n")));
        assert!(!passes(&hostile, "x").await, "a hostile check passed: {body}");
    }
    // It overwrites the verdict instead of returning it.
    let cheat = item(VerifierKind::Python, "", Some("__verdict = True\ndef check(answer):\n    raise SystemExit(0)\n".into()));
    assert!(!passes(&cheat, "x").await);
}

#[tokio::test]
async fn integral_check_differentiates_and_resists_hostile_answers() {
    let it = item(VerifierKind::Python, "x**3", Some(integral_check("3*x**2 + 2*cos(2*x)")));
    assert!(passes(&it, "x**3 + sin(2*x)").await);
    assert!(passes(&it, "F(x) = x^3 + sin(2x) + C").await);
    assert!(!passes(&it, "x**3").await);
    assert!(!passes(&it, "").await);
    // sympy's parser evaluates text: a hostile answer runs, but only inside the sandbox.
    for answer in [
        "__import__('os').listdir('/')",
        "open('/etc/passwd').read()",
        "(lambda: [x for x in iter(int, 1)])()",
        &"(".repeat(5000),
    ] {
        let started = Instant::now();
        assert!(!Verifier::new(&it, Some(sandbox())).with_deadline(Duration::from_secs(3)).passes(answer).await, "{answer:.40}");
        assert!(started.elapsed() < Duration::from_secs(15));
    }
}

#[tokio::test]
async fn countdown_check_allows_each_number_once() {
    let it = item(VerifierKind::Python, "(3 + 5) * 4", Some(countdown_check(&[3, 5, 4, 7], 32)));
    assert!(passes(&it, "(3 + 5) * 4").await);
    assert!(passes(&it, "4 * (5 + 3) = 32").await);
    assert!(!passes(&it, "(3 + 5) * 4 + 0").await, "0 is not one of the numbers");
    assert!(!passes(&it, "8 * 4").await, "8 is not one of the numbers");
    assert!(!passes(&it, "(5 - 3) * 4 * 4").await, "4 used twice");
    assert!(!passes(&it, "__import__('os').getpid()").await);
    assert!(!passes(&it, "32").await);
}
