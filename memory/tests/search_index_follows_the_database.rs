//! Retrieval: prompts, steps and experiences are searchable with filters on both backends;
//! the index catches up incrementally; a missing or corrupt index is rebuilt from the
//! database, with a warning.

mod common;

use autodidact_memory::{DocKind, NewExperience, NewStep, SearchFilters, Split, StepKind, Store};

async fn fill(store: &Store) -> (String, String, String) {
    let w = store.writer();
    let train = w
        .add_task(common::task(
            "integral",
            "Integrate x squared times sine of x",
            Split::Train,
        ))
        .await
        .unwrap()
        .committed()
        .await
        .unwrap();
    let eval = w
        .add_task(common::task(
            "arithmetic",
            "Add the zebra count to the giraffe count",
            Split::Eval,
        ))
        .await
        .unwrap()
        .committed()
        .await
        .unwrap();
    let (run, _) = w.begin_run(common::run(&train)).await.unwrap();
    let _ = run
        .step(NewStep::new(
            StepKind::ModelTurn,
            "think",
            "use sympy integrate",
        ))
        .await
        .unwrap();
    let cell = NewStep {
        stdout: "-x**2*cos(x) + 2*x*sin(x)".into(),
        ..NewStep::new(StepKind::CodeCell, "sympy.integrate(x**2*sympy.sin(x))", "")
    };
    let _ = run.step(cell).await.unwrap();
    run.finish(common::end(1.0))
        .await
        .unwrap()
        .committed()
        .await
        .unwrap();
    let exp = NewExperience {
        text: "When integrating by parts, let sympy do the bookkeeping".into(),
        source_runs: vec![run.id().to_owned()],
        score: 1.0,
    };
    w.add_experience(exp)
        .await
        .unwrap()
        .committed()
        .await
        .unwrap();
    store.flush().await.unwrap();
    (train, eval, run.id().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_prompts_steps_and_experiences() {
    for fresh in common::backends().await {
        let b = fresh.backend;
        let store = fresh.open().await;
        assert!(
            store.warnings().is_empty(),
            "{b}: a new store has nothing to repair: {:?}",
            store.warnings()
        );
        let (train, eval, run) = fill(&store).await;
        let all = SearchFilters::default();

        let hits = store.search("giraffe", &all, 5).await.unwrap();
        assert_eq!(hits.len(), 1, "{b}");
        assert_eq!(
            (hits[0].kind, hits[0].id.as_str()),
            (DocKind::Task, eval.as_str())
        );
        assert!(hits[0].preview.contains("zebra"));

        let hits = store.search("sympy", &all, 10).await.unwrap();
        let kinds: Vec<DocKind> = hits.iter().map(|h| h.kind).collect();
        assert_eq!(hits.len(), 3, "{b}: two steps and an experience: {hits:?}");
        assert!(kinds.contains(&DocKind::Experience) && kinds.contains(&DocKind::Step));

        let steps_only = SearchFilters {
            kinds: vec![DocKind::Step],
            ..SearchFilters::default()
        };
        let hits = store.search("sympy", &steps_only, 10).await.unwrap();
        assert_eq!(hits.len(), 2, "{b}");
        assert!(hits.iter().all(|h| h.id == run && h.step_idx.is_some()));
        let cos = store.search("cos", &steps_only, 10).await.unwrap();
        assert_eq!(cos.len(), 1, "{b}: stdout is searchable");
        assert_eq!(cos[0].step_idx, Some(1));

        let eval_only = SearchFilters {
            split: Some(Split::Eval),
            ..SearchFilters::default()
        };
        assert!(
            store
                .search("sympy", &eval_only, 10)
                .await
                .unwrap()
                .is_empty(),
            "{b}"
        );
        let of_task = SearchFilters {
            task_id: Some(train.clone()),
            ..SearchFilters::default()
        };
        assert_eq!(
            store
                .search("sympy integrate", &of_task, 10)
                .await
                .unwrap()
                .len(),
            3,
            "{b}: the task and its two steps"
        );
        let of_family = SearchFilters {
            family: Some("integral".into()),
            ..SearchFilters::default()
        };
        assert_eq!(
            store
                .search("integrate", &of_family, 10)
                .await
                .unwrap()
                .len(),
            3,
            "{b}"
        );

        // A query that is not valid syntax still searches, leniently.
        store.search("integrate AND (", &all, 10).await.unwrap();
        store.close().await.unwrap();

        // Reopening indexes only what is new; rows written in between become searchable.
        let store = fresh.open().await;
        assert!(store.warnings().is_empty(), "{b}: {:?}", store.warnings());
        let before = store.indexed_docs();
        store
            .writer()
            .add_task(common::task("x", "platypus", Split::Train))
            .await
            .unwrap()
            .committed()
            .await
            .unwrap();
        store.flush().await.unwrap();
        assert_eq!(store.indexed_docs(), before + 1, "{b}");
        assert_eq!(store.search("platypus", &all, 10).await.unwrap().len(), 1);
        store.close().await.unwrap();
        fresh.drop_db().await;
    }
}

fn index_dir(fresh: &common::Fresh) -> std::path::PathBuf {
    match &fresh.opts.index_dir {
        Some(d) => d.clone(),
        None => fresh.dir.path().join("memory.db.index"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_index_is_rebuilt_with_a_warning() {
    let fresh = common::sqlite().await;
    let store = fresh.open().await;
    fill(&store).await;
    let docs = store.indexed_docs();
    store.close().await.unwrap();

    std::fs::remove_dir_all(index_dir(&fresh)).unwrap();
    let store = fresh.open().await;
    assert_eq!(store.warnings().len(), 1, "{:?}", store.warnings());
    assert!(
        store.warnings()[0].contains("missing; rebuilding"),
        "{:?}",
        store.warnings()
    );
    assert_eq!(store.indexed_docs(), docs);
    assert_eq!(
        store
            .search("giraffe", &SearchFilters::default(), 5)
            .await
            .unwrap()
            .len(),
        1
    );
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_index_is_rebuilt_with_a_warning() {
    let fresh = common::sqlite().await;
    let store = fresh.open().await;
    fill(&store).await;
    let docs = store.indexed_docs();
    store.close().await.unwrap();

    // Damage every file of the index, meta.json included.
    for entry in std::fs::read_dir(index_dir(&fresh)).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file()
            && !p
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".tantivy")
        {
            std::fs::write(&p, b"\x00garbage\xff").unwrap();
        }
    }
    let store = fresh.open().await;
    assert_eq!(store.warnings().len(), 1, "{:?}", store.warnings());
    assert!(
        store.warnings()[0].contains("unreadable"),
        "{:?}",
        store.warnings()
    );
    assert_eq!(store.indexed_docs(), docs);
    assert_eq!(
        store
            .search("sympy", &SearchFilters::default(), 10)
            .await
            .unwrap()
            .len(),
        3
    );
    store.close().await.unwrap();
}
