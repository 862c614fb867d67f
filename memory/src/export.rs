//! Exports for trainers and viewers, one JSON object per line.
//!
//! - `trl-grpo`: one line per GRPO group of a **train** task:
//!   `{"prompt": [{"role": "user", "content": PROMPT}], "completions": [TEXT, ...],
//!   "rewards": [R, ...], "data_source", "ability", "reward_model": {"style": "rule",
//!   "ground_truth": ANSWER_SPEC}, "extra_info": {"group_id", "task_id", "adapter_id",
//!   "run_ids", "trained"}}`. `prompt` is in TRL's conversational form, and `completions` and
//!   `rewards` line up index by index. TRL's `GRPOTrainer` reads `prompt` and hands the other
//!   columns to reward functions; veRL's RL dataset reads `prompt`, `data_source`, `ability`,
//!   `reward_model` and `extra_info` under the same names. A completion is what the policy
//!   generated: the run's model turns joined by newlines. A run with no reward counts 0.
//! - `sft`: one line per successful run (status `answered`, reward > 0) of a train task:
//!   `{"messages": [...], "run_id", "task_id", "reward"}`. The user message is the task
//!   prompt, each model turn is an assistant message, and each code cell's output (stdout,
//!   stderr, error) comes back as a user message, as the RLM loop feeds it back.
//! - `rlm-log`: per run, a `metadata` line, then one `iteration` line per model turn in the
//!   shape of the reference RLM logger (alexzhang13/rlm): `prompt`, `response`,
//!   `code_blocks: [{code, result: {stdout, stderr, locals, execution_time, rlm_calls}}]`,
//!   `final_answer` (on the last iteration) and `iteration_time`, in seconds. Sub-calls and tool
//!   calls are listed under the code block they were made from (the next cell of the turn).

use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use serde_json::{Value, json};

use crate::types::*;
use crate::{Error, Result, Store};

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// Prompt, completions and rewards per group (TRL GRPO, veRL).
    TrlGrpo,
    /// Chat messages of successful runs.
    Sft,
    /// One line per iteration, as the reference RLM logger writes.
    RlmLog,
}

impl FromStr for ExportFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "trl-grpo" => Ok(ExportFormat::TrlGrpo),
            "sft" => Ok(ExportFormat::Sft),
            "rlm-log" => Ok(ExportFormat::RlmLog),
            other => Err(Error::Invalid {
                what: "export format",
                detail: format!("{other:?}; use trl-grpo, sft or rlm-log"),
            }),
        }
    }
}

/// The text the policy generated in a run: its model turns, in order.
pub fn completion_text(steps: &[Step]) -> String {
    let turns: Vec<&str> = steps
        .iter()
        .filter(|s| s.data.kind == StepKind::ModelTurn)
        .map(|s| s.data.output.as_str())
        .collect();
    turns.join("\n")
}

fn observation(s: &NewStep) -> String {
    let mut parts = Vec::new();
    if !s.stdout.is_empty() {
        parts.push(s.stdout.clone());
    }
    if !s.stderr.is_empty() {
        parts.push(s.stderr.clone());
    }
    if let Some(e) = &s.error {
        parts.push(e.clone());
    }
    if parts.is_empty() && !s.output.is_empty() {
        parts.push(s.output.clone());
    }
    parts.join("\n")
}

fn messages(t: &Transcript) -> Vec<Value> {
    let mut msgs = vec![json!({"role": "user", "content": t.task.spec.prompt})];
    let mut pending: Vec<String> = Vec::new();
    for s in &t.steps {
        match s.data.kind {
            StepKind::ModelTurn => {
                if !pending.is_empty() {
                    msgs.push(json!({"role": "user", "content": pending.join("\n")}));
                    pending.clear();
                }
                msgs.push(json!({"role": "assistant", "content": s.data.output}));
            }
            StepKind::CodeCell => pending.push(observation(&s.data)),
            StepKind::Subcall | StepKind::ToolCall => {}
        }
    }
    msgs
}

/// ISO 8601 (UTC, milliseconds) for a time in ms since the epoch.
pub fn iso8601(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

fn rlm_lines(t: &Transcript) -> Vec<Value> {
    let secs = |us: u64| us as f64 / 1e6;
    let mut lines = vec![json!({
        "type": "metadata",
        "timestamp": iso8601(t.run.started_ms),
        "run_id": t.run.id,
        "task_id": t.task.id,
        "root_model": t.run.spec.model_id,
        "adapter_id": t.run.spec.adapter_id,
        "agent": t.run.spec.agent,
        "environment_type": "wasi-python",
        "status": t.run.status.as_str(),
        "reward": t.run.reward,
    })];
    struct Iter<'a> {
        turn: &'a Step,
        blocks: Vec<Value>,
        calls: Vec<Value>,
        time_us: u64,
    }
    let mut iters: Vec<Iter<'_>> = Vec::new();
    for s in &t.steps {
        match s.data.kind {
            StepKind::ModelTurn => iters.push(Iter {
                turn: s,
                blocks: Vec::new(),
                calls: Vec::new(),
                time_us: s.data.latency_us,
            }),
            _ if iters.is_empty() => {}
            StepKind::Subcall | StepKind::ToolCall => {
                let it = iters.last_mut().expect("not empty");
                it.time_us += s.data.latency_us;
                it.calls.push(json!({
                    "root_model": if s.data.kind == StepKind::Subcall { json!(t.run.spec.model_id) } else { json!("tool") },
                    "prompt": s.data.input,
                    "response": s.data.output,
                    "execution_time": secs(s.data.latency_us),
                }));
            }
            StepKind::CodeCell => {
                let it = iters.last_mut().expect("not empty");
                it.time_us += s.data.latency_us;
                let calls = std::mem::take(&mut it.calls);
                it.blocks.push(json!({
                    "code": s.data.input,
                    "result": {
                        "stdout": s.data.stdout,
                        "stderr": s.data.stderr,
                        "locals": {},
                        "execution_time": secs(s.data.latency_us),
                        "rlm_calls": calls,
                    },
                }));
            }
        }
    }
    let n = iters.len();
    for (i, mut it) in iters.into_iter().enumerate() {
        if !it.calls.is_empty()
            && let Some(last) = it.blocks.last_mut()
            && let Some(arr) = last["result"]["rlm_calls"].as_array_mut()
        {
            arr.append(&mut it.calls);
        }
        let final_answer = if i + 1 == n {
            json!(t.run.final_answer)
        } else {
            Value::Null
        };
        lines.push(json!({
            "type": "iteration",
            "iteration": i + 1,
            "timestamp": iso8601(it.turn.created_ms),
            "run_id": t.run.id,
            "prompt": it.turn.data.input,
            "response": it.turn.data.output,
            "code_blocks": it.blocks,
            "final_answer": final_answer,
            "iteration_time": secs(it.time_us),
        }));
    }
    lines
}

fn write_line(out: &mut dyn Write, v: &Value, path: &Path) -> Result<()> {
    let io = |e| Error::Io {
        path: path.to_owned(),
        source: e,
    };
    serde_json::to_writer(&mut *out, v).map_err(|e| io(e.into()))?;
    out.write_all(b"\n").map_err(io)
}

impl Store {
    /// Writes the store in `format` to `out` (`path` names it in errors); `progress(done,
    /// total)` is called as items are written. Returns the number of lines written.
    pub async fn export(
        &self,
        format: ExportFormat,
        out: &mut dyn Write,
        path: &Path,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64> {
        let mut lines = 0u64;
        match format {
            ExportFormat::TrlGrpo => {
                let groups = self.train_groups(u64::MAX >> 1).await?;
                let total = groups.len() as u64;
                for (i, g) in groups.iter().enumerate() {
                    let mut completions = Vec::new();
                    let mut rewards = Vec::new();
                    for r in &g.runs {
                        completions.push(completion_text(&self.steps(&r.id).await?));
                        rewards.push(r.reward.unwrap_or(0.0));
                    }
                    let v = json!({
                        "prompt": [{"role": "user", "content": g.task.spec.prompt}],
                        "completions": completions,
                        "rewards": rewards,
                        "data_source": format!("autodidact/{}", g.task.spec.family),
                        "ability": g.task.spec.family,
                        "reward_model": {"style": "rule", "ground_truth": g.task.spec.answer_spec},
                        "extra_info": {
                            "group_id": g.id,
                            "task_id": g.task.id,
                            "adapter_id": g.adapter_id,
                            "run_ids": g.runs.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
                            "trained": g.trained_ms.is_some(),
                        },
                    });
                    write_line(out, &v, path)?;
                    lines += 1;
                    progress(i as u64 + 1, total);
                }
            }
            ExportFormat::Sft | ExportFormat::RlmLog => {
                let sql = if format == ExportFormat::Sft {
                    "SELECT r.id FROM runs r JOIN tasks t ON t.id = r.task_id \
                     WHERE r.status = 'answered' AND r.reward > 0 AND t.split = 'train' \
                     ORDER BY r.started_ms, r.id"
                } else {
                    "SELECT id FROM runs ORDER BY started_ms, id"
                };
                let ids: Vec<String> = sqlx::query_scalar(sql)
                    .fetch_all(self.pool())
                    .await
                    .map_err(|e| Error::query("listing runs to export", e))?;
                let total = ids.len() as u64;
                for (i, id) in ids.iter().enumerate() {
                    let t = self.transcript(id).await?;
                    if format == ExportFormat::Sft {
                        let v = json!({
                            "messages": messages(&t),
                            "run_id": t.run.id,
                            "task_id": t.task.id,
                            "reward": t.run.reward,
                        });
                        write_line(out, &v, path)?;
                        lines += 1;
                    } else {
                        for v in rlm_lines(&t) {
                            write_line(out, &v, path)?;
                            lines += 1;
                        }
                    }
                    progress(i as u64 + 1, total);
                }
            }
        }
        out.flush().map_err(|e| Error::Io {
            path: path.to_owned(),
            source: e,
        })?;
        Ok(lines)
    }
}

impl Transcript {
    /// A readable rendering: the task, then each step with what it printed.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let r = &self.run;
        let mut s = String::new();
        let _ = writeln!(s, "run      {}", r.id);
        let _ = writeln!(
            s,
            "task     {} ({}, {})",
            self.task.id, self.task.spec.family, self.task.spec.split
        );
        let _ = writeln!(
            s,
            "agent    {} on {}{}",
            r.spec.agent,
            r.spec.model_id,
            r.spec
                .adapter_id
                .as_deref()
                .map(|a| format!(" + adapter {a}"))
                .unwrap_or_default()
        );
        let _ = writeln!(s, "started  {}", iso8601(r.started_ms));
        let _ = writeln!(
            s,
            "status   {}{}  reward {}  tokens {} in / {} out",
            r.status,
            r.end_reason
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default(),
            r.reward
                .map(|x| format!("{x}"))
                .unwrap_or_else(|| "-".into()),
            r.prompt_tokens,
            r.completion_tokens
        );
        for w in &self.warnings {
            let _ = writeln!(s, "warning  [{}] {}", w.source, w.message);
        }
        let _ = writeln!(s, "\n== prompt\n{}", self.task.spec.prompt.trim_end());
        for st in &self.steps {
            let d = &st.data;
            let _ = writeln!(
                s,
                "\n== step {} · {} · {:.1} ms · {} tok in / {} out",
                st.idx,
                d.kind,
                d.latency_us as f64 / 1000.0,
                d.prompt_tokens,
                d.completion_tokens
            );
            let (a, b) = match d.kind {
                StepKind::ModelTurn => ("", "reply"),
                StepKind::CodeCell => ("code", "value"),
                StepKind::Subcall => ("prompt", "reply"),
                StepKind::ToolCall => ("args", "result"),
            };
            if !a.is_empty() && !d.input.is_empty() {
                let _ = writeln!(s, "-- {a}\n{}", d.input.trim_end());
            }
            if !d.output.is_empty() {
                let _ = writeln!(s, "-- {b}\n{}", d.output.trim_end());
            }
            if !d.stdout.is_empty() {
                let _ = writeln!(s, "-- stdout\n{}", d.stdout.trim_end());
            }
            if !d.stderr.is_empty() {
                let _ = writeln!(s, "-- stderr\n{}", d.stderr.trim_end());
            }
            if let Some(e) = &d.error {
                let _ = writeln!(s, "-- error\n{}", e.trim_end());
            }
        }
        if let Some(a) = &r.final_answer {
            let _ = writeln!(s, "\n== final answer\n{a}");
        }
        s
    }
}
