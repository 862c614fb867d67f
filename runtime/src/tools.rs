//! Domain tools: host functions the agent's code calls as `tools.NAME(...)`.
//!
//! A [`Tool`] is a name, a description, a JSON schema for its arguments and an async `call`.
//! Tools reach the guest through the sandbox's host-tool bridge, behind the `[tools]` policy:
//! an allow list (deny by default), a cap on calls per tool per run, and a deadline per call.
//! A tool's failure is data for the model (`ToolError`), never an `Err` of the run.
//!
//! Built in: [`MemorySearch`] (`memory_search(query, k)`), which searches past runs and
//! experiences. Python tools (`--tools FILE.py`) come from [`crate::pytools`].

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};

pub use autodidact_sandbox::ToolError;

/// A host function the agent may call.
#[async_trait]
pub trait Tool: Send + Sync {
    /// The name the guest calls it by (`tools.NAME`).
    fn name(&self) -> &str;
    /// One line for the system prompt and the guest's docstring.
    fn description(&self) -> &str;
    /// A JSON schema for the arguments object.
    fn schema(&self) -> Value;
    /// Runs the tool. Failures are answered to the guest as `ToolError`s.
    async fn call(&self, args: Value) -> Result<Value, ToolError>;
}

/// `memory_search(query, k=5)`: past tasks, steps and lessons that match `query`.
pub struct MemorySearch {
    store: Arc<autodidact_memory::Store>,
}

impl MemorySearch {
    /// A search tool over `store`.
    pub fn new(store: Arc<autodidact_memory::Store>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl Tool for MemorySearch {
    fn name(&self) -> &str {
        "memory_search"
    }
    fn description(&self) -> &str {
        "memory_search(query, k=5): search past tasks, steps and lessons; returns a list of {kind, id, preview}."
    }
    fn schema(&self) -> Value {
        json!({"type": "object", "properties": {"query": {"type": "string"}, "k": {"type": "integer"}}, "required": ["query"], "additionalProperties": false})
    }
    async fn call(&self, args: Value) -> Result<Value, ToolError> {
        let query = args["query"].as_str().unwrap_or_default();
        let k = args["k"].as_u64().unwrap_or(5).clamp(1, 50) as usize;
        let hits = self
            .store
            .search(query, &autodidact_memory::SearchFilters::default(), k)
            .await
            .map_err(|e| ToolError::Failed(e.to_string()))?;
        Ok(Value::Array(
            hits.into_iter()
                .map(|h| json!({"kind": h.kind.as_str(), "id": h.id, "preview": h.preview}))
                .collect(),
        ))
    }
}
