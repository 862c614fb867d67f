//! Shared test helpers: a fresh store on each backend, and small builders.
#![allow(dead_code)]

use autodidact_memory::{NewRun, NewTask, RunEnd, RunStatus, Split, Store, StoreOptions};
use sqlx::Connection;
use sqlx::Executor;

/// The variable that names the test PostgreSQL server.
pub const PG_ENV: &str = "AUTODIDACT_TEST_PG_URL";

/// The test server's URL. Fails (never skips) when it is not set.
pub fn pg_url() -> String {
    match std::env::var(PG_ENV) {
        Ok(u) if !u.is_empty() => u,
        _ => panic!(
            "{PG_ENV} is not set: the store tests also run against PostgreSQL. Run `make test`, \
             or `scripts/postgres.sh start` and export {PG_ENV}=$(scripts/postgres.sh url)"
        ),
    }
}

/// A fresh, empty store location, cleaned up when dropped (SQLite) or by `drop_db` (Postgres).
pub struct Fresh {
    pub opts: StoreOptions,
    pub dir: tempfile::TempDir,
    pub backend: &'static str,
    pg_db: Option<String>,
}

impl Fresh {
    pub async fn open(&self) -> Store {
        Store::open_with(self.opts.clone())
            .await
            .expect("the store opens")
    }

    pub async fn drop_db(self) {
        if let Some(name) = &self.pg_db {
            let mut c = sqlx::AnyConnection::connect(&pg_url())
                .await
                .expect("connect to postgres");
            let _ = c
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .await;
        }
    }
}

pub async fn sqlite() -> Fresh {
    let dir = tempfile::tempdir().expect("a temp dir");
    let url = format!("sqlite://{}", dir.path().join("memory.db").display());
    Fresh {
        opts: StoreOptions::new(url),
        dir,
        backend: "sqlite",
        pg_db: None,
    }
}

pub async fn postgres() -> Fresh {
    sqlx::any::install_default_drivers();
    let base = pg_url();
    let name = format!("adt_{}", uuid_like());
    let mut c = sqlx::AnyConnection::connect(&base)
        .await
        .expect("connect to the test postgres");
    c.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create a test database");
    let url = match base.rfind('/') {
        Some(i) => format!("{}/{name}", &base[..i]),
        None => panic!("{PG_ENV} has no database part: {base}"),
    };
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut opts = StoreOptions::new(url);
    opts.index_dir = Some(dir.path().join("index"));
    Fresh {
        opts,
        dir,
        backend: "postgres",
        pg_db: Some(name),
    }
}

/// Both backends, SQLite first.
pub async fn backends() -> Vec<Fresh> {
    vec![sqlite().await, postgres().await]
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{}_{}_{}",
        std::process::id(),
        t % 1_000_000_000_000,
        N.fetch_add(1, Ordering::SeqCst)
    )
}

pub fn task(family: &str, prompt: &str, split: Split) -> NewTask {
    NewTask {
        family: family.into(),
        prompt: prompt.into(),
        context_ref: None,
        answer_spec: serde_json::json!({"kind": "exact", "answer": "42"}),
        split,
        parent_id: None,
        difficulty: Some(0.5),
        source: "test".into(),
    }
}

pub fn run(task_id: &str) -> NewRun {
    NewRun {
        task_id: task_id.into(),
        agent: "tester".into(),
        model_id: "smollm2-135m".into(),
        adapter_id: None,
        policy_hash: "p0".into(),
    }
}

pub fn end(reward: f64) -> RunEnd {
    RunEnd {
        status: RunStatus::Answered,
        end_reason: Some("answer ready".into()),
        final_answer: Some("42".into()),
        reward: Some(reward),
        prompt_tokens: 100,
        completion_tokens: 20,
    }
}
