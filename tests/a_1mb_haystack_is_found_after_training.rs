//! Issue 19's long-context case, asserted: after a short supervised warm start on verified
//! search traces of *8 KB* train needles (the night's reference-teacher traces: a regular
//! expression over `context`, then `FINAL(m.group(1))`), the real SmolLM2 with that adapter finds
//! needles in *1 MB* haystacks by code: at least 6 of 8 (issue 19's target), answers checked.
//!
//! The adapter is trained here rather than taken from a night: a clean clone has no night,
//! and the test must say the same thing on every machine. The train needles come from the niah
//! family's train generator (five formats and keys, eval prompts excluded); the haystacks, their
//! names and numbers are this test's own, so nothing it is judged on was trained on. The
//! base model, asked the same, does not answer with the needle (checked first, so that the
//! adapter's answer means something).

use std::sync::Arc;

use autodidact_evals::families;
use autodidact_policies::Policy;
use autodidact_runtime::model::llamacpp::{LlamaCppConfig, LlamaCppModel};
use autodidact_runtime::model::LanguageModel;
use autodidact_runtime::rlm::{Agent, Stop, TaskInput};
use autodidact_sandbox::{Sandbox, SandboxConfig};
use autodidact_trainer::{BaseModel, Completion, DType, LossType, Split, TrainConfig, TrainGroup, Trainer};
use serde_json::json;

/// Train needles, and passes over them (the night's `sft_steps` is 6).
const ITEMS: usize = 10;
const PASSES: usize = 6;

/// A 1 MB haystack of filler sentences with one magic number in it, `at` sentences in.
fn haystack(name: &str, number: u32, at: usize) -> String {
    let filler = ["The narrow harbor keeps the silver ledger. ", "A patient wagon crosses the early meadow. ", "The hollow tower measures the bright orchard. "];
    let mut hay = String::with_capacity(1_000_100);
    let mut i = 0;
    while hay.len() < 1_000_000 {
        if i == at {
            hay.push_str(&format!("The magic number for {name} is {number}. "));
        }
        hay.push_str(filler[i % filler.len()]);
        i += 1;
    }
    hay
}

/// Issue 19's target: at least 6 of 8 runs on 1 MB haystacks find the needle.
const NEEDLES: [(&str, u32, usize); 8] = [
    ("Yusuf", 6_204_917, 9_500),
    ("Wanda", 3_871_046, 1_200),
    ("Tobias", 9_015_332, 23_000),
    ("Sunita", 4_460_781, 15_750),
    ("Rafael", 7_302_158, 300),
    ("Quentin", 2_549_960, 20_100),
    ("Olga", 5_128_447, 6_666),
    ("Mateo", 8_793_215, 12_345),
];

async fn ask(agent: &Arc<Agent>, (name, number, at): (&str, u32, usize)) -> (Stop, Option<String>) {
    let prompt = format!("The context is a long text. Somewhere in it is the magic number for {name}. What is that number? Answer with the number only.");
    let o = agent.clone().run(TaskInput::new(prompt, json!(haystack(name, number, at)))).await.unwrap();
    (o.stop, o.answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn needles_in_1mb_haystacks_are_found_by_code_after_a_warm_start_on_8kb_needles() {
    let model = Arc::new(LlamaCppModel::load(LlamaCppConfig::default()).await.unwrap());
    let mut policy = Policy::preset_default();
    policy.recursion.max_iterations = 2;
    policy.budget.turn_tokens = 160;
    let agent = Arc::new(Agent::new(model.clone(), Sandbox::open(&SandboxConfig::from_env()).unwrap(), policy.clone()).unwrap());
    let (_, before) = ask(&agent, NEEDLES[0]).await;
    assert_ne!(before.as_deref(), Some("6204917"), "the base model already finds it: the test would mean nothing");

    // The warm start: each train needle's reference search as the reply to the agent's own
    // first prompt for it, as the night trains its teacher's verified traces.
    let items = families::train_items("niah", 1, 0, ITEMS).unwrap();
    let mut groups = Vec::new();
    for it in &items {
        assert!(it.context.as_ref().is_some_and(|c| c.len() < 9_000), "level 1 is 8 KB");
        let messages = agent.first_messages(&TaskInput::new(it.prompt.clone(), json!(it.context))).await;
        let (prompt_tokens, tokens) = model.tokenize_chat(&messages, it.solution.as_deref().unwrap()).await.unwrap();
        groups.push(TrainGroup { task: it.id.clone(), split: Split::Train, prompt_tokens, completions: vec![Completion { tokens, reward: 1.0, truncated: false }] });
    }
    let base = BaseModel::load_gguf(&autodidact_trainer::default_model_path(), DType::F32).unwrap();
    let mut config = TrainConfig::from_policy(&policy.training);
    config.loss.loss_type = LossType::Sft;
    config.optim.lr = (policy.training.learning_rate * 10.0).min(1e-3);
    let mut trainer = Trainer::new(base, config).unwrap();
    let mut losses = Vec::new();
    for _ in 0..PASSES {
        losses.extend(trainer.train_batch(&groups).unwrap().iter().map(|r| r.loss));
    }
    assert!(losses.last() < losses.first(), "SFT loss did not fall: {losses:?}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("niah.gguf");
    trainer.export_adapter(&path).unwrap();
    drop(trainer);

    let adapter = model.load_adapter(&path).await.unwrap();
    model.set_adapter(Some((adapter, 1.0))).await.unwrap();
    // The eight runs at once: the engine decodes their turns together.
    let mut runs = tokio::task::JoinSet::new();
    for needle in NEEDLES {
        let agent = agent.clone();
        runs.spawn(async move { (needle, ask(&agent, needle).await) });
    }
    let mut found = Vec::new();
    while let Some(done) = runs.join_next().await {
        let ((name, number, _), (stop, answer)) = done.unwrap();
        eprintln!("{name}: {} {answer:?} (expected {number})", stop.name());
        found.push(answer == Some(number.to_string()));
    }
    let n = found.iter().filter(|&&f| f).count();
    assert!(n >= 6, "{n}/8 needles found in 1 MB haystacks ({found:?}); SFT losses {losses:?}");
}
