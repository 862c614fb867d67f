//! The report: one self-contained HTML page with inline SVG plots (drawn with `plotters`) of
//! what memory holds: eval results by adapter and suite, pass@k tables, learning curves, the
//! LADDER trees, and recent runs with their transcripts.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use autodidact_memory::{Adapter, EvalRecord, Store, Task, Transcript, iso8601};
use plotters::prelude::*;

use crate::curriculum::Tally;
use crate::harness::now_ms;
use crate::{Error, Result};

/// Runs whose transcripts the report embeds.
pub const TRANSCRIPTS: u64 = 20;

const PALETTE: [RGBColor; 6] = [RGBColor(31, 119, 180), RGBColor(255, 127, 14), RGBColor(44, 160, 44), RGBColor(214, 39, 40), RGBColor(148, 103, 189), RGBColor(140, 86, 75)];

/// One training step's numbers, read from an adapter's metrics (`"curve": [{"step", "reward", ...}]`).
#[derive(Debug, Clone, PartialEq)]
pub struct CurvePoint {
    /// The step (1-based).
    pub step: f64,
    /// Mean reward of the step's groups.
    pub reward: f64,
}

/// The learning curve stored in an adapter's metrics, if any.
pub fn curve(adapter: &Adapter) -> Vec<CurvePoint> {
    let Some(points) = adapter.spec.metrics.get("curve").and_then(|c| c.as_array()) else { return Vec::new() };
    points
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let reward = p.get("reward").or_else(|| p.get("mean_reward"))?.as_f64()?;
            let step = p.get("step").and_then(serde_json::Value::as_f64).unwrap_or(i as f64 + 1.0);
            Some(CurvePoint { step, reward })
        })
        .collect()
}

/// Renders the report from `store`.
pub async fn render(store: &Store) -> Result<String> {
    let stats = store.stats().await?;
    let evals = store.all_evals().await?;
    let adapters = store.adapters().await?;
    let ladder = store.tasks_from("ladder", 100_000).await?;
    let runs = store.runs(100_000).await?;
    let mut rewards: HashMap<&str, Vec<f64>> = HashMap::new();
    for r in &runs {
        if let Some(x) = r.run.reward {
            rewards.entry(r.run.spec.task_id.as_str()).or_default().push(x);
        }
    }
    let mut transcripts = Vec::new();
    for r in runs.iter().take(TRANSCRIPTS as usize) {
        transcripts.push(store.transcript(&r.run.id).await?);
    }
    let name = |id: &Option<String>| match id {
        Some(id) => adapters.iter().find(|a| &a.id == id).map_or_else(|| short(id), |a| format!("{} ({})", short(&a.id), a.status.as_str())),
        None => "base".to_owned(),
    };

    let mut h = String::new();
    h.push_str(HEAD);
    let _ = write!(
        h,
        "<h1>autodidact report</h1><p class=meta>{} &middot; {} &middot; {} tasks, {} runs, {} steps, {} groups ({} untrained), {} adapters, {} evals</p>",
        esc(&iso8601(now_ms())),
        esc(store.url()),
        stats.tasks,
        stats.runs,
        stats.steps,
        stats.groups,
        stats.untrained_groups,
        stats.adapters,
        stats.evals
    );

    h.push_str("<h2 id=evals>Evals by adapter and suite</h2>");
    if evals.is_empty() {
        h.push_str("<p class=empty>No eval yet: run <code>autodidact eval --suite arith</code>.</p>");
    } else {
        h.push_str(&eval_chart(&evals, &name)?);
        h.push_str("<table><tr><th>finished</th><th>suite</th><th>adapter</th><th>n</th><th>passed</th><th>pass@k</th></tr>");
        for e in evals.iter().rev() {
            let pk: Vec<String> = e.pass_at_k.iter().map(|(k, v)| format!("pass@{k} {v:.3}")).collect();
            let _ = write!(h, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", esc(&iso8601(e.finished_ms)), esc(&e.suite), esc(&name(&e.adapter_id)), e.n, e.passed, pk.join(", "));
        }
        h.push_str("</table>");
    }

    h.push_str("<h2 id=nights>Nights</h2>");
    let mut nights = Vec::new();
    for n in store.nights(10).await? {
        let stages = store.night_stages(&n.id).await?;
        let warnings = store.warning_counts(n.started_ms, n.finished_ms.unwrap_or(i64::MAX)).await?;
        nights.push((n, stages, warnings));
    }
    if nights.is_empty() {
        h.push_str("<p class=empty>No night yet: run <code>autodidact nightly --quick</code>.</p>");
    } else {
        // Oldest first: night 1 is the oldest of those shown.
        let gates: Vec<&serde_json::Value> = nights.iter().rev().filter_map(|(_, stages, _)| stages.iter().find(|s| s.stage == "gate").map(|s| &s.output)).collect();
        let lines = suite_curves_across_nights(&gates);
        if !lines.is_empty() {
            h.push_str(&line_chart(&lines, "pass@1 by suite, night by night (0: before the first night shown; n: night n's candidate)", "night", "pass@1")?);
        }
        h.push_str(&nights_html(&nights));
    }
    h.push_str("<h2 id=forgetting>Forgetting matrix</h2>");
    let matrix = forgetting_matrix(&adapters, &evals);
    if matrix.suites.is_empty() {
        h.push_str("<p class=empty>No eval yet.</p>");
    } else {
        h.push_str(&forgetting_html(&matrix)?);
    }

    h.push_str("<h2 id=learning>Learning curves</h2>");
    let curves: Vec<(String, Vec<CurvePoint>)> = adapters.iter().map(|a| (name(&Some(a.id.clone())), curve(a))).filter(|(_, c)| !c.is_empty()).collect();
    if curves.is_empty() {
        h.push_str("<p class=empty>No training yet: <code>autodidact train</code> records reward per step.</p>");
    } else {
        h.push_str(&curve_chart(&curves)?);
    }
    h.push_str("<h3>Adapters</h3><table><tr><th>adapter</th><th>parent</th><th>status</th><th>created</th><th>file</th></tr>");
    for a in &adapters {
        let _ = write!(h, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", short(&a.id), a.spec.parent_id.as_deref().map_or("-".into(), short), a.status.as_str(), esc(&iso8601(a.created_ms)), esc(&a.spec.path));
    }
    h.push_str("</table>");

    h.push_str("<h2 id=ladder>LADDER trees</h2>");
    let depths = ladder_depths(&ladder);
    if depths.is_empty() {
        h.push_str("<p class=empty>No variants yet: run <code>autodidact ladder --suite integrals</code>.</p>");
    } else {
        let mut by_depth: BTreeMap<u32, (usize, usize, usize)> = BTreeMap::new();
        for t in &ladder {
            let e = by_depth.entry(depths[t.id.as_str()]).or_default();
            e.0 += 1;
            if let Some(r) = rewards.get(t.id.as_str()) {
                e.1 += 1;
                e.2 += usize::from(r.iter().any(|x| *x >= 1.0));
            }
        }
        h.push_str(&ladder_chart(&by_depth)?);
        h.push_str("<table><tr><th>depth</th><th>variants</th><th>attempted</th><th>solved at least once</th></tr>");
        for (d, (n, tried, solved)) in &by_depth {
            let _ = write!(h, "<tr><td>{d}</td><td>{n}</td><td>{tried}</td><td>{solved} ({:.0}%)</td></tr>", 100.0 * *solved as f64 / (*tried).max(1) as f64);
        }
        h.push_str("</table>");
    }

    h.push_str("<h2 id=runs>Recent runs</h2><table><tr><th>run</th><th>started</th><th>family</th><th>status</th><th>reward</th><th>steps</th></tr>");
    for r in runs.iter().take(TRANSCRIPTS as usize) {
        let run = &r.run;
        let _ = write!(
            h,
            "<tr><td><a href=\"#run-{id}\">{s}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&iso8601(run.started_ms)),
            esc(&r.family),
            run.status.as_str(),
            run.reward.map_or("-".into(), |x| format!("{x}")),
            run.step_count,
            id = esc(&run.id),
            s = short(&run.id)
        );
    }
    h.push_str("</table><h3>Transcripts</h3>");
    for t in &transcripts {
        h.push_str(&transcript_html(t));
    }
    h.push_str("</body></html>\n");
    Ok(h)
}

/// Pass@1 of every suite (rows) under every generation of promoted adapters (columns):
/// generation 0 is the base model, generation g the adapter the nightly promoted g-th (each
/// holds every earlier promoted update). A gain that holds across later columns was not
/// forgotten.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ForgettingMatrix {
    /// Suites, sorted.
    pub suites: Vec<String>,
    /// (generation, adapter id; `None` for the base model), in generation order.
    pub generations: Vec<(u64, Option<String>)>,
    /// `cells[suite][generation]`: the latest eval's pass@1, if that pair was evaluated.
    pub cells: Vec<Vec<Option<f64>>>,
}

/// The forgetting matrix of the registry's promoted lineage (adapters with a `generation`
/// in their metrics that are or were promoted; the latest per generation).
pub fn forgetting_matrix(adapters: &[Adapter], evals: &[EvalRecord]) -> ForgettingMatrix {
    let mut by_gen: BTreeMap<u64, &Adapter> = BTreeMap::new();
    for a in adapters {
        let kept = matches!(a.status, autodidact_memory::AdapterStatus::Promoted | autodidact_memory::AdapterStatus::Retired);
        if let (true, Some(g)) = (kept, a.spec.metrics.get("generation").and_then(|g| g.as_u64())) {
            if by_gen.get(&g).is_none_or(|b| b.created_ms < a.created_ms) {
                by_gen.insert(g, a);
            }
        }
    }
    let mut generations: Vec<(u64, Option<String>)> = vec![(0, None)];
    generations.extend(by_gen.into_iter().map(|(g, a)| (g, Some(a.id.clone()))));
    let mut suites: Vec<String> = evals.iter().map(|e| e.suite.clone()).collect();
    suites.sort();
    suites.dedup();
    let cells = suites
        .iter()
        .map(|s| {
            generations
                .iter()
                .map(|(_, id)| evals.iter().filter(|e| &e.suite == s && &e.adapter_id == id).max_by_key(|e| e.finished_ms).and_then(|e| e.pass_at_k.get(&1).copied()))
                .collect()
        })
        .collect();
    ForgettingMatrix { suites, generations, cells }
}

fn forgetting_html(m: &ForgettingMatrix) -> Result<String> {
    let mut h = String::from("<table><tr><th>suite</th>");
    for (g, id) in &m.generations {
        let _ = write!(h, "<th>gen {g}<br><span class=meta>{}</span></th>", id.as_deref().map_or("base".into(), short));
    }
    h.push_str("</tr>");
    for (s, row) in m.suites.iter().zip(&m.cells) {
        let _ = write!(h, "<tr><td>{}</td>", esc(s));
        for c in row {
            match c {
                Some(x) => {
                    let _ = write!(h, "<td style=\"background:rgba(44,160,44,{:.2})\">{:.1}%</td>", 0.1 + 0.6 * x, 100.0 * x);
                }
                None => h.push_str("<td>-</td>"),
            }
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    let lines: Vec<(String, Vec<CurvePoint>)> = m
        .suites
        .iter()
        .zip(&m.cells)
        .map(|(s, row)| (s.clone(), m.generations.iter().zip(row).filter_map(|((g, _), c)| Some(CurvePoint { step: *g as f64, reward: (*c)? })).collect()))
        .filter(|(_, c): &(String, Vec<CurvePoint>)| !c.is_empty())
        .collect();
    if !lines.is_empty() {
        h.push_str(&line_chart(&lines, "pass@1 by suite across promoted generations", "generation", "pass@1")?);
    }
    Ok(h)
}

/// Per suite, pass@1 across nights from their gate decisions (oldest first): point 0 is the
/// adapter the first night started from, point n is night n's candidate. A suite a night did
/// not score has no point there.
pub fn suite_curves_across_nights(gates: &[&serde_json::Value]) -> Vec<(String, Vec<CurvePoint>)> {
    let mut by_suite: BTreeMap<String, Vec<CurvePoint>> = BTreeMap::new();
    for (i, gate) in gates.iter().enumerate() {
        for e in gate["evidence"].as_array().into_iter().flatten() {
            let Some(suite) = e["suite"].as_str() else { continue };
            let points = by_suite.entry(suite.to_owned()).or_default();
            if let (0, Some(before)) = (i, e["promoted_pass_at_1"].as_f64()) {
                points.push(CurvePoint { step: 0.0, reward: before });
            }
            if let Some(after) = e["candidate_pass_at_1"].as_f64() {
                points.push(CurvePoint { step: i as f64 + 1.0, reward: after });
            }
        }
    }
    by_suite.into_iter().filter(|(_, c)| !c.is_empty()).collect()
}

type NightRow = (autodidact_memory::Night, Vec<autodidact_memory::NightStage>, std::collections::BTreeMap<String, u64>);

fn nights_html(nights: &[NightRow]) -> String {
    let mut h = String::new();
    for (n, stages, warnings) in nights {
        let gate = stages.iter().find(|s| s.stage == "gate").map(|s| &s.output);
        let _ = write!(
            h,
            "<h3>Night {} <span class=meta>{} &middot; {} &middot; {} stages</span></h3>",
            short(&n.id),
            esc(&iso8601(n.started_ms)),
            n.status.as_str(),
            stages.len()
        );
        let Some(gate) = gate else {
            h.push_str("<p class=empty>No gate decision yet.</p>");
            continue;
        };
        let _ = write!(h, "<p><b>{}</b>: {}</p>", esc(gate["decision"].as_str().unwrap_or("-")), esc(gate["reason"].as_str().unwrap_or("")));
        h.push_str("<table><tr><th>suite</th><th>n</th><th>promoted</th><th>candidate</th><th>delta</th><th>interval</th></tr>");
        for e in gate["evidence"].as_array().into_iter().flatten() {
            let f = |k: &str| e[k].as_f64().unwrap_or(0.0);
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:+.3}</td><td>{:+.3} .. {:+.3}</td></tr>",
                esc(e["suite"].as_str().unwrap_or("")),
                e["n"],
                f("promoted_pass_at_1"),
                f("candidate_pass_at_1"),
                f("delta"),
                f("delta_low"),
                f("delta_high")
            );
        }
        h.push_str("</table>");
        if let Some(train) = stages.iter().find(|s| s.stage == "train") {
            let _ = write!(h, "<p class=meta>signals: {}</p>", esc(&train.output["signals"].to_string()));
        }
        let rollouts = stages.iter().find(|s| s.stage == "rollouts").map(|s| &s.output);
        if let Some(c) = stages.iter().find(|s| s.stage == "curriculum") {
            h.push_str(&curriculum_html(&c.output, rollouts));
        }
        // Scores of the promoted adapter that an earlier night measured on the same weights,
        // items and settings, reused instead of run again.
        if let Some(promoted) = stages.iter().find(|s| s.stage == "eval_promoted") {
            let reused: Vec<String> = promoted.output["suites"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(suite, v)| Some(format!("{suite} (from night {})", short(v["night"].as_str()?))))
                .collect();
            if !reused.is_empty() {
                let _ = write!(h, "<p class=meta>promoted scores reused: {}</p>", esc(&reused.join(", ")));
            }
        }
        let times: Vec<String> = stages.iter().map(|s| format!("{} {:.0} s", s.stage, (s.finished_ms - s.started_ms) as f64 / 1e3)).collect();
        let _ = write!(h, "<p class=meta>stage times: {}</p>", esc(&times.join(" · ")));
        // Fallbacks the night's runs took instead of failing (`memory show RUN` has each one).
        if !warnings.is_empty() {
            let by: Vec<String> = warnings.iter().map(|(s, k)| format!("{s} {k}")).collect();
            let _ = write!(h, "<p class=meta><b>run warnings</b>: {}</p>", esc(&by.join(" · ")));
        }
    }
    h
}

/// The curriculum's choices (family, level, items, why) beside tonight's unhinted rollout
/// results at that family and level, and the users' tasks tried again, by name.
fn curriculum_html(c: &serde_json::Value, rollouts: Option<&serde_json::Value>) -> String {
    let mut h = String::new();
    let groups = rollouts.and_then(|r| r["groups"].as_array()).cloned().unwrap_or_default();
    let tally = |family: &str, level: &serde_json::Value| {
        let mut t = Tally::default();
        groups.iter().filter(|g| g["family"] == family && &g["level"] == level).for_each(|g| t.add(Tally::of_group(g)));
        (t.successes, t.attempts)
    };
    if let Some(picks) = c["picks"].as_array() {
        h.push_str("<table><tr><th>family</th><th>level</th><th>items</th><th>why</th><th>tonight's rollouts</th></tr>");
        for p in picks {
            let family = p["family"].as_str().unwrap_or("");
            let (passed, n) = tally(family, &p["level"]);
            let tonight = if n == 0 { "-".to_owned() } else { format!("{passed}/{n}") };
            let _ = write!(h, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", esc(family), p["level"], p["items"], esc(p["reason"].as_str().unwrap_or("")), tonight);
        }
        h.push_str("</table>");
    }
    let users: Vec<String> = c["user_tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| {
            let t = groups.iter().find(|g| g["item"] == u["item"]).map(Tally::of_group).unwrap_or_default();
            let (passed, n) = (t.successes, t.attempts);
            format!("{} \"{}\": {passed}/{n}", short(u["task_id"].as_str().unwrap_or("")), trim(u["prompt"].as_str().unwrap_or(""), 80))
        })
        .collect();
    if !users.is_empty() {
        let _ = write!(h, "<p class=meta>users' failed tasks tried again: {}</p>", esc(&users.join(" · ")));
    }
    h
}

/// A readable id: UUIDv7s made close together share their first (time) digits, so keep the
/// first eight and the last four.
fn short(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() <= 13 {
        return id.to_owned();
    }
    format!("{}…{}", chars[..8].iter().collect::<String>(), chars[chars.len() - 4..].iter().collect::<String>())
}

/// HTML-escapes text.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Depth of every LADDER task: 1 under a seed, one more per variant level.
fn ladder_depths(tasks: &[Task]) -> HashMap<&str, u32> {
    let parent: HashMap<&str, Option<&str>> = tasks.iter().map(|t| (t.id.as_str(), t.spec.parent_id.as_deref())).collect();
    let mut depths = HashMap::new();
    for t in tasks {
        let (mut d, mut cur) = (1, t.spec.parent_id.as_deref());
        while let Some(p) = cur.filter(|p| parent.contains_key(p)) {
            d += 1;
            cur = parent[p];
            if d > 64 {
                break;
            }
        }
        depths.insert(t.id.as_str(), d);
    }
    depths
}

fn transcript_html(t: &Transcript) -> String {
    let mut h = String::new();
    let run = &t.run;
    let _ = write!(
        h,
        "<details id=\"run-{}\"><summary>{} &middot; {} &middot; {} &middot; reward {}</summary><div class=transcript><p><b>task</b> {}</p>",
        esc(&run.id),
        short(&run.id),
        esc(&t.task.spec.family),
        run.status.as_str(),
        run.reward.map_or("-".into(), |x| format!("{x}")),
        esc(&trim(&t.task.spec.prompt, 2000))
    );
    for s in &t.steps {
        let _ = write!(h, "<div class=step><span class=kind>{} {}</span>", s.idx, s.data.kind.as_str());
        for (label, text) in [("input", &s.data.input), ("output", &s.data.output), ("stdout", &s.data.stdout), ("stderr", &s.data.stderr)] {
            if !text.is_empty() && !(s.data.kind.as_str() == "model_turn" && label == "input") {
                let _ = write!(h, "<pre class={label}>{}</pre>", esc(&trim(text, 4000)));
            }
        }
        h.push_str("</div>");
    }
    let _ = write!(h, "<p><b>answer</b> {}</p></div></details>", esc(run.final_answer.as_deref().unwrap_or("(none)")));
    h
}

fn trim(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(n).collect();
    t.push_str(" [...]");
    t
}

fn plot_err(e: impl std::fmt::Display) -> Error {
    Error::Plot(e.to_string())
}

/// Latest pass@1 per (suite, adapter), as grouped bars.
fn eval_chart(evals: &[EvalRecord], name: &dyn Fn(&Option<String>) -> String) -> Result<String> {
    let mut latest: BTreeMap<(String, String), f64> = BTreeMap::new();
    for e in evals {
        let p1 = e.pass_at_k.get(&1).copied().unwrap_or(e.passed as f64 / e.n.max(1) as f64);
        latest.insert((e.suite.clone(), name(&e.adapter_id)), p1);
    }
    let suites: Vec<String> = latest.keys().map(|k| k.0.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let adapters: Vec<String> = latest.keys().map(|k| k.1.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("pass@1 (latest eval) by suite and adapter", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..suites.len() as f64, 0f64..1.05f64)
            .map_err(plot_err)?;
        let labels = suites.clone();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(suites.len() * 2 + 1)
            .x_label_formatter(&move |x| {
                let i = x.floor() as usize;
                if (x - i as f64 - 0.5).abs() < 0.26 { labels.get(i).cloned().unwrap_or_default() } else { String::new() }
            })
            .y_desc("pass@1")
            .draw()
            .map_err(plot_err)?;
        let width = 0.8 / adapters.len().max(1) as f64;
        for (ai, adapter) in adapters.iter().enumerate() {
            let color = PALETTE[ai % PALETTE.len()];
            let bars: Vec<Rectangle<(f64, f64)>> = suites
                .iter()
                .enumerate()
                .filter_map(|(si, s)| {
                    let v = *latest.get(&(s.clone(), adapter.clone()))?;
                    let x0 = si as f64 + 0.1 + ai as f64 * width;
                    Some(Rectangle::new([(x0, 0.0), (x0 + width * 0.95, v.max(0.004))], color.filled()))
                })
                .collect();
            chart
                .draw_series(bars)
                .map_err(plot_err)?
                .label(adapter.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.9)).border_style(BLACK).position(SeriesLabelPosition::UpperRight).draw().map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// Reward per training step, one line per adapter.
fn curve_chart(curves: &[(String, Vec<CurvePoint>)]) -> Result<String> {
    line_chart(curves, "mean reward per training step", "step", "reward")
}

/// Lines of (x, y) points, one per named series.
fn line_chart(curves: &[(String, Vec<CurvePoint>)], caption: &str, x_desc: &str, y_desc: &str) -> Result<String> {
    let max_step = curves.iter().flat_map(|(_, c)| c.iter().map(|p| p.step)).fold(1.0, f64::max);
    let max_reward = curves.iter().flat_map(|(_, c)| c.iter().map(|p| p.reward)).fold(1.0, f64::max);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 320)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(34)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..max_step + 1.0, 0f64..max_reward * 1.05)
            .map_err(plot_err)?;
        // Steps, generations and nights are whole numbers: label only those.
        chart.configure_mesh().x_desc(x_desc).y_desc(y_desc).x_label_formatter(&|x| if x.fract() == 0.0 { format!("{x:.0}") } else { String::new() }).draw().map_err(plot_err)?;
        for (i, (name, c)) in curves.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart.draw_series(c.iter().map(|p| Circle::new((p.step, p.reward), 3, color.filled()))).map_err(plot_err)?;
            chart
                .draw_series(LineSeries::new(c.iter().map(|p| (p.step, p.reward)), color.stroke_width(2)))
                .map_err(plot_err)?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.9)).border_style(BLACK).position(SeriesLabelPosition::LowerRight).draw().map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

/// Variants per depth (bars) and the solved fraction (line), LADDER's shape at a glance.
fn ladder_chart(by_depth: &BTreeMap<u32, (usize, usize, usize)>) -> Result<String> {
    let max_depth = by_depth.keys().copied().max().unwrap_or(1) as f64;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("LADDER: fraction of variants solved at least once, by depth", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(34)
            .y_label_area_size(44)
            .build_cartesian_2d(0.5f64..max_depth + 0.5, 0f64..1.05f64)
            .map_err(plot_err)?;
        chart.configure_mesh().x_desc("depth (1 = a seed's direct variants)").y_desc("solved").x_labels(by_depth.len() + 1).x_label_formatter(&|x| if x.fract() == 0.0 { format!("{x:.0}") } else { String::new() }).draw().map_err(plot_err)?;
        let bars = by_depth.iter().map(|(d, (_, tried, solved))| {
            let f = *solved as f64 / (*tried).max(1) as f64;
            Rectangle::new([(f64::from(*d) - 0.3, 0.0), (f64::from(*d) + 0.3, f.max(0.004))], PALETTE[2].filled())
        });
        chart.draw_series(bars).map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(svg)
}

const HEAD: &str = r#"<!doctype html>
<html lang=en><head><meta charset=utf-8><title>autodidact report</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }
h1 { margin-bottom: 0; } .meta { color: #666; margin-top: .2em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; } th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; }
th { background: #f5f5f5; } .empty { color: #888; font-style: italic; }
details { border: 1px solid #ddd; margin: .4em 0; padding: .3em .6em; } summary { cursor: pointer; }
pre { background: #f8f8f8; padding: .5em; overflow-x: auto; white-space: pre-wrap; max-height: 24em; }
pre.stderr { background: #fff3f3; } .kind { color: #555; font-weight: 600; }
svg { max-width: 100%; height: auto; }
</style></head><body>
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn suite_curves_start_at_the_first_nights_promoted_score_and_follow_each_candidate() {
        let n1 = json!({"evidence": [
            {"suite": "arith", "promoted_pass_at_1": 0.1, "candidate_pass_at_1": 0.4},
            {"suite": "toy", "promoted_pass_at_1": 0.0, "candidate_pass_at_1": 1.0},
        ]});
        let n2 = json!({"evidence": [{"suite": "arith", "promoted_pass_at_1": 0.4, "candidate_pass_at_1": 0.5}]});
        let no_evidence = json!({"decision": "rejected"});
        let lines = suite_curves_across_nights(&[&n1, &n2, &no_evidence]);
        let pts = |i: usize| lines[i].1.iter().map(|p| (p.step, p.reward)).collect::<Vec<_>>();
        assert_eq!(lines.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(), ["arith", "toy"]);
        assert_eq!(pts(0), [(0.0, 0.1), (1.0, 0.4), (2.0, 0.5)]);
        assert_eq!(pts(1), [(0.0, 0.0), (1.0, 1.0)]);
    }
}
