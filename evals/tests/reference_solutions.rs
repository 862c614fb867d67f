//! Every family's worked solutions (what the nightly's `reference` teacher shows) solve their
//! items when the agent runs them in the real sandbox: the reply's REPL block executes, its
//! `FINAL` answers, and the item's own verifier passes it. NIAH solutions search a 1 MB
//! context with a regular expression instead of reading it.

use std::sync::Arc;

use autodidact_evals::{HarnessOptions, Suite, families, run_suite};
use autodidact_policies::Policy;
use autodidact_runtime::model::scripted::ScriptedModel;
use autodidact_runtime::rlm::Agent;
use autodidact_sandbox::{Sandbox, SandboxConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worked_solutions_pass_their_own_verifiers_through_the_agent() {
    let sandbox = Sandbox::open(&SandboxConfig::from_env()).unwrap();
    let mut checked = 0;
    let mut without = Vec::new();
    for f in families::FAMILIES {
        for level in 1..=f.levels {
            for item in families::train_items(f.name, level, 0, 2).unwrap() {
                let Some(solution) = item.solution.clone() else {
                    without.push(format!("{} L{level}", f.name));
                    continue;
                };
                let model = Arc::new(ScriptedModel::from_text(&solution, "reference"));
                let agent = Arc::new(Agent::new(model, sandbox.clone(), Policy::preset_eval()).unwrap());
                let opts = HarnessOptions { k: 1, concurrency: 1, adapter_id: None, writer: None, sandbox: sandbox.clone(), on_sample: None, lessons: false, existing_tasks: Default::default() };
                let suite = Suite { name: "reference".into(), items: vec![item.clone()] };
                let report = run_suite(agent, &suite, &opts).await.unwrap();
                let s = &report.items[0].samples[0];
                assert!(s.passed, "{} L{level}: {:?} answered {:?}, expected {:?}\n{solution}", f.name, item.prompt, s.answer, item.answer);
                checked += 1;
            }
        }
    }
    // Only word problems with a percentage step have no worked solution.
    assert!(without.iter().all(|w| w.starts_with("wordproblems")), "{without:?}");
    assert!(checked >= 40, "{checked} solutions checked");
}
