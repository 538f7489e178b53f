//! Typed errors of the curation stages.

use std::path::PathBuf;

use adasamp_engine::record::RecordError;

/// What can go wrong in a curation stage.
#[derive(Debug, thiserror::Error)]
pub enum CurateError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A JSONL file of records is malformed (names the file, line and field).
    #[error(transparent)]
    Record(#[from] RecordError),
    /// A line of an input file is malformed.
    #[error("{path}:{line}: {message}")]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong, naming the field.
        message: String,
    },
    /// A record lacks a field the stage needs, or has it with the wrong type.
    #[error("record {id}: field `{field}`: {message}")]
    BadField {
        /// The record's id (or `#<line>` when it has none).
        id: String,
        /// The field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A parameter of a stage is out of range or unknown.
    #[error("{name} = {value}: {message}")]
    BadParameter {
        /// The parameter.
        name: String,
        /// Its value.
        value: String,
        /// What is wrong.
        message: String,
    },
    /// The decoding engine failed.
    #[error(transparent)]
    Engine(#[from] adasamp_engine::EngineError),
    /// A remote endpoint failed for good (after retries).
    #[error("{endpoint}: {message}")]
    Remote {
        /// The endpoint URL.
        endpoint: String,
        /// What happened.
        message: String,
    },
}

/// Atomic file writes (`adasamp_engine::files`) fail as engine I/O errors, naming the path.
impl From<adasamp_engine::files::FileError> for CurateError {
    fn from(e: adasamp_engine::files::FileError) -> Self {
        CurateError::Engine(e.into())
    }
}

impl CurateError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}

/// Result of a curation stage.
pub type Result<T, E = CurateError> = std::result::Result<T, E>;
