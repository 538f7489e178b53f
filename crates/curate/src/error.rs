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
    /// An atomic file write failed.
    #[error(transparent)]
    File(#[from] adasamp_engine::files::FileError),
    /// Public data could not be obtained or is not what was pinned.
    #[error("fetching {what}: {message}")]
    Fetch {
        /// What was being fetched (a package and version).
        what: String,
        /// What went wrong, with what to do about it.
        message: String,
    },
    /// The decoding engine failed.
    #[error(transparent)]
    Engine(#[from] adasamp_engine::EngineError),
    /// A token index is damaged, belongs to another build, or cannot be built.
    #[error(transparent)]
    Index(#[from] crate::index::IndexError),
    /// The sentence-embedding model could not be loaded or run.
    #[error("embedder {path}: {message}")]
    Embedder {
        /// The model's directory or file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Pipelines a remote server cannot run exactly, refused before any request is sent.
    #[error("{}", refusals_text(.0))]
    Refused(Vec<Refusal>),
    /// A remote endpoint failed for good (after retries).
    #[error("{endpoint}: {message}")]
    Remote {
        /// The endpoint URL.
        endpoint: String,
        /// What happened.
        message: String,
    },
}

/// Why one pipeline cannot be sent to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The pipeline's name.
    pub pipeline: String,
    /// The stage at fault, if one is (`None`: the pipeline as a whole).
    pub stage: Option<String>,
    /// The endpoint.
    pub endpoint: String,
    /// Why.
    pub reason: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pipeline `{}`", self.pipeline)?;
        if let Some(s) = &self.stage {
            write!(f, ", stage `{s}`")?;
        }
        write!(f, " on {}: {}", self.endpoint, self.reason)
    }
}

fn refusals_text(r: &[Refusal]) -> String {
    let mut s = format!(
        "{} pipeline(s) cannot be run exactly by the remote server(s); nothing was sent:",
        r.len()
    );
    for x in r {
        s.push_str(&format!("\n  {x}"));
    }
    s
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
