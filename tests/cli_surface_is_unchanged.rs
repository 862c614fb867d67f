//! The CLI's surface stays as it is while its insides move into library crates (issue 17):
//! every command's `--help`, and the shape of the JSON each command prints (its keys and the
//! types of their values, recursively; ids, times and scores vary from run to run).
//!
//! The expected texts live in `tests/data/cli/`. A deliberate change of the surface is
//! recorded with `AUTODIDACT_BLESS=1 cargo test --test cli_surface_is_unchanged`, and the diff
//! of those files is then part of the change for review.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Map, Value, json};

/// Every command and subcommand.
const COMMANDS: &[&str] = &[
    "", "run", "sandbox prepare", "sandbox exec", "sandbox repl", "sandbox bench", "memory stats",
    "memory runs", "memory show", "memory search", "memory export", "memory stress",
    "memory verify", "memory bench", "generate", "eval", "ladder", "ttrl", "report",
    "bench model", "bench train", "bench group", "bench consolidation", "bench rlm",
    "bench serve", "bench eval", "train", "serve", "trainer parity", "nightly", "adapters list",
    "adapters promote", "adapters rollback",
];

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cli").join(name)
}

/// The binary with an environment that does not leak into help texts (`[env: AUTODIDACT_DB=]`).
fn autodidact() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_autodidact"));
    c.env_remove("AUTODIDACT_DB").env("COLUMNS", "100");
    c
}

/// Compares `actual` with the file `name`, or writes it under `AUTODIDACT_BLESS=1`.
fn check(name: &str, actual: &str) -> Result<(), String> {
    let path = data(name);
    if std::env::var_os("AUTODIDACT_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return Ok(());
    }
    let expected = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e} (bless it with AUTODIDACT_BLESS=1)", path.display()))?;
    if expected == actual {
        return Ok(());
    }
    let first = expected.lines().zip(actual.lines()).position(|(a, b)| a != b).unwrap_or(expected.lines().count().min(actual.lines().count()));
    Err(format!(
        "{} changed; first differing line {}:\n  expected: {:?}\n  actual:   {:?}",
        path.display(),
        first + 1,
        expected.lines().nth(first).unwrap_or("<end>"),
        actual.lines().nth(first).unwrap_or("<end>")
    ))
}

#[test]
fn every_help_text_is_unchanged() {
    let mut failures = Vec::new();
    for cmd in COMMANDS {
        let mut args: Vec<&str> = cmd.split_whitespace().collect();
        args.push("--help");
        let out = autodidact().args(&args).output().unwrap();
        assert!(out.status.success(), "autodidact {} failed", args.join(" "));
        let name = if cmd.is_empty() { "help/autodidact.txt".to_string() } else { format!("help/{}.txt", cmd.replace(' ', "-")) };
        if let Err(e) = check(&name, &String::from_utf8(out.stdout).unwrap()) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The shape of a JSON value: objects keep their keys (sorted) with the shapes of their values,
/// arrays the shape of their first element, and scalars become their type's name.
fn shape(v: &Value) -> Value {
    match v {
        Value::Null => json!("null"),
        Value::Bool(_) => json!("bool"),
        Value::Number(_) => json!("number"),
        Value::String(_) => json!("string"),
        Value::Array(a) => Value::Array(a.first().map(shape).into_iter().collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), shape(v))).collect::<Map<_, _>>()),
    }
}

/// Runs `args` on the store `db` (stdin from `input`), expects success and one JSON document
/// on stdout.
fn json_of(db: &str, args: &[&str], input: Option<&str>) -> Value {
    let mut c = autodidact();
    c.env("AUTODIDACT_DB", db).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = c.spawn().unwrap();
    if let Some(text) = input {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "autodidact {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    // One JSON document, or JSON lines (then an array of them; none is an empty array).
    let text = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<Value> = serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("autodidact {} printed no JSON ({e}): {text}", args.join(" ")));
    match <[Value; 1]>::try_from(docs) {
        Ok([one]) => one,
        Err(docs) => Value::Array(docs),
    }
}

#[test]
fn every_quick_json_output_keeps_its_shape() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("m.db").display());
    let replies = dir.path().join("replies.txt");
    // A run that computes in the REPL, then answers.
    std::fs::write(&replies, "```repl\nx = 6 * 7\nprint(x)\n```\n---\n```repl\nFINAL(x)\n```\n---\n```repl\nFINAL(42)\n```\n").unwrap();
    let scripted = format!("scripted:{}", replies.display());
    let mut shapes = Map::new();
    let mut put = |name: &str, v: Value| {
        shapes.insert(name.to_string(), shape(&v));
    };
    put("generate", json_of(&db, &["generate", "--model", &scripted, "--n", "2", "--json", "hi"], None));
    put("run", json_of(&db, &["run", "--model", &scripted, "--json", "What is 6 * 7?"], None));
    put("sandbox exec", json_of(&db, &["sandbox", "exec", "--json", "-"], Some("print(1 + 1)\n")));
    put("eval", json_of(&db, &["eval", "--model", &scripted, "--suite", "toy", "--limit", "1", "--json"], None));
    put("memory stats", json_of(&db, &["memory", "stats", "--json"], None));
    put("memory verify", json_of(&db, &["memory", "verify", "--db", &db, "--json"], None));
    put("adapters list", json_of(&db, &["adapters", "list", "--json"], None));
    let text = serde_json::to_string_pretty(&Value::Object(shapes)).unwrap() + "\n";
    check("json-shapes.json", &text).unwrap();
}
