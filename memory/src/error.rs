//! The crate's one error type. Variants carry the context a person needs to act on them: the
//! URL or path involved, and what the store was doing.

use std::path::PathBuf;

/// A boxed error from a dependency (sqlx, tantivy), kept out of the public signatures.
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL is neither `sqlite:` nor `postgres://`.
    #[error("unsupported database URL {url:?}: use sqlite://PATH or postgres://USER@HOST:PORT/DB")]
    UnsupportedUrl {
        /// The URL given.
        url: String,
    },
    /// The database could not be opened or reached.
    #[error("cannot open the trajectory store at {url}: {source}")]
    Open {
        /// The URL, without its password.
        url: String,
        /// The driver's error.
        source: Source,
    },
    /// The SQLite file exists but is not a readable database.
    #[error(
        "the trajectory store {} is corrupt or is not a SQLite database ({detail}); \
         move it aside to start a new store, or restore it from a backup",
        path.display()
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        detail: String,
    },
    /// Applying the versioned migrations failed.
    #[error("migrating the trajectory store at {url} failed: {source}")]
    Migrate {
        /// The URL, without its password.
        url: String,
        /// The migrator's error.
        source: Source,
    },
    /// A query failed.
    #[error("trajectory store: {context}: {source}")]
    Query {
        /// What the store was doing.
        context: String,
        /// The driver's error.
        source: Source,
    },
    /// An operation failed, and the filesystem holding the store is full or read-only.
    #[error("{note} ({})", path.display())]
    Storage {
        /// The folder holding the store.
        path: PathBuf,
        /// What is wrong with its filesystem, and what to do.
        note: String,
        /// The error the operation gave.
        source: Box<Error>,
    },
    /// The search index could not be used.
    #[error("search index at {}: {context}: {source}", path.display())]
    Index {
        /// The index folder.
        path: PathBuf,
        /// What the store was doing.
        context: &'static str,
        /// tantivy's error.
        source: Source,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The background writer has stopped (its database failed, or the store was closed).
    #[error("the trajectory store's writer has stopped")]
    WriterClosed,
    /// A lookup found nothing.
    #[error("no {what} with id {id}")]
    NotFound {
        /// `run`, `task`, `adapter`...
        what: &'static str,
        /// The id looked up.
        id: String,
    },
    /// A value read or given is not valid.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// What was invalid.
        what: &'static str,
        /// Why.
        detail: String,
    },
}

impl Error {
    pub(crate) fn query(context: impl Into<String>, e: sqlx::Error) -> Error {
        Error::Query {
            context: context.into(),
            source: Box::new(e),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
