//! Errors of the decoding engine, each naming the file, field or value at fault.

use std::path::PathBuf;

use crate::files::FileError;
use crate::model::{Backend, Capability, SeqId};

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
    /// A sequence id that is not live (never created, or freed).
    #[error("unknown sequence {seq}")]
    UnknownSequence { seq: SeqId },
    /// Every sequence the model can hold at once is in use.
    #[error("all {max} sequences of the model are in use")]
    NoFreeSequence { max: usize },
    /// A step would make a sequence longer than the model's maximum.
    #[error("sequence {seq}: {len} positions exceed the maximum sequence length {max}")]
    ContextOverflow { seq: SeqId, len: usize, max: usize },
    /// The backend's KV cache has no room for a step of `tokens` tokens.
    #[error("no room in the KV cache for a step of {tokens} tokens")]
    KvCacheFull { tokens: usize },
    /// A block lacks positions an earlier early-exit forward skipped: the sequence must be
    /// truncated to `cached` positions before that block runs again.
    #[error(
        "sequence {seq}: block {block} caches {cached} of the sequence's {len} positions (an \
         early-exit step skipped it); truncate the sequence to {cached} positions first"
    )]
    IncompleteCache {
        seq: SeqId,
        block: usize,
        cached: usize,
        len: usize,
    },
    /// An optional model feature the backend does not implement.
    #[error("the {backend} backend does not provide {capability}")]
    Unsupported {
        backend: Backend,
        capability: Capability,
    },
    /// The backend was not compiled into this build.
    #[error("this build has no {backend} backend")]
    BackendNotBuilt { backend: Backend },
    /// A GPU was asked for but this build has no CUDA support (the `cuda` feature).
    #[error("device cuda:{ordinal}: this build has no CUDA support (build with the `cuda` feature, docs/gpu.md)")]
    CudaNotBuilt { ordinal: usize },
    /// Two models that must share a vocabulary (optimal sampling) do not.
    #[error("θ's vocabulary has {theta} tokens but the teacher's has {teacher}: the two models must share one vocabulary")]
    VocabMismatch { theta: usize, teacher: usize },
    /// Speculative decoding: the draft model's vocabulary differs from the target's.
    #[error("the target model's vocabulary has {target} tokens but the draft model's has {draft}: speculative decoding needs one shared vocabulary")]
    DraftVocabMismatch { target: usize, draft: usize },
    /// A request field with a value the model cannot serve.
    #[error("{field} = {value}: {reason}")]
    BadRequest {
        field: &'static str,
        value: String,
        reason: String,
    },
    /// The backend library failed a call it should have served.
    #[error("{backend}: {reason}")]
    BackendFailure { backend: Backend, reason: String },
    /// A tensor-library error.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// A sampling error while decoding (boxed: the sampling core's errors carry several names).
    #[error(transparent)]
    Sampling(Box<adasamp_sampling::SamplingError>),
}

impl From<adasamp_sampling::SamplingError> for EngineError {
    fn from(e: adasamp_sampling::SamplingError) -> Self {
        EngineError::Sampling(Box::new(e))
    }
}

/// Result type of the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Wraps an `std::io::Error` with its path.
pub fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> EngineError {
    let path = path.into();
    move |source| EngineError::Io { path, source }
}

/// A [`EngineError::BadRequest`] naming the field, its value and what is wrong with it.
pub fn bad_request(
    field: &'static str,
    value: impl std::fmt::Display,
    reason: impl Into<String>,
) -> EngineError {
    EngineError::BadRequest {
        field,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// A file helper's error as an I/O error naming its path.
impl From<FileError> for EngineError {
    fn from(e: FileError) -> Self {
        let path = e.path().to_path_buf();
        let source = match e {
            FileError::Io { action, source, .. } => {
                std::io::Error::new(source.kind(), format!("cannot {action}: {source}"))
            }
            other => std::io::Error::other(other.to_string()),
        };
        EngineError::Io { path, source }
    }
}
