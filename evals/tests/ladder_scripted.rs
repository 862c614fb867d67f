//! LADDER's logic on a scripted model (deterministic), with the real sandbox verifying variants
//! and a real SQLite store: candidates parsed, duplicates and variants without a closed form
//! dropped, parent ids recorded, variants solved deepest first in groups.

use std::sync::Arc;

use autodidact_evals::builtin::integrals_item;
use autodidact_evals::ladder::{LadderOptions, candidates, run_ladder};
use autodidact_evals::Suite;
use autodidact_memory::{Split, Store};
use autodidact_policies::Policy;
use autodidact_runtime::model::LanguageModel;
use autodidact_runtime::model::scripted::ScriptedModel;
use autodidact_runtime::rlm::{Agent, MemoryLog};
use autodidact_sandbox::{Sandbox, SandboxConfig};

fn fin(answer: &str) -> String {
    format!("```repl\nFINAL({answer:?})\n```")
}

#[test]
fn candidates_strip_numbering_and_bullets_only() {
    let got = candidates("Here are variants:\n1. 3*x**2\n2) 2*sin(x)\n- x**3\n* 4*x\n`5*x`\n\n10. cos(x)", "integrals");
    assert_eq!(got, ["3*x**2", "2*sin(x)", "x**3", "4*x", "5*x", "cos(x)"]);
    // Formulas inside prose are found; prose, unbalanced parentheses and bare numbers are not.
    let got = candidates("1. Use one power: 3*x**2 + 4*x**3 is like 3*x*x - 4x.\nso 2*x = sin(x\nThe answer is 42.", "integrals");
    assert_eq!(got, ["3*x**2 + 4*x**3", "3*x*x - 4x", "2*x"]);
    let got = candidates("Try (12 + 5) * 3, or just 17 * 3. Not 17.", "arith");
    assert_eq!(got, ["(12 + 5) * 3", "17 * 3"]);
}

#[tokio::test]
async fn variant_trees_are_verified_stored_and_solved() {
    let dir = std::env::temp_dir().join(format!("autodidact-ladder-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = Arc::new(Store::open(&format!("sqlite://{}", dir.join("m.db").display())).await.unwrap());
    let sandbox = Sandbox::open(&SandboxConfig::from_env()).unwrap();
    let mut seed = integrals_item("3*x**2 + 2*cos(2*x)", "x**3 + sin(2*x)");
    seed.id = "seed".into();
    let seeds = Suite { name: "integrals".into(), items: vec![seed] };

    let mut replies = vec![
        // depth 1: two new variants; the seed itself, no closed form, junk and a repeat dropped
        "Sure!\n1. 3*x**2\n2. 2*cos(2*x)\n3. 3*x**2 + 2*cos(2*x)\n4. x**x\n5. hello world\n6. 3*x**2".to_owned(),
        // depth 2 under 3*x**2: a constant is degenerate
        "x**2\n3".to_owned(),
        // depth 2 under 2*cos(2*x): two kept (variants = 2), the third is over the cap
        "cos(2*x)\ncos(x)\nsin(x)".to_owned(),
    ];
    // Solving, deepest first, then shortest: x**2, cos(x), cos(2*x), 3*x**2, 2*cos(2*x).
    for a in ["x**3/3", "x**2", "sin(x)", "sin(x)", "sin(2*x)/2", "0", "x", "x", "sin(2*x)", "cos"] {
        replies.push(fin(a));
    }
    let model: Arc<dyn LanguageModel> = Arc::new(ScriptedModel::from_text(&replies.join("\n---\n"), "scripted"));
    let memory = MemoryLog { writer: store.writer(), store: store.clone() };
    let agent = Arc::new(Agent::new(model.clone(), sandbox.clone(), Policy::preset_eval()).unwrap().with_memory(memory));
    let opts = LadderOptions {
        depth: 2,
        variants: 2,
        group: 2,
        concurrency: 1,
        sandbox,
        writer: Some(store.writer()),
        adapter_id: None,
        seed: 1,
        max_tokens: 128,
        on_event: None,
    };
    let report = run_ladder(agent, model, &seeds, &opts).await.unwrap();
    store.flush().await.unwrap();

    let exprs: Vec<(&str, u32)> = report.nodes.iter().map(|n| (n.expression.as_str(), n.depth)).collect();
    assert_eq!(exprs, [("3*x**2", 1), ("2*cos(2*x)", 1), ("x**2", 2), ("cos(2*x)", 2), ("cos(x)", 2)]);
    assert_eq!(report.seeds, 1);
    // Candidates with an x: five at depth 1 (not "Sure!" or "hello world"), one under 3*x**2
    // (the constant 3 has no x), three under 2*cos(2*x).
    assert_eq!(report.variants_generated, 5 + 1 + 3);
    assert_eq!(report.variants_verified, 5);
    assert_eq!(report.groups, 5);
    assert_eq!(report.solved_fraction_by_depth[&2], 1.0);
    assert_eq!(report.solved_fraction_by_depth[&1], 0.5);
    // The tree is in memory: every variant is a train task whose parent is its parent's task.
    let by_id: std::collections::HashMap<_, _> = report.nodes.iter().map(|n| (n.id.clone(), n)).collect();
    for node in &report.nodes {
        let task = store.task(node.task_id.as_ref().unwrap()).await.unwrap();
        assert_eq!(task.spec.split, Split::Train);
        let parent = task.spec.parent_id.expect("a variant has a parent");
        match by_id.get(&node.parent) {
            Some(p) => assert_eq!(Some(&parent), p.task_id.as_ref()),
            None => assert_eq!(store.task(&parent).await.unwrap().spec.prompt, seeds.items[0].prompt),
        }
    }
    assert_eq!(store.untrained_groups(100).await.unwrap().len(), 5);
    let summary = report.summary();
    for key in ["seeds", "variants_generated", "variants_verified", "groups", "solved_fraction_by_depth"] {
        assert!(summary.get(key).is_some(), "{key} missing: {summary}");
    }
}
