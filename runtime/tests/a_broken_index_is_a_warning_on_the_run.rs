//! Experience retrieval that fails is not silent. The test breaks the search index under a
//! live store (its folder is deleted, so the next index update fails); the next run still
//! answers, without retrieved experience, and says so: a `retrieval` warning in its outcome,
//! in memory (`run_warnings`) and in its rendered transcript (`memory show`).
//! Real sandbox, real SQLite, real tantivy.

use std::sync::Arc;

use autodidact_memory::Store;
use autodidact_policies::Policy;
use autodidact_runtime::model::LanguageModel;
use autodidact_runtime::model::scripted::ScriptedModel;
use autodidact_runtime::rlm::{Agent, MemoryLog, Stop, TaskInput};
use autodidact_sandbox::{Sandbox, SandboxConfig};
use serde_json::Value;

fn agent(store: &Arc<Store>, replies: &[&str]) -> Arc<Agent> {
    let model: Arc<dyn LanguageModel> = Arc::new(ScriptedModel::from_text(&replies.join("\n---\n"), "test"));
    let mut policy = Policy::preset_default();
    policy.experience.retrieve = true;
    let sandbox = Sandbox::open(&SandboxConfig::from_env()).unwrap();
    Arc::new(Agent::new(model, sandbox, policy).unwrap().with_memory(MemoryLog { writer: store.writer(), store: store.clone() }))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_on_a_broken_index_answers_and_records_a_retrieval_warning() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let store = Arc::new(Store::open(&format!("sqlite://{}", db.display())).await.unwrap());

    // A healthy index: the first run retrieves (nothing yet) and warns of nothing.
    let a = agent(&store, &["```repl\nFINAL(2 + 2)\n```", "```repl\nFINAL(3 + 3)\n```"]);
    let o = a.run(TaskInput::new("Add 2 and 2.", Value::Null)).await.unwrap();
    assert_eq!((o.stop.clone(), o.answer.as_deref(), o.warnings.len()), (Stop::Answered, Some("4"), 0), "{o:?}");
    store.flush().await.unwrap();

    // Break it: the index folder goes away under the open store, so its next update fails.
    std::fs::remove_dir_all(dir.path().join("m.db.index")).unwrap();
    store.writer().add_task(autodidact_memory::NewTask {
        family: "user".into(),
        prompt: "Add 5 and 5.".into(),
        context_ref: None,
        answer_spec: Value::Null,
        split: autodidact_memory::Split::Train,
        parent_id: None,
        difficulty: None,
        source: "test".into(),
    }).await.unwrap().committed().await.unwrap();
    let flushed = store.flush().await;
    assert!(flushed.is_err(), "updating a deleted index must fail, not pass silently");
    println!("flush: {}", flushed.unwrap_err());

    // The next run answers without experience and records why.
    let o = a.run(TaskInput::new("Add 3 and 3.", Value::Null)).await.unwrap();
    assert_eq!((o.stop.clone(), o.answer.as_deref()), (Stop::Answered, Some("6")), "{o:?}");
    assert!(!o.warnings.is_empty() && o.warnings.iter().all(|w| w.source == "retrieval"), "{:?}", o.warnings);
    assert!(o.warnings[0].message.contains("search index"), "the warning names the index: {}", o.warnings[0].message);
    let stored = store.run_warnings(o.run_id.as_deref().unwrap()).await.unwrap();
    assert_eq!(stored.len(), o.warnings.len(), "every warning is recorded on the run");
    assert_eq!(stored[0].source, "retrieval");
    let shown = store.transcript(o.run_id.as_deref().unwrap()).await.unwrap().render();
    assert!(shown.contains("warning  [retrieval]"), "{shown}");
    let counted = store.warning_counts(0, i64::MAX).await.unwrap();
    assert_eq!(counted.get("retrieval").copied(), Some(stored.len() as u64));
}
