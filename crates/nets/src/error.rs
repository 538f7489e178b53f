//! The crate's error type. Every variant carries the context needed to act on it: the file, the
//! configuration field, the parameter name and the shapes involved.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, NetsError>;

/// Everything that can go wrong building, running, saving or loading a learned sampler.
#[derive(Debug, thiserror::Error)]
pub enum NetsError {
    /// A sampler configuration (YAML or `config.json`) could not be parsed; `origin` names the
    /// file (or "<string>"), `message` is the parser's message (it names unknown/missing fields
    /// and the line).
    #[error("cannot parse sampler config {origin}: {message}")]
    ConfigParse {
        /// The file (or `<string>`) the config came from.
        origin: String,
        /// The parser's message.
        message: String,
    },

    /// A configuration value is out of range: `field` = `value` violates `reason`.
    #[error("invalid sampler config: `{field}` = {value}: {reason}")]
    InvalidConfig {
        /// The offending field.
        field: String,
        /// Its value.
        value: String,
        /// The rule it breaks.
        reason: String,
    },

    /// A file or directory that must exist does not.
    #[error("missing {what}: {path} does not exist")]
    MissingFile {
        /// What the file is (e.g. "checkpoint metadata").
        what: String,
        /// The path that does not exist.
        path: PathBuf,
    },

    /// An I/O operation on `path` failed.
    #[error("{action} {path}: {error}")]
    Io {
        /// What was attempted ("cannot read", "cannot create", …).
        action: String,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        error: std::io::Error,
    },

    /// A safetensors file is truncated or corrupt (or holds an unsupported dtype).
    #[error("corrupt or truncated safetensors file {path}: {reason}")]
    CorruptSafetensors {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A checkpoint's JSON metadata (`config.json`, `training_state.json`) is unreadable or
    /// inconsistent.
    #[error("bad checkpoint metadata {path}: {reason}")]
    BadMetadata {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The weights lack a parameter that the configuration's architecture needs.
    #[error("{origin}: missing parameter `{name}` (shape {expected:?}) required by {architecture}{hint}")]
    MissingParameter {
        /// Where the weights came from (file path or description).
        origin: String,
        /// The missing parameter.
        name: String,
        /// Its expected shape.
        expected: Vec<usize>,
        /// The configuration (one line).
        architecture: String,
        /// A guess of the architecture the weights belong to, or empty.
        hint: String,
    },

    /// The weights hold a parameter that the configuration's architecture does not have.
    #[error("{origin}: unexpected parameter `{name}` (shape {found:?}): {architecture} has no such parameter{hint}")]
    UnexpectedParameter {
        /// Where the weights came from (file path or description).
        origin: String,
        /// The extra parameter.
        name: String,
        /// Its shape in the weights.
        found: Vec<usize>,
        /// The configuration (one line).
        architecture: String,
        /// A guess of the architecture the weights belong to, or empty.
        hint: String,
    },

    /// A parameter has the wrong shape for the configuration.
    #[error(
        "{origin}: parameter `{name}` has shape {found:?} but {architecture} expects {expected:?}"
    )]
    ShapeMismatch {
        /// Where the weights came from (file path or description).
        origin: String,
        /// The parameter.
        name: String,
        /// The shape the configuration needs.
        expected: Vec<usize>,
        /// The shape in the weights.
        found: Vec<usize>,
        /// The configuration (one line).
        architecture: String,
    },

    /// A checkpoint's configuration differs from the one the caller asked for.
    #[error("checkpoint {path} holds {found}, but {expected} was expected")]
    ConfigMismatch {
        /// The checkpoint directory.
        path: PathBuf,
        /// The configuration the caller asked for (one line).
        expected: String,
        /// The checkpoint's configuration (one line).
        found: String,
    },

    /// A call argument is out of range or unknown: `field` = `value` violates `reason`.
    #[error("`{field}` = {value}: {reason}")]
    BadRequest {
        /// The argument (or setting) at fault.
        field: String,
        /// Its value.
        value: String,
        /// The rule it breaks.
        reason: String,
    },

    /// A logits row holds NaN or `+inf`, is empty or has no finite entry. `what` says which rows
    /// (input, training target, replayed row of a record); the source names the row and token.
    #[error("{what}: {source}")]
    InvalidLogits {
        /// Which rows these are.
        what: String,
        /// The row and position at fault.
        #[source]
        source: Box<adasamp_sampling::SamplingError>,
    },

    /// A tensor or buffer has the wrong shape: `what` expected `expected`, got `found`.
    #[error("{what}: expected {expected}, got {found}")]
    BadShape {
        /// What has the shape.
        what: String,
        /// The shape needed.
        expected: String,
        /// The shape given.
        found: String,
    },

    /// A candidate-records file could not be read (malformed line, torn last line, I/O).
    #[error(transparent)]
    Record(#[from] adasamp_engine::record::RecordError),

    /// A candidate record reads but cannot be used (its pipeline does not build, a token lies
    /// outside the vocabulary, …).
    #[error("{origin}:{line}: record `{id}`: {field}: {reason}")]
    BadRecord {
        /// The records file.
        origin: String,
        /// The 1-based line.
        line: usize,
        /// The record's id.
        id: String,
        /// The field or part at fault.
        field: String,
        /// What is wrong.
        reason: String,
    },

    /// A record's target pipeline failed on one of its positions.
    #[error("record `{id}`, position {position}: {source}")]
    Target {
        /// The record's id.
        id: String,
        /// The generated-token position.
        position: usize,
        /// The sampling error.
        #[source]
        source: Box<adasamp_sampling::SamplingError>,
    },

    /// There is nothing to work on (no records, no training rows, no positions).
    #[error("no {what}")]
    NoData {
        /// What is missing.
        what: String,
    },

    /// A training run cannot be resumed from the checkpoint `dir`.
    #[error("cannot resume from {dir}: {reason}")]
    Resume {
        /// The checkpoint directory.
        dir: PathBuf,
        /// Why.
        reason: String,
    },

    /// A replay cache directory is inconsistent with the data.
    #[error("replay cache {dir}: {reason}")]
    Cache {
        /// The cache directory.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The training loss became NaN or infinite (the learning rate is usually too high).
    #[error(
        "step {step}: loss is not finite (KL {kl}, penalty {penalty}); try a lower learning rate"
    )]
    NonFiniteLoss {
        /// The optimizer step.
        step: u64,
        /// The KL term.
        kl: f64,
        /// The truncation penalty term.
        penalty: f64,
    },

    /// The base model failed (fetching, loading, a forward pass); `what` says during what.
    #[error("{what}: {source}")]
    Model {
        /// What was being done.
        what: String,
        /// The engine's error.
        #[source]
        source: Box<adasamp_engine::EngineError>,
    },

    /// Writing a file atomically or hashing one failed.
    #[error(transparent)]
    File(#[from] adasamp_engine::files::FileError),

    /// Data could not be serialised (`what` names it).
    #[error("cannot serialise {what}: {reason}")]
    Serialize {
        /// What was being serialised.
        what: String,
        /// The serialiser's message.
        reason: String,
    },

    /// A lock or worker thread failed because another thread panicked.
    #[error("{what}: a thread panicked")]
    Poisoned {
        /// The lock or thread.
        what: String,
    },

    /// An error from candle (tensor shape/dtype errors inside the model).
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}

impl NetsError {
    /// Shorthand for [`NetsError::InvalidConfig`].
    pub(crate) fn config(
        field: impl Into<String>,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        NetsError::InvalidConfig {
            field: field.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`NetsError::BadRequest`].
    pub(crate) fn bad_request(
        field: impl Into<String>,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        NetsError::BadRequest {
            field: field.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`NetsError::BadShape`].
    pub(crate) fn shape(
        what: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        NetsError::BadShape {
            what: what.into(),
            expected: expected.into(),
            found: found.into(),
        }
    }

    /// Shorthand for [`NetsError::InvalidLogits`].
    pub(crate) fn logits(what: impl Into<String>, source: adasamp_sampling::SamplingError) -> Self {
        NetsError::InvalidLogits {
            what: what.into(),
            source: Box::new(source),
        }
    }

    /// Shorthand for [`NetsError::Model`].
    pub(crate) fn model(what: impl Into<String>, source: adasamp_engine::EngineError) -> Self {
        NetsError::Model {
            what: what.into(),
            source: Box::new(source),
        }
    }

    /// Shorthand for [`NetsError::Io`].
    pub(crate) fn io(action: &str, path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        NetsError::Io {
            action: action.to_string(),
            path: path.into(),
            error,
        }
    }
}
