//! Errors of the decoding engine, each naming the file, field or value at fault.

use std::path::PathBuf;

/// Everything that can go wrong while fetching, loading or running a base model.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// An I/O failure on a named path.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A model file that is truncated, corrupt or of an unexpected format.
    #[error("{path}: invalid model file: {reason}")]
    InvalidModel { path: PathBuf, reason: String },
    /// A required metadata key is missing or has the wrong type.
    #[error("model metadata `{key}`: {reason}")]
    Metadata { key: String, reason: String },
    /// An architecture this backend does not implement.
    #[error(
        "unsupported architecture `{arch}` for the {backend} backend (supported: {supported})"
    )]
    UnsupportedArch {
        arch: String,
        backend: &'static str,
        supported: &'static str,
    },
    /// Tokenizer construction or use failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The chat template failed to parse or render.
    #[error("chat template: {0}")]
    ChatTemplate(String),
    /// The default model could not be obtained.
    #[error("fetching the default model: {0}")]
    Fetch(String),
    /// A request the model cannot serve (sequence too long, unknown sequence, bad token id, …).
    #[error("{0}")]
    Request(String),
    /// A tensor-library error.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// A sampling error while decoding.
    #[error(transparent)]
    Sampling(#[from] adasamp_sampling::SamplingError),
}

/// Result type of the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Wraps an `std::io::Error` with its path.
pub fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> EngineError {
    let path = path.into();
    move |source| EngineError::Io { path, source }
}
