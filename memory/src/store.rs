//! [`Store`]: opening a database (SQLite or PostgreSQL), migrating it, and every read.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, AssertSqlSafe, Executor};

use crate::index::{self, SearchIndex};
use crate::types::*;
use crate::writer::{self, Writer, WriterConfig};
use crate::{Error, Result, home_dir};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Which database a store speaks to.
#[derive(Debug, Clone, PartialEq)]
enum Backend {
    Sqlite { path: PathBuf },
    Postgres,
}

/// How to open a store. [`StoreOptions::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `sqlite://PATH` (created if missing) or `postgres://...`.
    pub url: String,
    /// Keep a search index (on by default). Tools that only write or check, such as `stress`
    /// and `verify`, turn it off.
    pub index: bool,
    /// Where the index lives. By default: beside a SQLite file (`PATH.index`), or under
    /// `$AUTODIDACT_HOME/index/` for PostgreSQL.
    pub index_dir: Option<PathBuf>,
    /// The most writes committed in one transaction.
    pub max_batch: usize,
    /// How many writes may wait for the writer before submitters wait too.
    pub queue: usize,
}

impl StoreOptions {
    /// The defaults for `url`.
    pub fn new(url: impl Into<String>) -> StoreOptions {
        StoreOptions {
            url: url.into(),
            index: true,
            index_dir: None,
            max_batch: 4096,
            queue: 65536,
        }
    }
}

/// The trajectory store: a connection pool, the writer task that owns all writes, and the
/// search index. Cheap to share behind an `Arc`; writes go through [`Store::writer`].
pub struct Store {
    pub(crate) pool: AnyPool,
    backend: Backend,
    url: String,
    writer: Writer,
    index: Option<SearchIndex>,
    warnings: Vec<String>,
    /// The folder whose filesystem explains failed writes ([`crate::storage`]).
    dir: Option<PathBuf>,
}

/// The URL with any password replaced, for messages.
/// `$1,$2,...,$n`: the numbered parameters of an `IN (...)` list.
fn numbered_params(n: usize) -> String {
    (1..=n).map(|i| format!("${i}")).collect::<Vec<_>>().join(",")
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn parse_url(url: &str) -> Result<(Backend, String)> {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        if path.is_empty() {
            return Err(Error::UnsupportedUrl {
                url: url.to_owned(),
            });
        }
        let connect = match query {
            Some(q) if q.contains("mode=") => url.to_owned(),
            Some(_) => format!("{url}&mode=rwc"),
            None => format!("{url}?mode=rwc"),
        };
        Ok((
            Backend::Sqlite {
                path: PathBuf::from(path),
            },
            connect,
        ))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok((Backend::Postgres, url.to_owned()))
    } else {
        Err(Error::UnsupportedUrl {
            url: url.to_owned(),
        })
    }
}

/// The folder whose filesystem holds the store's files: a SQLite file's folder, or the index
/// folder's parent for PostgreSQL (the database itself is the server's concern).
fn storage_dir(opts: &StoreOptions) -> Option<PathBuf> {
    match parse_url(&opts.url).ok()?.0 {
        Backend::Sqlite { path } => Some(path.parent().filter(|p| !p.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), Path::to_owned)),
        Backend::Postgres => opts.index_dir.as_ref().and_then(|d| d.parent()).map(Path::to_owned),
    }
}

/// `path` with `suffix` appended to its file name (`memory.db` → `memory.db.index`).
fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// Waits for an exclusive lock on the file at `path` (created if missing). The lock is an OS
/// file lock, so it is released when the returned file is dropped or the process dies.
async fn lock_exclusive(path: PathBuf) -> Result<std::fs::File> {
    tokio::task::spawn_blocking(move || {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::Io { path: parent.to_owned(), source: e })?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .and_then(|f| f.lock().map(|()| f))
            .map_err(|e| Error::Io { path: path.clone(), source: e })?;
        Ok(file)
    })
    .await
    .expect("the lock task does not panic")
}

/// Turns a driver error into [`Error::Corrupt`] when SQLite says the file is damaged.
fn classify(
    backend: &Backend,
    e: Box<dyn std::error::Error + Send + Sync>,
    fallback: impl FnOnce(crate::error::Source) -> Error,
) -> Error {
    if let Backend::Sqlite { path } = backend {
        let text = e.to_string();
        let mut chain: Option<&(dyn std::error::Error + 'static)> = Some(e.as_ref());
        let mut all = String::new();
        while let Some(c) = chain {
            all.push_str(&c.to_string());
            all.push('\n');
            chain = c.source();
        }
        if all.contains("not a database")
            || all.contains("malformed")
            || all.contains("(code: 26)")
            || all.contains("(code: 11)")
        {
            return Error::Corrupt {
                path: path.clone(),
                detail: text,
            };
        }
    }
    fallback(e)
}

impl Store {
    /// Opens the store at `url` with the default options.
    pub async fn open(url: &str) -> Result<Store> {
        Store::open_with(StoreOptions::new(url)).await
    }

    /// Opens (creating and migrating if needed) the store described by `opts`.
    pub async fn open_with(opts: StoreOptions) -> Result<Store> {
        let dir = storage_dir(&opts);
        Self::open_inner(opts, dir.clone()).await.map_err(|e| crate::storage::explain(dir.as_deref(), e))
    }

    async fn open_inner(opts: StoreOptions, dir: Option<PathBuf>) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let (backend, connect_url) = parse_url(&opts.url)?;
        let shown = redact(&opts.url);
        if let Backend::Sqlite { path } = &backend
            && let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| Error::Io {
                path: parent.to_owned(),
                source: e,
            })?;
        }
        let is_sqlite = matches!(backend, Backend::Sqlite { .. });
        let index_dir = opts.index.then(|| match (&opts.index_dir, &backend) {
            (Some(d), _) => d.clone(),
            (None, Backend::Sqlite { path }) => suffixed(path, ".index"),
            (None, Backend::Postgres) => {
                let tag: String = shown
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                home_dir().join("index").join(tag)
            }
        });
        // Opening is serialised between processes on this machine: two first opens would both
        // migrate SQLite, and both would (re)create the index directory. PostgreSQL's migrations
        // take an advisory lock of their own; its lock file here covers the local index.
        let lock_path = match &backend {
            Backend::Sqlite { path } => Some(suffixed(path, ".lock")),
            Backend::Postgres => index_dir.as_ref().map(|d| suffixed(d, ".lock")),
        };
        let _open_lock = match lock_path {
            Some(p) => Some(lock_exclusive(p).await?),
            None => None,
        };
        // One connection first: a pool retries failed connects until it times out, which would
        // hide the real reason (a corrupt file, a refused connection) behind "timed out".
        probe(&connect_url, is_sqlite).await.map_err(|e| {
            classify(&backend, Box::new(e), |source| Error::Open {
                url: shown.clone(),
                source,
            })
        })?;
        let pool = AnyPoolOptions::new()
            .max_connections(if is_sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if is_sqlite {
                        // WAL lets readers run beside the writer; FULL makes every commit
                        // durable, which is what an acknowledgement promises.
                        conn.execute(SQLITE_PRAGMAS).await?;
                    }
                    Ok(())
                })
            })
            .connect(&connect_url)
            .await
            .map_err(|e| {
                classify(&backend, Box::new(e), |source| Error::Open {
                    url: shown.clone(),
                    source,
                })
            })?;
        MIGRATOR.run(&pool).await.map_err(|e| {
            classify(&backend, Box::new(e), |source| Error::Migrate {
                url: shown.clone(),
                source,
            })
        })?;

        let mut warnings = Vec::new();
        let mut index = None;
        let mut indexer = None;
        if let Some(dir) = index_dir {
            let db_batch = current_batch(&pool).await?;
            let (ix, through) = index::open(&dir, db_batch, &mut warnings)?;
            if let Some(mut ixr) = ix.indexer() {
                if through < db_batch {
                    index::catch_up(&pool, &mut ixr, through, db_batch).await?;
                }
                indexer = Some(ixr);
            }
            index = Some(ix);
        }
        let (writer, _task) = writer::spawn(
            pool.clone(),
            indexer,
            WriterConfig {
                dir: dir.clone(),
                max_batch: opts.max_batch.max(1),
                queue: opts.queue.max(1),
                anonymous_params: matches!(backend, Backend::Sqlite { .. }),
            },
        );
        Ok(Store {
            pool,
            backend,
            url: shown,
            writer,
            index,
            warnings,
            dir,
        })
    }

    /// The handle all writes go through. Clone it freely.
    pub fn writer(&self) -> Writer {
        self.writer.clone()
    }

    /// What went wrong but was repaired while opening (a rebuilt index, say).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The URL the store was opened with, password hidden.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Waits until every write queued so far is committed and searchable.
    pub async fn flush(&self) -> Result<()> {
        let explain = |e| crate::storage::explain(self.dir.as_deref(), e);
        self.writer.flush().await.map_err(explain)?;
        if let Some(ixr) = self.index.as_ref().and_then(|i| i.indexer()) {
            ixr.commit().await.map_err(explain)?;
        }
        Ok(())
    }

    /// Flushes, then merges the search index into one segment per search thread (one per core,
    /// up to 4): slower now, faster searches after. For maintenance (after a large import, or
    /// nightly).
    pub async fn compact_index(&self) -> Result<()> {
        self.writer.flush().await?;
        if let Some(ixr) = self.index.as_ref().and_then(|i| i.indexer()) {
            ixr.compact().await?;
        }
        Ok(())
    }

    /// Flushes, then stops the index thread.
    pub async fn close(mut self) -> Result<()> {
        self.flush().await?;
        if let Some(ix) = self.index.as_mut() {
            ix.shutdown();
        }
        self.pool.close().await;
        Ok(())
    }

    /// The highest migration applied to this database.
    pub async fn schema_version(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| Error::query("reading the schema version", e))
    }

    async fn count(&self, sql: &'static str) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| Error::query(format!("counting ({sql})"), e))?;
        Ok(n as u64)
    }

    /// Counts of everything stored.
    pub async fn stats(&self) -> Result<Stats> {
        Ok(Stats {
            backend: self.backend(),
            schema_version: self.schema_version().await?,
            tasks: self.count("SELECT COUNT(*) FROM tasks").await?,
            runs: self.count("SELECT COUNT(*) FROM runs").await?,
            steps: self.count("SELECT COUNT(*) FROM steps").await?,
            groups: self.count("SELECT COUNT(*) FROM rollout_groups").await?,
            untrained_groups: self
                .count(
                    "SELECT COUNT(*) FROM rollout_groups g JOIN tasks t ON t.id = g.task_id \
                     WHERE g.trained_ms IS NULL AND t.split = 'train'",
                )
                .await?,
            adapters: self.count("SELECT COUNT(*) FROM adapters").await?,
            evals: self.count("SELECT COUNT(*) FROM evals").await?,
            experiences: self.count("SELECT COUNT(*) FROM experiences").await?,
        })
    }

    /// Tasks from `source` (e.g. `ladder`, `suite:arith`), newest first, at most `limit`.
    pub async fn tasks_from(&self, source: &str, limit: u64) -> Result<Vec<Task>> {
        let rows: Vec<TaskRow> = sqlx::query_as(AssertSqlSafe(format!(
            "{TASK_COLS} WHERE source = $1 ORDER BY created_ms DESC, id DESC LIMIT $2"
        )))
        .bind(source)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| Error::query("listing tasks", e))?;
        rows.into_iter().map(TaskRow::into_task).collect()
    }

    /// A task by id.
    pub async fn task(&self, id: &str) -> Result<Task> {
        let row: Option<TaskRow> =
            sqlx::query_as(AssertSqlSafe(format!("{TASK_COLS} WHERE id = $1")))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| Error::query("reading a task", e))?;
        row.ok_or_else(|| Error::NotFound {
            what: "task",
            id: id.to_owned(),
        })?
        .into_task()
    }

    /// A run by id, or by a prefix of its id that only one run has.
    pub async fn run(&self, id: &str) -> Result<Run> {
        let rows: Vec<RunRow> = sqlx::query_as(AssertSqlSafe(format!(
            "{RUN_COLS} WHERE id = $1 OR id LIKE $2 ORDER BY id LIMIT 2"
        )))
        .bind(id)
        .bind(format!("{}%", id.replace(['%', '_'], "")))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| Error::query("reading a run", e))?;
        if let Some(exact) = rows.iter().find(|r| r.id == id) {
            return exact.clone().into_run();
        }
        match rows.len() {
            1 => rows.into_iter().next().expect("one row").into_run(),
            0 => Err(Error::NotFound {
                what: "run",
                id: id.to_owned(),
            }),
            _ => Err(Error::Invalid {
                what: "run id",
                detail: format!("{id:?} matches several runs"),
            }),
        }
    }

    /// The final answers of those of `task_ids` that have a verified run (reward 1, the
    /// verifier's full marks), by task id: the most recent such run's answer. Runs without a
    /// reward (nothing checked them) never count as solved. One query.
    pub async fn solved_answers(&self, task_ids: &[String]) -> Result<HashMap<String, String>> {
        if task_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!(
            "SELECT task_id, final_answer FROM runs WHERE task_id IN ({}) AND reward >= 1.0 \
             AND final_answer IS NOT NULL ORDER BY finished_ms",
            numbered_params(task_ids.len())
        );
        let mut q = sqlx::query_as::<_, (String, String)>(AssertSqlSafe(sql));
        for id in task_ids {
            q = q.bind(id.as_str());
        }
        let rows = q
            .fetch_all(&self.pool)
            .await
            .map_err(|e| Error::query("reading solved runs", e))?;
        // Oldest first, so the most recent verified answer of each task is the one kept.
        Ok(rows.into_iter().collect())
    }

    /// The most recent runs, newest first.
    pub async fn runs(&self, limit: u64) -> Result<Vec<RunSummary>> {
        let rows: Vec<RunFamilyRow> = sqlx::query_as(
            "SELECT r.id, r.task_id, r.agent, r.model_id, r.adapter_id, r.policy_hash, \
             r.started_ms, r.finished_ms, r.status, r.end_reason, r.final_answer, r.reward, \
             r.prompt_tokens, r.completion_tokens, r.step_count, t.family \
             FROM runs r JOIN tasks t ON t.id = r.task_id \
             ORDER BY r.started_ms DESC, r.id DESC LIMIT $1",
        )
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| Error::query("listing runs", e))?;
        rows.into_iter()
            .map(|r| {
                let family = r.family.clone();
                Ok(RunSummary {
                    run: r.into_run_row().into_run()?,
                    family,
                })
            })
            .collect()
    }

    /// The steps of a run, in order.
    pub async fn steps(&self, run_id: &str) -> Result<Vec<Step>> {
        let rows: Vec<StepRow> = sqlx::query_as(
            "SELECT run_id, idx, kind, input, output, stdout, stderr, error, prompt_tokens, \
             completion_tokens, latency_us, logprobs, created_ms FROM steps WHERE run_id = $1 \
             ORDER BY idx",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| Error::query("reading steps", e))?;
        rows.into_iter().map(StepRow::into_step).collect()
    }

    /// A run with its task and steps.
    pub async fn transcript(&self, run_id: &str) -> Result<Transcript> {
        let run = self.run(run_id).await?;
        let task = self.task(&run.spec.task_id).await?;
        let steps = self.steps(&run.id).await?;
        let warnings = self.run_warnings(&run.id).await?;
        Ok(Transcript { task, run, steps, warnings })
    }

    /// The warnings a run recorded ([`crate::RunHandle::warn`]), in order.
    pub async fn run_warnings(&self, run_id: &str) -> Result<Vec<crate::RunWarning>> {
        let rows: Vec<(String, i64, String, String, i64)> = sqlx::query_as(
            "SELECT run_id, idx, source, message, created_ms FROM run_warnings WHERE run_id = $1 ORDER BY idx",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| Error::query("reading run warnings", e))?;
        Ok(rows
            .into_iter()
            .map(|(run_id, idx, source, message, created_ms)| crate::RunWarning { run_id, idx: idx as u64, source, message, created_ms })
            .collect())
    }

    /// How many warnings runs recorded from `from_ms` to `to_ms` (inclusive), by source.
    pub async fn warning_counts(&self, from_ms: i64, to_ms: i64) -> Result<std::collections::BTreeMap<String, u64>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT source, COUNT(*) FROM run_warnings WHERE created_ms >= $1 AND created_ms <= $2 GROUP BY source",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| Error::query("counting run warnings", e))?;
        Ok(rows.into_iter().map(|(s, n)| (s, n as u64)).collect())
    }

    async fn groups_where(&self, cond: &str, limit: u64) -> Result<Vec<Group>> {
        let rows: Vec<GroupRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT g.id, g.task_id, g.adapter_id, g.created_ms, g.trained_ms \
             FROM rollout_groups g JOIN tasks t ON t.id = g.task_id WHERE {cond} \
             ORDER BY g.created_ms, g.id LIMIT $1"
        )))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| Error::query("listing groups", e))?;
        let mut out = Vec::with_capacity(rows.len());
        let mut tasks: HashMap<String, Task> = HashMap::new();
        for (id, task_id, adapter_id, created_ms, trained_ms) in rows {
            let task = match tasks.get(&task_id) {
                Some(t) => t.clone(),
                None => {
                    let t = self.task(&task_id).await?;
                    tasks.insert(task_id.clone(), t.clone());
                    t
                }
            };
            let members: Vec<RunRow> = sqlx::query_as(
                "SELECT r.id, r.task_id, r.agent, r.model_id, r.adapter_id, r.policy_hash, \
                 r.started_ms, r.finished_ms, r.status, r.end_reason, r.final_answer, r.reward, \
                 r.prompt_tokens, r.completion_tokens, r.step_count \
                 FROM group_members m JOIN runs r ON r.id = m.run_id WHERE m.group_id = $1 \
                 ORDER BY m.position",
            )
            .bind(&id)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| Error::query("reading group members", e))?;
            let runs = members
                .into_iter()
                .map(RunRow::into_run)
                .collect::<Result<_>>()?;
            out.push(Group {
                id,
                task,
                adapter_id,
                runs,
                created_ms,
                trained_ms,
            });
        }
        Ok(out)
    }

    /// Groups not yet trained on, oldest first. Only tasks of the train split: eval tasks are
    /// never handed to a trainer.
    pub async fn untrained_groups(&self, limit: u64) -> Result<Vec<Group>> {
        self.groups_where("g.trained_ms IS NULL AND t.split = 'train'", limit)
            .await
    }

    /// Every group of train-split tasks, trained or not, oldest first.
    pub async fn train_groups(&self, limit: u64) -> Result<Vec<Group>> {
        self.groups_where("t.split = 'train'", limit).await
    }

    /// Every registered adapter, oldest first.
    pub async fn adapters(&self) -> Result<Vec<Adapter>> {
        let rows: Vec<AdapterRow> = sqlx::query_as(AssertSqlSafe(format!(
            "{ADAPTER_COLS} ORDER BY created_ms, id"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| Error::query("listing adapters", e))?;
        rows.into_iter().map(AdapterRow::into_adapter).collect()
    }

    /// The adapter the runtime should serve, if one is promoted.
    pub async fn promoted_adapter(&self) -> Result<Option<Adapter>> {
        let row: Option<AdapterRow> = sqlx::query_as(AssertSqlSafe(format!(
            "{ADAPTER_COLS} WHERE status = 'promoted'"
        )))
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| Error::query("reading the promoted adapter", e))?;
        row.map(AdapterRow::into_adapter).transpose()
    }

    /// Evaluation records of one adapter (`None`: the base model), oldest first.
    pub async fn evals(&self, adapter_id: Option<&str>) -> Result<Vec<EvalRecord>> {
        let rows: Vec<EvalRow> = sqlx::query_as(AssertSqlSafe(format!(
            "{EVAL_COLS} WHERE (adapter_id = $1) OR (adapter_id IS NULL AND $2 = 1) \
             ORDER BY started_ms, id"
        )))
        .bind(adapter_id.unwrap_or(""))
        .bind(i64::from(adapter_id.is_none()))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| Error::query("reading evals", e))?;
        rows.into_iter().map(eval_record).collect()
    }

    /// Every evaluation record, of every adapter and of the base model, oldest first.
    pub async fn all_evals(&self) -> Result<Vec<EvalRecord>> {
        let rows: Vec<EvalRow> =
            sqlx::query_as(AssertSqlSafe(format!("{EVAL_COLS} ORDER BY started_ms, id")))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| Error::query("reading evals", e))?;
        rows.into_iter().map(eval_record).collect()
    }

    /// Experiences, best score first.
    pub async fn experiences(&self, limit: u64) -> Result<Vec<Experience>> {
        let rows: Vec<(String, String, f64, i64)> = sqlx::query_as(
            "SELECT id, text, score, created_ms FROM experiences ORDER BY score DESC, id LIMIT $1",
        )
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| Error::query("reading experiences", e))?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, text, score, created_ms) in rows {
            let source_runs: Vec<String> = sqlx::query_scalar(
                "SELECT run_id FROM experience_sources WHERE experience_id = $1 ORDER BY run_id",
            )
            .bind(&id)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| Error::query("reading experience sources", e))?;
            out.push(Experience {
                id,
                spec: NewExperience {
                    text,
                    source_runs,
                    score,
                },
                created_ms,
            });
        }
        Ok(out)
    }

    /// Searches task prompts, steps and experiences; best `k` first. Returns nothing if the
    /// store was opened without an index. Rows written in the last second may not be
    /// searchable yet: [`Store::flush`] makes them so.
    pub async fn search(&self, query: &str, filters: &SearchFilters, k: usize) -> Result<Vec<Hit>> {
        let Some(ix) = &self.index else {
            return Ok(Vec::new());
        };
        let raw = ix.search(query, filters, k)?;
        let texts = self.previews(&raw).await?;
        let hits = raw
            .into_iter()
            .zip(texts)
            .map(|(h, text)| {
                let mut preview = text;
                if preview.len() > 200 {
                    let mut cut = 200;
                    while !preview.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    preview.truncate(cut);
                    preview.push('…');
                }
                Hit {
                    kind: h.kind,
                    id: h.id,
                    step_idx: (h.kind == DocKind::Step).then_some(h.idx),
                    score: h.score,
                    preview,
                }
            })
            .collect();
        Ok(hits)
    }

    /// The text of each hit, read from the database: one query per kind of hit.
    async fn previews(&self, raw: &[index::RawHit]) -> Result<Vec<String>> {
        let mut texts = vec![String::new(); raw.len()];
        for kind in [DocKind::Task, DocKind::Experience] {
            let want: Vec<usize> = (0..raw.len()).filter(|&i| raw[i].kind == kind).collect();
            if want.is_empty() {
                continue;
            }
            let sql = match kind {
                DocKind::Task => format!(
                    "SELECT id, prompt FROM tasks WHERE id IN ({})",
                    numbered_params(want.len())
                ),
                _ => format!(
                    "SELECT id, text FROM experiences WHERE id IN ({})",
                    numbered_params(want.len())
                ),
            };
            let mut q = sqlx::query_as::<_, (String, String)>(AssertSqlSafe(sql));
            for &i in &want {
                q = q.bind(raw[i].id.as_str());
            }
            let rows: HashMap<String, String> = q
                .fetch_all(&self.pool)
                .await
                .map_err(|e| Error::query("reading hits", e))?
                .into_iter()
                .collect();
            for &i in &want {
                texts[i] = rows.get(&raw[i].id).cloned().unwrap_or_default();
            }
        }
        let want: Vec<usize> = (0..raw.len())
            .filter(|&i| raw[i].kind == DocKind::Step)
            .collect();
        if !want.is_empty() {
            let cond: Vec<String> = (0..want.len())
                .map(|j| format!("(run_id = ${} AND idx = ${})", 2 * j + 1, 2 * j + 2))
                .collect();
            let sql = format!(
                "SELECT run_id, idx, input, output, stdout, stderr, error FROM steps WHERE {}",
                cond.join(" OR ")
            );
            let mut q = sqlx::query_as::<
                _,
                (String, i64, String, String, String, String, Option<String>),
            >(AssertSqlSafe(sql));
            for &i in &want {
                q = q.bind(raw[i].id.as_str()).bind(raw[i].idx as i64);
            }
            let rows = q
                .fetch_all(&self.pool)
                .await
                .map_err(|e| Error::query("reading hits", e))?;
            let by_key: HashMap<(String, i64), String> = rows
                .into_iter()
                .map(|(r, i, a, b, c, d, e)| {
                    ((r, i), index::step_text(&a, &b, &c, &d, e.as_deref()))
                })
                .collect();
            for &i in &want {
                let key = (raw[i].id.clone(), raw[i].idx as i64);
                texts[i] = by_key.get(&key).cloned().unwrap_or_default();
            }
        }
        Ok(texts)
    }

    /// Documents searchable now (0 without an index).
    pub fn indexed_docs(&self) -> u64 {
        self.index.as_ref().map_or(0, |i| i.num_docs())
    }

    /// Documents in each segment of the search index; [`Store::compact_index`] leaves one
    /// segment per search thread.
    pub fn index_segments(&self) -> Vec<u64> {
        self.index.as_ref().map_or_else(Vec::new, |i| i.segment_docs())
    }

    /// Checks the database's integrity and that every run in `acknowledged` exists, is
    /// finished, and has all its steps (indices `0..step_count`, none missing).
    pub async fn verify(&self, acknowledged: &[String]) -> Result<VerifyReport> {
        let integrity = match self.backend {
            Backend::Sqlite { .. } => {
                let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| Error::query("checking integrity", e))?;
                rows.join("; ")
            }
            Backend::Postgres => {
                // PostgreSQL checksums its own pages; check the schema is whole instead.
                self.schema_version().await?;
                "ok".to_owned()
            }
        };
        let runs = self.count("SELECT COUNT(*) FROM runs").await?;
        let steps = self.count("SELECT COUNT(*) FROM steps").await?;
        let ids: Vec<&String> = {
            let mut seen = HashSet::new();
            acknowledged
                .iter()
                .filter(|id| seen.insert(id.as_str()))
                .collect()
        };
        let mut missing = 0u64;
        let mut problems = Vec::new();
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT r.id, r.status, r.step_count, \
                 (SELECT COUNT(*) FROM steps s WHERE s.run_id = r.id), \
                 (SELECT MAX(idx) FROM steps s WHERE s.run_id = r.id) \
                 FROM runs r WHERE r.id IN ({})",
                numbered_params(chunk.len())
            );
            let mut q =
                sqlx::query_as::<_, (String, String, i64, i64, Option<i64>)>(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id.as_str());
            }
            let found = q
                .fetch_all(&self.pool)
                .await
                .map_err(|e| Error::query("checking acknowledged runs", e))?;
            let by_id: HashMap<&str, _> = found.iter().map(|r| (r.0.as_str(), r)).collect();
            for id in chunk {
                let problem = match by_id.get(id.as_str()) {
                    None => Some(format!("run {id} is missing")),
                    Some((_, status, _, _, _)) if status == "running" => {
                        Some(format!("run {id} is acknowledged but not finished"))
                    }
                    Some((_, _, expected, n, max))
                        if *n != *expected || max.map_or(0, |m| m + 1) != *n =>
                    {
                        Some(format!("run {id} has {n} of its {expected} steps"))
                    }
                    Some(_) => None,
                };
                if let Some(p) = problem {
                    missing += 1;
                    if problems.len() < 20 {
                        problems.push(p);
                    }
                }
            }
        }
        let ok = integrity == "ok" && missing == 0;
        Ok(VerifyReport {
            ok,
            runs,
            steps,
            missing,
            acknowledged: ids.len() as u64,
            integrity,
            problems,
        })
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(ix) = self.index.as_mut() {
            ix.shutdown();
        }
    }
}

const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                              PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 30000;";

async fn probe(url: &str, is_sqlite: bool) -> std::result::Result<(), sqlx::Error> {
    use sqlx::Connection;
    let mut conn = sqlx::AnyConnection::connect(url).await?;
    if is_sqlite {
        conn.execute(SQLITE_PRAGMAS).await?;
        conn.execute("SELECT COUNT(*) FROM sqlite_master").await?;
    }
    conn.close().await
}

/// The highest batch number written so far.
async fn current_batch(pool: &AnyPool) -> Result<i64> {
    sqlx::query_scalar("SELECT value FROM store_meta WHERE key = 'batch'")
        .fetch_one(pool)
        .await
        .map_err(|e| Error::query("reading the batch counter", e))
}

/// id, task id, adapter id, created, trained.
type GroupRow = (String, String, Option<String>, i64, Option<i64>);
/// adapter id, suite, n, passed, pass@k JSON, started, finished.
const EVAL_COLS: &str =
    "SELECT adapter_id, suite, n, passed, pass_at_k, started_ms, finished_ms FROM evals";

type EvalRow = (Option<String>, String, i64, i64, String, i64, i64);

const TASK_COLS: &str = "SELECT id, family, prompt, context_ref, answer_spec, split, parent_id, \
                         difficulty, source, created_ms FROM tasks";
const RUN_COLS: &str = "SELECT id, task_id, agent, model_id, adapter_id, policy_hash, started_ms, \
                        finished_ms, status, end_reason, final_answer, reward, prompt_tokens, \
                        completion_tokens, step_count FROM runs";
const ADAPTER_COLS: &str =
    "SELECT id, parent_id, path, sha256, status, metrics, created_ms, updated_ms FROM adapters";

#[derive(sqlx::FromRow)]
pub(crate) struct TaskRow {
    id: String,
    family: String,
    prompt: String,
    context_ref: Option<String>,
    answer_spec: String,
    split: String,
    parent_id: Option<String>,
    difficulty: Option<f64>,
    source: String,
    created_ms: i64,
}

impl TaskRow {
    fn into_task(self) -> Result<Task> {
        Ok(Task {
            id: self.id,
            spec: NewTask {
                family: self.family,
                prompt: self.prompt,
                context_ref: self.context_ref,
                answer_spec: serde_json::from_str(&self.answer_spec).map_err(|e| {
                    Error::Invalid {
                        what: "stored answer spec",
                        detail: e.to_string(),
                    }
                })?,
                split: self.split.parse()?,
                parent_id: self.parent_id,
                difficulty: self.difficulty,
                source: self.source,
            },
            created_ms: self.created_ms,
        })
    }
}

#[derive(sqlx::FromRow, Clone)]
pub(crate) struct RunRow {
    id: String,
    task_id: String,
    agent: String,
    model_id: String,
    adapter_id: Option<String>,
    policy_hash: String,
    started_ms: i64,
    finished_ms: Option<i64>,
    status: String,
    end_reason: Option<String>,
    final_answer: Option<String>,
    reward: Option<f64>,
    prompt_tokens: i64,
    completion_tokens: i64,
    step_count: i64,
}

impl RunRow {
    fn into_run(self) -> Result<Run> {
        Ok(Run {
            id: self.id,
            spec: NewRun {
                task_id: self.task_id,
                agent: self.agent,
                model_id: self.model_id,
                adapter_id: self.adapter_id,
                policy_hash: self.policy_hash,
            },
            started_ms: self.started_ms,
            finished_ms: self.finished_ms,
            status: self.status.parse()?,
            end_reason: self.end_reason,
            final_answer: self.final_answer,
            reward: self.reward,
            prompt_tokens: self.prompt_tokens as u64,
            completion_tokens: self.completion_tokens as u64,
            step_count: self.step_count as u64,
        })
    }
}

#[derive(sqlx::FromRow)]
struct RunFamilyRow {
    id: String,
    task_id: String,
    agent: String,
    model_id: String,
    adapter_id: Option<String>,
    policy_hash: String,
    started_ms: i64,
    finished_ms: Option<i64>,
    status: String,
    end_reason: Option<String>,
    final_answer: Option<String>,
    reward: Option<f64>,
    prompt_tokens: i64,
    completion_tokens: i64,
    step_count: i64,
    family: String,
}

impl RunFamilyRow {
    fn into_run_row(self) -> RunRow {
        RunRow {
            id: self.id,
            task_id: self.task_id,
            agent: self.agent,
            model_id: self.model_id,
            adapter_id: self.adapter_id,
            policy_hash: self.policy_hash,
            started_ms: self.started_ms,
            finished_ms: self.finished_ms,
            status: self.status,
            end_reason: self.end_reason,
            final_answer: self.final_answer,
            reward: self.reward,
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            step_count: self.step_count,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct StepRow {
    run_id: String,
    idx: i64,
    kind: String,
    input: String,
    output: String,
    stdout: String,
    stderr: String,
    error: Option<String>,
    prompt_tokens: i64,
    completion_tokens: i64,
    latency_us: i64,
    logprobs: Option<String>,
    created_ms: i64,
}

impl StepRow {
    fn into_step(self) -> Result<Step> {
        let logprobs = match self.logprobs {
            Some(s) => Some(serde_json::from_str(&s).map_err(|e| Error::Invalid {
                what: "stored log-probs",
                detail: e.to_string(),
            })?),
            None => None,
        };
        Ok(Step {
            run_id: self.run_id,
            idx: self.idx as u64,
            data: NewStep {
                kind: self.kind.parse()?,
                input: self.input,
                output: self.output,
                stdout: self.stdout,
                stderr: self.stderr,
                error: self.error,
                prompt_tokens: self.prompt_tokens as u64,
                completion_tokens: self.completion_tokens as u64,
                latency_us: self.latency_us as u64,
                logprobs,
            },
            created_ms: self.created_ms,
        })
    }
}

#[derive(sqlx::FromRow)]
struct AdapterRow {
    id: String,
    parent_id: Option<String>,
    path: String,
    sha256: String,
    status: String,
    metrics: String,
    created_ms: i64,
    updated_ms: i64,
}

impl AdapterRow {
    fn into_adapter(self) -> Result<Adapter> {
        Ok(Adapter {
            id: self.id,
            spec: NewAdapter {
                parent_id: self.parent_id,
                path: self.path,
                sha256: self.sha256,
                metrics: serde_json::from_str(&self.metrics).map_err(|e| Error::Invalid {
                    what: "stored adapter metrics",
                    detail: e.to_string(),
                })?,
            },
            status: self.status.parse()?,
            created_ms: self.created_ms,
            updated_ms: self.updated_ms,
        })
    }
}

/// An `evals` row as its record.
fn eval_record(
    (adapter_id, suite, n, passed, pak, started_ms, finished_ms): EvalRow,
) -> Result<EvalRecord> {
    let map: BTreeMap<String, f64> = serde_json::from_str(&pak).map_err(|e| Error::Invalid {
        what: "stored pass@k",
        detail: e.to_string(),
    })?;
    let pass_at_k = map
        .into_iter()
        .filter_map(|(k, v)| k.parse::<u32>().ok().map(|k| (k, v)))
        .collect();
    Ok(EvalRecord {
        adapter_id,
        suite,
        n: n as u64,
        passed: passed as u64,
        pass_at_k,
        started_ms,
        finished_ms,
    })
}
