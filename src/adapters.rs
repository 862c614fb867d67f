//! Adapter helpers shared by commands: applying `--adapter FILE|promoted|none` to a model
//! with the registry in memory, registering a new adapter, and the SHA-256 it is registered
//! under.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use autodidact_memory::{NewAdapter, Store};
use autodidact_runtime::model::LanguageModel;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Applies `--adapter` to `model` and returns the registered adapter's id, if any. A file that
/// is not registered yet is registered as a `candidate` (by its SHA-256).
pub(crate) async fn apply(which: &str, model: &Arc<dyn LanguageModel>, store: &Store, quiet: bool) -> Result<Option<String>> {
    let (id, path) = match which {
        "none" => return Ok(None),
        "promoted" => match store.promoted_adapter().await? {
            Some(a) => (a.id, PathBuf::from(a.spec.path)),
            None => {
                if !quiet {
                    eprintln!("note: no adapter is promoted yet; evaluating the base model");
                }
                return Ok(None);
            }
        },
        file => {
            let path = PathBuf::from(file);
            let sha = sha256_file(&path)?;
            let known = store.adapters().await?.into_iter().find(|a| a.spec.sha256 == sha);
            let id = match known {
                Some(a) => a.id,
                None => {
                    let new = NewAdapter { parent_id: None, path: path.canonicalize()?.display().to_string(), sha256: sha, metrics: serde_json::json!({"registered_by": "eval"}) };
                    store.writer().register_adapter(new).await?.committed().await?
                }
            };
            (id, path)
        }
    };
    let handle = model.load_adapter(&path).await.with_context(|| format!("cannot load adapter {}", path.display()))?;
    model.set_adapter(Some((handle, 1.0))).await?;
    Ok(Some(id))
}

/// Registers a freshly written adapter as a `candidate` under `parent_id`, after checking that
/// llama.cpp loads it: a file the runtime would refuse never enters the registry. Returns the
/// adapter's id and SHA-256.
pub(crate) async fn register_checked(store: &Store, model: &dyn LanguageModel, path: &Path, parent_id: Option<String>, metrics: Value) -> Result<(String, String)> {
    let handle = model.load_adapter(path).await.with_context(|| format!("llama.cpp refused the adapter {}", path.display()))?;
    model.unload_adapter(handle).await?;
    let sha256 = sha256_file(path)?;
    let new = NewAdapter { parent_id, path: path.display().to_string(), sha256: sha256.clone(), metrics };
    let id = store.writer().register_adapter(new).await?.committed().await?;
    Ok((id, sha256))
}

/// The hex SHA-256 of a file, as adapters are registered under.
pub(crate) fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read adapter {}", path.display()))?;
    Ok(Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}
