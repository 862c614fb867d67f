//! Python tools through pyo3: public functions become tools with schemas from type hints and
//! descriptions from docstrings; calls return values, exceptions become tool errors.

use std::path::PathBuf;

use autodidact_runtime::tools::ToolError;
use serde_json::json;

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/python-tools/tools.py")
}

#[tokio::test(flavor = "multi_thread")]
async fn public_functions_become_tools_with_schemas() {
    let tools = autodidact_runtime::pytools::load(&example()).unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name()).collect();
    assert_eq!(names, vec!["circle_area", "word_count"]);
    let wc = &tools[1];
    assert_eq!(wc.description(), "Number of words in a text; with unique=True, of distinct words.");
    assert_eq!(wc.schema(), json!({"type": "object", "properties": {"text": {"type": "string"}, "unique": {"type": "boolean"}}, "required": ["text"]}));
    assert_eq!(wc.call(json!({"text": "a b a"})).await.unwrap(), json!(3));
    assert_eq!(wc.call(json!({"text": "a b a", "unique": true})).await.unwrap(), json!(2));
    let area = tools[0].call(json!({"radius": 2.0})).await.unwrap().as_f64().unwrap();
    assert!((area - 12.566370614359172).abs() < 1e-9);
}

#[tokio::test(flavor = "multi_thread")]
async fn exceptions_are_tool_errors_and_bad_files_are_clear() {
    let dir = std::env::temp_dir().join(format!("autodidact-pytools-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("boom.py");
    std::fs::write(&f, "def boom(x: int) -> int:\n    \"\"\"Fails.\"\"\"\n    raise ValueError(f'bad {x}')\n").unwrap();
    let tools = autodidact_runtime::pytools::load(&f).unwrap();
    assert_eq!(tools[0].call(json!({"x": 3})).await.unwrap_err(), ToolError::Failed("ValueError: bad 3".into()));
    let e = tools[0].call(json!({"y": 3})).await.unwrap_err();
    assert!(matches!(&e, ToolError::Failed(m) if m.starts_with("TypeError")), "{e:?}");
    let bad = dir.join("syntax.py");
    std::fs::write(&bad, "def broken(:\n").unwrap();
    let e = autodidact_runtime::pytools::load(&bad).err().unwrap().to_string();
    assert!(e.contains("syntax.py") && e.contains("SyntaxError"), "{e}");
    let e = autodidact_runtime::pytools::load(&dir.join("missing.py")).err().unwrap().to_string();
    assert!(e.contains("no such file"), "{e}");
}
