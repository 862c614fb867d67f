//! The adapter registry's operations: applying `--adapter FILE|promoted|none` to a model,
//! registering a freshly written adapter (after llama.cpp has loaded it), promoting and
//! rolling back. Every promoted adapter holds all updates promoted before it merged into one
//! file (one generation), so rolling back to any earlier generation is promoting it again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use autodidact_memory::{Adapter, AdapterStatus, NewAdapter, Store};
use autodidact_runtime::model::LanguageModel;
use serde_json::Value;

use crate::error::{Context, Error, Result, io};

/// Applies `which` (`none`, `promoted`, or an adapter file) to `model` and returns the
/// registered adapter's id, if any. A file that is not registered yet is registered as a
/// `candidate` (by its SHA-256). `note` hears that no adapter is promoted yet.
pub async fn apply(which: &str, model: &Arc<dyn LanguageModel>, store: &Store, note: impl FnOnce(&str)) -> Result<Option<String>> {
    let (id, path) = match which {
        "none" => return Ok(None),
        "promoted" => match store.promoted_adapter().await? {
            Some(a) => {
                verify(&a)?;
                (a.id, PathBuf::from(a.spec.path))
            }
            None => {
                note("no adapter is promoted yet; evaluating the base model");
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
                    let full = path.canonicalize().map_err(io("cannot resolve", &path))?;
                    let new = NewAdapter { parent_id: None, path: full.display().to_string(), sha256: sha, metrics: serde_json::json!({"registered_by": "eval"}) };
                    store.writer().register_adapter(new).await?.committed().await?
                }
            };
            (id, path)
        }
    };
    let handle = model.load_adapter(&path).await.context_with(|| format!("cannot load adapter {}", path.display()))?;
    model.set_adapter(Some((handle, 1.0))).await?;
    Ok(Some(id))
}

/// Checks a registered adapter's file against the SHA-256 it was registered with, so a damaged
/// or replaced file is refused with both digests instead of being served.
pub fn verify(a: &Adapter) -> Result<()> {
    autodidact_runtime::model::check_digest(Path::new(&a.spec.path), &a.spec.sha256)
        .map_err(|why| Error::Invalid(format!("adapter {} ({}): {why}; `autodidact adapters rollback` returns to the generation before it", a.id, a.spec.path)))
}

/// Registers a freshly written adapter as a `candidate` under `parent_id`, after checking that
/// llama.cpp loads it: a file the runtime would refuse never enters the registry. Returns the
/// adapter's id and SHA-256.
pub async fn register_checked(store: &Store, model: &dyn LanguageModel, path: &Path, parent_id: Option<String>, metrics: Value) -> Result<(String, String)> {
    let handle = model.load_adapter(path).await.context_with(|| format!("llama.cpp refused the adapter {}", path.display()))?;
    model.unload_adapter(handle).await?;
    // A stage killed after registering and then run again writes the same file anew: the row
    // of the killed attempt no longer describes it, so it is retired, never left dangling.
    let path_text = path.display().to_string();
    for stale in store.adapters().await?.into_iter().filter(|a| a.spec.path == path_text && a.status == AdapterStatus::Candidate) {
        store.writer().set_adapter_status(&stale.id, AdapterStatus::Retired).await?.committed().await?;
    }
    let sha256 = sha256_file(path)?;
    let new = NewAdapter { parent_id, path: path.display().to_string(), sha256: sha256.clone(), metrics };
    let id = store.writer().register_adapter(new).await?.committed().await?;
    Ok((id, sha256))
}

/// The hex SHA-256 of a file, as adapters are registered under.
pub fn sha256_file(path: &Path) -> Result<String> {
    autodidact_runtime::model::sha256_file(path).map_err(io("cannot read adapter", path))
}

/// An adapter's generation (from its metrics), or `-`.
pub fn generation(a: &Adapter) -> String {
    a.spec.metrics["generation"].as_u64().map_or("-".into(), |g| g.to_string())
}

/// The adapter whose id starts with `id`; an error unless exactly one does.
pub fn find<'a>(adapters: &'a [Adapter], id: &str) -> Result<&'a Adapter> {
    let hits: Vec<&Adapter> = adapters.iter().filter(|a| a.id.starts_with(id)).collect();
    match hits.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::Invalid(format!("no adapter id starts with {id:?}; see `autodidact adapters list`"))),
        _ => Err(Error::Invalid(format!("{id:?} matches {} adapters; give more of the id", hits.len()))),
    }
}

/// Makes the adapter `id` (or a unique prefix of it) the promoted one; the one promoted before
/// is retired. Returns it.
pub async fn promote(store: &Store, id: &str) -> Result<Adapter> {
    let adapters = store.adapters().await?;
    let a = find(&adapters, id)?.clone();
    store.writer().set_adapter_status(&a.id, AdapterStatus::Promoted).await?.committed().await?;
    Ok(a)
}

/// What [`rollback`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollback {
    /// The adapter that was promoted.
    pub from: String,
    /// Its parent, now promoted; `None`: the base model is served.
    pub to: Option<String>,
}

/// Goes back one generation: promotes the promoted adapter's parent, or retires it when it has
/// none (the base model is then served).
pub async fn rollback(store: &Store) -> Result<Rollback> {
    let adapters = store.adapters().await?;
    let Some(current) = adapters.iter().find(|a| a.status == AdapterStatus::Promoted) else {
        return Err(Error::Invalid("no adapter is promoted: the base model is already served".into()));
    };
    match &current.spec.parent_id {
        Some(parent) => store.writer().set_adapter_status(parent, AdapterStatus::Promoted).await?.committed().await?,
        None => store.writer().set_adapter_status(&current.id, AdapterStatus::Retired).await?.committed().await?,
    }
    Ok(Rollback { from: current.id.clone(), to: current.spec.parent_id.clone() })
}
