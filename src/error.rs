//! The crate's one error type. It knows nothing about HTTP: `api::error`
//! maps every variant to a status and a machine-readable code in one
//! exhaustive `match`.

use std::path::PathBuf;

/// Everything that can go wrong inside recstore.
///
/// Variants carry structured fields so the HTTP layer (and tests) can name
/// the offending field without parsing messages.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field failed validation. `field` is a JSON path such as
    /// `items[3].vector`.
    #[error("{field}: {reason}")]
    InvalidField { field: String, reason: String },

    /// A vector does not have the catalog's dimension.
    #[error("{field}: expected a vector of dimension {expected}, got {got}")]
    WrongDimension {
        field: String,
        expected: usize,
        got: usize,
    },

    /// The catalog does not exist.
    #[error("catalog {name:?} does not exist")]
    CatalogNotFound { name: String },

    /// The catalog exists but is still building its index after a start.
    #[error("catalog {name:?} is still loading")]
    CatalogLoading { name: String },

    /// `PUT` of a catalog whose stored configuration differs.
    #[error("catalog {name:?} already exists with a different configuration: {difference}")]
    CatalogConfigConflict { name: String, difference: String },

    /// The request conflicts with what exists (a backup name taken, a
    /// backup already running, a restore target that is not empty).
    #[error("{field}: {reason}")]
    Conflict { field: String, reason: String },

    /// The item does not exist in the catalog.
    #[error("item {id:?} does not exist")]
    ItemNotFound { id: String },

    /// The experiment does not exist in the catalog.
    #[error("experiment {name:?} does not exist")]
    ExperimentNotFound { name: String },

    /// No impression has this recommendation id (never made, dropped
    /// from a full queue, or past the retention).
    #[error("recommendation {id:?} is not recorded")]
    RecommendationNotFound { id: String },

    /// The user does not exist in the catalog.
    #[error("user {id:?} does not exist")]
    UserNotFound { id: String },

    /// The request is well-formed but cannot be answered for this item
    /// (for example upsell from an item without a price).
    #[error("{field}: {reason}")]
    Unprocessable { field: String, reason: String },

    /// RocksDB refused an operation (I/O error, full disk, read-only folder).
    #[error("storage error: {0}")]
    Storage(#[from] rocksdb::Error),

    /// Bytes on disk could not be decoded: a bug or a damaged store.
    #[error("corrupt record in {what}: {reason}")]
    Corruption { what: String, reason: String },

    /// A file-system operation outside RocksDB failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The store was opened read-only (its folder is on a read-only file
    /// system): reads work, writes are refused.
    #[error("the data directory is read-only, writes are refused: {reason}")]
    ReadOnly { reason: String },

    /// The storage writer thread is gone (the server is shutting down).
    #[error("the store is shutting down")]
    ShuttingDown,
}

impl Error {
    /// Shorthand for [`Error::InvalidField`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidField {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
