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

    /// The input tensor cannot be processed (wrong rank, NaN, `+inf`, a row with every entry
    /// `-inf`, mismatched shapes, …).
    #[error("invalid input: {0}")]
    InvalidInput(String),

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

    /// Shorthand for [`NetsError::Io`].
    pub(crate) fn io(action: &str, path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        NetsError::Io {
            action: action.to_string(),
            path: path.into(),
            error,
        }
    }
}
