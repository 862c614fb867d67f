//! Python domain tools, loaded into the host's own CPython through pyo3.
//!
//! `--tools path/to/tools.py` imports the file as a module. Each public function defined in
//! it (not imported into it, not starting with `_`) becomes a [`Tool`]:
//! - its name is the function's name;
//! - its description is the docstring's first paragraph;
//! - its JSON schema comes from the type hints (`int`, `float`, `str`, `bool`, `list`,
//!   `dict`; a parameter with a default is optional).
//!
//! Tool code runs on the host, outside the sandbox: it is the embedder's code, trusted like
//! any Rust tool, and reachable only through the `[tools]` allow list. Calls run on tokio's
//! blocking pool, holding the interpreter lock only while Python runs. An exception is the
//! guest's `ToolError`, with the exception's type and message.

use std::ffi::CString;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use pyo3::prelude::*;
use pyo3::types::PyModule;
use serde_json::Value;

use crate::tools::{Tool, ToolError};
use crate::{Error, Result};

/// The Python half: describes a module's functions and calls them with JSON in and out.
const LOADER: &str = r#"
import importlib.util, inspect, json, sys

_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean", list: "array", dict: "object"}
_modules = {}

def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    _modules[name] = module
    tools = []
    for fname, f in vars(module).items():
        if fname.startswith("_") or not inspect.isfunction(f) or f.__module__ != name:
            continue
        props, required = {}, []
        for p in inspect.signature(f).parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            origin = getattr(p.annotation, "__origin__", p.annotation)
            props[p.name] = {"type": _TYPES[origin]} if origin in _TYPES else {}
            if p.default is p.empty:
                required.append(p.name)
        doc = inspect.getdoc(f) or f"{fname}()"
        tools.append({
            "name": fname,
            "description": doc.split("\n\n")[0].replace("\n", " "),
            "schema": {"type": "object", "properties": props, "required": required},
        })
    return json.dumps(tools)

def call(module, fname, args_json):
    try:
        value = getattr(_modules[module], fname)(**json.loads(args_json))
        return json.dumps({"ok": True, "value": value}, default=str)
    except Exception as e:
        return json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"})
"#;

struct PyTool {
    module: String,
    name: String,
    description: String,
    schema: Value,
    loader: Arc<Py<PyModule>>,
}

/// Loads the public functions of the Python file at `path` as tools.
pub fn load(path: &Path) -> Result<Vec<Arc<dyn Tool>>> {
    let text = |e: PyErr| Error::Tools { path: path.to_owned(), reason: e.to_string() };
    let module = format!("autodidact_tools_{}", path.file_stem().and_then(|s| s.to_str()).unwrap_or("tools").replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
    if !path.is_file() {
        return Err(Error::Tools { path: path.to_owned(), reason: "no such file".into() });
    }
    Python::initialize();
    // One loader module for the process: it holds every tools module loaded so far.
    static LOADER_MODULE: std::sync::OnceLock<Arc<Py<PyModule>>> = std::sync::OnceLock::new();
    let loader = LOADER_MODULE
        .get_or_init(|| {
            Python::attach(|py| {
                let code = CString::new(LOADER).expect("no NUL in the loader");
                let m = PyModule::from_code(py, &code, c"autodidact_loader.py", c"autodidact_loader").expect("the loader is valid Python");
                Arc::new(m.unbind())
            })
        })
        .clone();
    Python::attach(|py| {
        let loader_ref = loader.bind(py);
        let described: String = loader_ref.getattr("load").and_then(|f| f.call1((path.to_string_lossy().into_owned(), module.clone()))).and_then(|r| r.extract()).map_err(text)?;
        let tools: Vec<Value> = serde_json::from_str(&described).map_err(|e| Error::Tools { path: path.to_owned(), reason: e.to_string() })?;
        Ok(tools
            .into_iter()
            .map(|t| {
                Arc::new(PyTool {
                    module: module.clone(),
                    name: t["name"].as_str().unwrap_or_default().to_owned(),
                    description: t["description"].as_str().unwrap_or_default().to_owned(),
                    schema: t["schema"].clone(),
                    loader: loader.clone(),
                }) as Arc<dyn Tool>
            })
            .collect())
    })
}

#[async_trait]
impl Tool for PyTool {
    fn name(&self) -> &str {
        &self.name
    }
    fn description(&self) -> &str {
        &self.description
    }
    fn schema(&self) -> Value {
        self.schema.clone()
    }
    async fn call(&self, args: Value) -> std::result::Result<Value, ToolError> {
        let (loader, module, name) = (self.loader.clone(), self.module.clone(), self.name.clone());
        let reply = tokio::task::spawn_blocking(move || {
            Python::attach(|py| -> PyResult<String> {
                loader.bind(py).getattr("call")?.call1((module, name, args.to_string()))?.extract()
            })
        })
        .await
        .map_err(|e| ToolError::Failed(format!("the Python tool crashed: {e}")))?
        .map_err(|e| ToolError::Failed(e.to_string()))?;
        let reply: Value = serde_json::from_str(&reply).map_err(|e| ToolError::Failed(e.to_string()))?;
        if reply["ok"] == Value::Bool(true) {
            Ok(reply["value"].clone())
        } else {
            Err(ToolError::Failed(reply["error"].as_str().unwrap_or("the tool failed").to_owned()))
        }
    }
}
