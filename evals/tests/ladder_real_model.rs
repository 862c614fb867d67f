//! LADDER on the real model (SmolLM2 through llama.cpp): the model writes variants of two
//! integrals seeds, and the sandbox verifies at least one of them. Solving is left to the
//! scripted test; this checks that real, messy model output gets through the parser and the
//! sympy verifier.

use std::sync::Arc;

use autodidact_evals::builtin::integrals_item;
use autodidact_evals::ladder::{LadderOptions, run_ladder};
use autodidact_evals::Suite;
use autodidact_policies::Policy;
use autodidact_runtime::model::llamacpp::{LlamaCppConfig, LlamaCppModel};
use autodidact_runtime::model::{LanguageModel, smollm2_path};
use autodidact_runtime::rlm::Agent;
use autodidact_sandbox::{Sandbox, SandboxConfig};

#[tokio::test]
async fn smollm2_writes_at_least_one_verified_variant() {
    let config = LlamaCppConfig { path: smollm2_path(), threads: Some(1), n_ctx: 1024, ..LlamaCppConfig::default() };
    let model: Arc<dyn LanguageModel> = Arc::new(LlamaCppModel::load(config).await.unwrap());
    let sandbox = Sandbox::open(&SandboxConfig::from_env()).unwrap();
    let mut items = vec![integrals_item("3*x**2 + 4*x**3", "x**3 + x**4"), integrals_item("2*cos(3*x) + x**2", "2*sin(3*x)/3 + x**3/3")];
    for (i, it) in items.iter_mut().enumerate() {
        it.id = format!("seed{i}");
    }
    let seeds = Suite { name: "integrals".into(), items };
    let agent = Arc::new(Agent::new(model.clone(), sandbox.clone(), Policy::preset_eval()).unwrap());
    let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
    let l = lines.clone();
    let opts = LadderOptions {
        depth: 1,
        variants: 4,
        group: 0,
        concurrency: 1,
        sandbox,
        writer: None,
        adapter_id: None,
        seed: 7,
        max_tokens: 96,
        on_event: Some(Arc::new(move |m: &str| l.lock().unwrap().push(m.to_owned()))),
    };
    let report = run_ladder(agent, model, &seeds, &opts).await.unwrap();
    println!("{}\n{:#?}", report.summary(), lines.lock().unwrap());
    assert_eq!(report.seeds, 2);
    assert!(report.variants_generated > 0, "the model wrote no candidate lines");
    assert!(report.variants_verified >= 1, "no verified variant: {}", report.summary());
    for node in &report.nodes {
        assert_eq!(node.depth, 1);
        assert!(node.item.check.is_some() && !node.item.answer.is_empty());
    }
}
