//! The nightly loop's record: nights and their finished stages.
//!
//! `autodidact nightly` opens a night ([`Writer::begin_night`]), and after each stage records
//! its output ([`Writer::record_stage`]); a stage's row exists only once the stage has
//! finished, so a night killed mid-stage resumes by re-running that stage alone. The reads
//! ([`Store::open_night`], [`Store::night_stages`], [`Store::nights`]) are here; the writes go
//! through the writer like every other write.

use serde::Serialize;
use serde_json::Value;

use crate::{Error, Result, Store};

/// How a night stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NightStatus {
    /// Started and not finished (running, or killed: `nightly` resumes it).
    Running,
    /// Every stage finished.
    Finished,
    /// A stage failed; the night is closed and the next `nightly` starts a new one.
    Failed,
}

impl NightStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            NightStatus::Running => "running",
            NightStatus::Finished => "finished",
            NightStatus::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "running" => Ok(NightStatus::Running),
            "finished" => Ok(NightStatus::Finished),
            "failed" => Ok(NightStatus::Failed),
            other => Err(Error::Invalid { what: "night status", detail: other.to_owned() }),
        }
    }
}

/// One night of the nightly loop.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Night {
    /// Its id (a UUID).
    pub id: String,
    /// When it started.
    pub started_ms: i64,
    /// When it finished or failed.
    pub finished_ms: Option<i64>,
    /// How it stands.
    pub status: NightStatus,
    /// The plan it runs (sizes, suites, budget), as given to `begin_night`.
    pub plan: Value,
    /// The summary written when it ended.
    pub summary: Option<Value>,
}

/// A finished stage of a night.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NightStage {
    /// The night.
    pub night_id: String,
    /// The stage's name (`gather`, `curriculum`, ...).
    pub stage: String,
    /// When it started.
    pub started_ms: i64,
    /// When it finished.
    pub finished_ms: i64,
    /// What it produced, for later stages and the report.
    pub output: Value,
}

#[derive(sqlx::FromRow)]
struct NightRow {
    id: String,
    started_ms: i64,
    finished_ms: Option<i64>,
    status: String,
    plan: String,
    summary: Option<String>,
}

fn parse_json(what: &'static str, s: &str) -> Result<Value> {
    serde_json::from_str(s).map_err(|e| Error::Invalid { what, detail: e.to_string() })
}

impl NightRow {
    fn into_night(self) -> Result<Night> {
        Ok(Night {
            status: NightStatus::parse(&self.status)?,
            plan: parse_json("stored night plan", &self.plan)?,
            summary: self.summary.as_deref().map(|s| parse_json("stored night summary", s)).transpose()?,
            id: self.id,
            started_ms: self.started_ms,
            finished_ms: self.finished_ms,
        })
    }
}

#[derive(sqlx::FromRow)]
struct StageRow {
    night_id: String,
    stage: String,
    started_ms: i64,
    finished_ms: i64,
    output: String,
}

const NIGHT_COLS: &str = "SELECT id, started_ms, finished_ms, status, plan, summary FROM nights";

impl Store {
    /// The most recent night that has not ended, if any: the one `nightly` resumes.
    pub async fn open_night(&self) -> Result<Option<Night>> {
        let row: Option<NightRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{NIGHT_COLS} WHERE status = 'running' ORDER BY started_ms DESC, id DESC LIMIT 1"
        )))
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| Error::query("reading the open night", e))?;
        row.map(NightRow::into_night).transpose()
    }

    /// The most recent nights, newest first.
    pub async fn nights(&self, limit: u64) -> Result<Vec<Night>> {
        let rows: Vec<NightRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{NIGHT_COLS} ORDER BY started_ms DESC, id DESC LIMIT $1"
        )))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| Error::query("listing nights", e))?;
        rows.into_iter().map(NightRow::into_night).collect()
    }

    /// The finished stages of a night, in the order they finished.
    pub async fn night_stages(&self, night_id: &str) -> Result<Vec<NightStage>> {
        let rows: Vec<StageRow> = sqlx::query_as(
            "SELECT night_id, stage, started_ms, finished_ms, output FROM night_stages \
             WHERE night_id = $1 ORDER BY finished_ms, stage",
        )
        .bind(night_id)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| Error::query("reading a night's stages", e))?;
        rows.into_iter()
            .map(|r| {
                Ok(NightStage {
                    output: parse_json("stored stage output", &r.output)?,
                    night_id: r.night_id,
                    stage: r.stage,
                    started_ms: r.started_ms,
                    finished_ms: r.finished_ms,
                })
            })
            .collect()
    }
}
