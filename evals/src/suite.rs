//! The suite format: one JSON object per line.
//!
//! ```json
//! {"id": "a-1", "family": "arith", "prompt": "Compute 2+2", "answer": "4", "verifier": "numeric"}
//! {"id": "i-1", "family": "integrals", "prompt": "...", "answer": "x**2/2",
//!  "verifier": "python", "check": "def check(answer: str) -> bool: ...", "split": "train"}
//! ```
//!
//! `context` (a string bound as `context` in the REPL) and `split` (`eval` by default) are
//! optional, and so are `parent_id` (the memory task a LADDER variant came from), `hint` (a
//! partial-solution prefix the first reply starts with; train items only) and `level` (the
//! difficulty within the family, 1 the easiest) and `solution` (a worked reply in the agent's
//! protocol, which the nightly's `reference` teacher may run on train items). `answer` may
//! be a JSON string or number. Unknown fields are ignored, so other
//! tools can annotate lines. Every error names the file and the line.

use std::collections::HashSet;
use std::path::Path;

use autodidact_memory::Split;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::{Error, Result};

/// How an answer is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifierKind {
    /// The last number in the answer, commas removed, equals `answer` to 1e-6 relative.
    Numeric,
    /// Equal after trimming and case-folding.
    Exact,
    /// `answer` occurs in the agent's answer, case-insensitively.
    Contains,
    /// The item's `check(answer: str) -> bool` returns `True`, run in the sandbox.
    Python,
}

impl VerifierKind {
    /// Its name in suite files.
    pub fn name(self) -> &'static str {
        match self {
            VerifierKind::Numeric => "numeric",
            VerifierKind::Exact => "exact",
            VerifierKind::Contains => "contains",
            VerifierKind::Python => "python",
        }
    }

    /// The kind a suite file names, if it is one.
    pub fn parse(s: &str) -> Option<VerifierKind> {
        Some(match s {
            "numeric" => VerifierKind::Numeric,
            "exact" => VerifierKind::Exact,
            "contains" => VerifierKind::Contains,
            "python" => VerifierKind::Python,
            _ => return None,
        })
    }
}

/// One task of a suite.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Unique within the suite.
    pub id: String,
    /// The family it belongs to (reports break scores down by family).
    pub family: String,
    /// What the model is asked.
    pub prompt: String,
    /// The input bound as `context`, if any.
    pub context: Option<String>,
    /// The reference answer.
    pub answer: String,
    /// How answers are checked.
    pub verifier: VerifierKind,
    /// Python source defining `check(answer: str) -> bool`, for the `python` verifier.
    pub check: Option<String>,
    /// Train or eval.
    pub split: Split,
    /// The memory task this item is a LADDER variant of, if any.
    pub parent_id: Option<String>,
    /// A partial-solution prefix (Scaf-GRPO's hint): the agent's first reply starts with it.
    /// For train items only; the nightly adds it when a group had no success.
    pub hint: Option<String>,
    /// The difficulty level within its family (1 is the easiest); 0 when the family has no
    /// levels. The nightly curriculum tracks pass rates per family and level.
    pub level: u32,
    /// A worked solution: a reply in the agent's protocol (a ```` ```repl ```` block that ends
    /// with `FINAL(...)`). The nightly's `reference` teacher runs it through the agent on train
    /// items no attempt solved; only a verified run is trained on.
    pub solution: Option<String>,
}

impl Item {
    /// The item as one suite-file line (without the newline).
    pub fn to_line(&self) -> String {
        let mut v = json!({
            "id": self.id, "family": self.family, "prompt": self.prompt, "answer": self.answer,
            "verifier": self.verifier.name(), "split": self.split.as_str(),
        });
        if let Some(c) = &self.context {
            v["context"] = json!(c);
        }
        if let Some(c) = &self.check {
            v["check"] = json!(c);
        }
        if let Some(p) = &self.parent_id {
            v["parent_id"] = json!(p);
        }
        if let Some(h) = &self.hint {
            v["hint"] = json!(h);
        }
        if self.level > 0 {
            v["level"] = json!(self.level);
        }
        if let Some(s) = &self.solution {
            v["solution"] = json!(s);
        }
        v.to_string()
    }

    /// A user's task with an expected answer (`autodidact run --expect`, `serve`'s `expect`): a
    /// train item of family `user`, checked by `verifier` with no sandbox (numeric, exact or
    /// contains).
    pub fn user(prompt: &str, answer: &str, verifier: VerifierKind) -> Item {
        Item {
            id: String::new(),
            family: "user".into(),
            prompt: prompt.to_owned(),
            context: None,
            answer: answer.to_owned(),
            verifier,
            check: None,
            split: Split::Train,
            parent_id: None,
            hint: None,
            level: 0,
            solution: None,
        }
    }

    /// The item a stored task was made from, when its answer spec holds a verifier: the inverse
    /// of [`Item::answer_spec`]. The context is not stored, so it is `None`.
    pub fn from_task(task: &autodidact_memory::Task) -> Option<Item> {
        let spec = &task.spec.answer_spec;
        let verifier = spec["verifier"].as_str().and_then(VerifierKind::parse)?;
        Some(Item {
            id: spec["item_id"].as_str().filter(|id| !id.is_empty()).unwrap_or(&task.id).to_owned(),
            family: task.spec.family.clone(),
            prompt: task.spec.prompt.clone(),
            context: None,
            answer: spec["answer"].as_str().unwrap_or_default().to_owned(),
            verifier,
            check: spec["check"].as_str().map(str::to_owned),
            split: task.spec.split,
            parent_id: None,
            hint: None,
            level: spec["level"].as_u64().unwrap_or(0) as u32,
            solution: None,
        })
    }

    /// The answer and verifier as stored with the task in memory (the context is not).
    pub fn answer_spec(&self) -> Value {
        json!({"answer": self.answer, "verifier": self.verifier.name(), "check": self.check, "item_id": self.id, "level": self.level})
    }
}

/// A named list of items.
#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    /// The suite's name (a built-in name, or the file's stem).
    pub name: String,
    /// Its items in order.
    pub items: Vec<Item>,
}

impl Suite {
    /// Reads a suite file. The suite is named after the file's stem.
    pub fn load(path: &Path) -> Result<Suite> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
        let name = path.file_stem().map_or_else(|| "suite".to_owned(), |s| s.to_string_lossy().into_owned());
        Suite::parse(&name, &path.display().to_string(), &text)
    }

    /// Parses suite text; `file` names it in errors. Blank lines are skipped.
    pub fn parse(name: &str, file: &str, text: &str) -> Result<Suite> {
        let mut items = Vec::new();
        let mut seen = HashSet::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let err = |message: String| Error::Suite { file: file.to_owned(), line: i + 1, message };
            let v: Value = serde_json::from_str(line).map_err(|e| err(format!("not JSON: {e}")))?;
            let Value::Object(obj) = v else { return Err(err("a line must be a JSON object".into())) };
            let item = parse_item(&obj).map_err(err)?;
            if !seen.insert(item.id.clone()) {
                return Err(err(format!("duplicate id `{}`", item.id)));
            }
            items.push(item);
        }
        if items.is_empty() {
            return Err(Error::Suite { file: file.to_owned(), line: 0, message: "the suite has no items".into() });
        }
        Ok(Suite { name: name.to_owned(), items })
    }

    /// The suite as JSONL text.
    pub fn to_jsonl(&self) -> String {
        self.items.iter().map(|i| i.to_line() + "\n").collect()
    }

    /// The items of one split.
    pub fn split(mut self, split: Split) -> Suite {
        self.items.retain(|i| i.split == split);
        self
    }
}

fn parse_item(obj: &Map<String, Value>) -> Result<Item, String> {
    let text = |key: &str, required: bool| -> Result<Option<String>, String> {
        match obj.get(key) {
            None | Some(Value::Null) if !required => Ok(None),
            None | Some(Value::Null) => Err(format!("`{key}` is missing")),
            Some(Value::String(s)) if required && s.trim().is_empty() => Err(format!("`{key}` is empty")),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!("`{key}` must be a string, not {other}")),
        }
    };
    let id = text("id", true)?.unwrap_or_default();
    let family = text("family", true)?.unwrap_or_default();
    let prompt = text("prompt", true)?.unwrap_or_default();
    let context = text("context", false)?;
    let answer = match obj.get("answer") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        None | Some(Value::Null) => return Err("`answer` is missing".into()),
        Some(other) => return Err(format!("`answer` must be a string or a number, not {other}")),
    };
    let name = text("verifier", true)?.unwrap_or_default();
    let verifier = VerifierKind::parse(&name).ok_or_else(|| format!("unknown verifier `{name}` (numeric, exact, contains or python)"))?;
    let check = text("check", false)?;
    match (verifier, &check) {
        (VerifierKind::Python, None) => return Err("the python verifier needs a `check` field defining check(answer)".into()),
        (VerifierKind::Python, Some(c)) if !c.contains("def check") => return Err("`check` must define `check(answer: str) -> bool`".into()),
        (VerifierKind::Python, _) => {}
        (_, Some(_)) => return Err(format!("`check` is only for the python verifier, not `{name}`")),
        (_, None) => {}
    }
    let split = match text("split", false)?.as_deref() {
        None | Some("eval") => Split::Eval,
        Some("train") => Split::Train,
        Some(other) => return Err(format!("`split` must be `train` or `eval`, not `{other}`")),
    };
    let parent_id = text("parent_id", false)?;
    let hint = text("hint", false)?;
    let solution = text("solution", false)?;
    let level = match obj.get("level") {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) if n.as_u64().is_some_and(|l| l <= 100) => n.as_u64().unwrap_or(0) as u32,
        Some(other) => return Err(format!("`level` must be a whole number from 0 to 100, not {other}")),
    };
    if hint.is_some() && split == Split::Eval {
        return Err("`hint` is for train items only: a hinted eval item would not measure the model".into());
    }
    Ok(Item { id, family, prompt, context, answer, verifier, check, split, parent_id, hint, level, solution })
}
