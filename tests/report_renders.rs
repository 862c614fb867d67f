//! `autodidact report` writes one self-contained page that headless Chromium renders without
//! errors: evals, a learning curve, LADDER statistics and transcripts, with inline SVG plots.
//! A screenshot is kept next to the page. Chromium is Debian's package, installed by the
//! bootstrap.

use std::path::{Path, PathBuf};
use std::process::Command;

use autodidact_memory::{AdapterStatus, EvalRecord, NewAdapter, Store};

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("autodidact-report-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn autodidact(db: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_autodidact"));
    c.env("AUTODIDACT_DB", db);
    c
}

fn fin(answer: &str) -> String {
    format!("```repl\nFINAL({answer:?})\n```")
}

fn run_ok(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn chromium(args: &[&str], page: &Path) -> std::process::Output {
    Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--enable-logging=stderr", "--v=0"])
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap_or_else(|e| panic!("cannot start chromium ({e}); run scripts/bootstrap.sh, which installs Debian's chromium"))
}

#[tokio::test]
async fn the_report_renders_in_headless_chromium() {
    let dir = scratch();
    let db = format!("sqlite://{}", dir.join("m.db").display());
    // An eval and a LADDER run on the scripted model fill the store.
    let suite = dir.join("mini.jsonl");
    std::fs::write(&suite, r#"{"id":"a","family":"add","prompt":"What is 2 + 3?","answer":"5","verifier":"numeric"}"#).unwrap();
    let script = dir.join("eval.txt");
    std::fs::write(&script, fin("5")).unwrap();
    run_ok(autodidact(&db).args(["eval", "--suite-file", suite.to_str().unwrap(), "--adapter", "none", "--json", "--model"]).arg(format!("scripted:{}", script.display())));
    let script = dir.join("ladder.txt");
    std::fs::write(&script, ["x**2\n2*x".to_owned(), fin("x**2"), fin("0"), fin("x**3/3"), fin("1")].join("\n---\n")).unwrap();
    run_ok(autodidact(&db).args(["ladder", "--suite", "integrals", "--limit", "1", "--depth", "1", "--variants", "2", "--group", "2", "--json", "--model"]).arg(format!("scripted:{}", script.display())));
    // An adapter whose metrics carry a learning curve.
    let store = Store::open(&db).await.unwrap();
    let curve: Vec<_> = (1..=10).map(|s| serde_json::json!({"step": s, "reward": 0.1 + 0.05 * f64::from(s)})).collect();
    let adapter = NewAdapter { parent_id: None, path: "/tmp/a.gguf".into(), sha256: "00".repeat(32), metrics: serde_json::json!({"curve": curve}) };
    store.writer().register_adapter(adapter).await.unwrap().committed().await.unwrap();
    // A promoted generation with its own eval: the forgetting matrix must show its score.
    let gen1 = NewAdapter { parent_id: None, path: "/tmp/g1.gguf".into(), sha256: "11".repeat(32), metrics: serde_json::json!({"generation": 1}) };
    let gen1 = store.writer().register_adapter(gen1).await.unwrap().committed().await.unwrap();
    store.writer().set_adapter_status(&gen1, AdapterStatus::Promoted).await.unwrap().committed().await.unwrap();
    let eval = EvalRecord { adapter_id: Some(gen1), suite: "add".into(), n: 4, passed: 3, pass_at_k: [(1, 0.75)].into(), started_ms: 1, finished_ms: 2 };
    store.writer().record_eval(eval).await.unwrap().committed().await.unwrap();
    store.close().await.unwrap();

    let page = dir.join("report.html");
    let printed = run_ok(autodidact(&db).args(["report", "--out", page.to_str().unwrap()]));
    assert_eq!(printed.trim(), page.display().to_string());
    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(html.matches("<svg").count(), 4, "four plots: evals, forgetting matrix, learning curve, LADDER");
    for external in ["<script", "<link", "src=", "href=\"http", "url("] {
        assert!(!html.contains(external), "the page must be self-contained, but has {external:?}");
    }
    let matrix = &html[html.find("id=forgetting").expect("a forgetting matrix")..];
    assert!(matrix.contains(">75.0%</td>"), "generation 1's pass@1 is in the forgetting matrix");
    for want in ["Evals by adapter and suite", "pass@1 1.000", "mean reward per training step", "LADDER trees", "Transcripts", "What is 2 + 3?"] {
        assert!(html.contains(want), "the page lacks {want:?}");
    }

    let dom = chromium(&["--dump-dom"], &page);
    assert!(dom.status.success(), "chromium failed: {}", String::from_utf8_lossy(&dom.stderr));
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    assert!(dom_text.contains("<svg") && dom_text.contains("autodidact report"), "chromium's DOM lacks the report");
    let log = String::from_utf8_lossy(&dom.stderr);
    assert!(!log.contains("Uncaught") && !log.contains("CONSOLE"), "the page logged errors: {log}");

    let shot = dir.join("report.png");
    let out = chromium(&[&format!("--screenshot={}", shot.display()), "--window-size=1100,2400", "--hide-scrollbars"], &page);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let png = std::fs::read(&shot).expect("a screenshot was written");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "the screenshot is {} bytes", png.len());
    println!("screenshot: {}", shot.display());
}
