//! Typed errors of the evaluation.

use std::path::PathBuf;

/// One eval prompt that is also a training prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlapHit {
    /// The eval prompt's id.
    pub eval_id: String,
    /// The training prompt's id.
    pub train_id: String,
    /// The training file it is in.
    pub train_file: PathBuf,
    /// What they share: the id, or the normalised prompt text.
    pub by: OverlapKind,
}

/// What makes an eval prompt a training prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlapKind {
    /// The same prompt id.
    Id,
    /// The same prompt text once normalised ([`crate::overlap::normalise`]).
    Text,
}

impl std::fmt::Display for OverlapHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.by {
            OverlapKind::Id => write!(
                f,
                "`{}` (same id in {})",
                self.eval_id,
                self.train_file.display()
            ),
            OverlapKind::Text => write!(
                f,
                "`{}` (same text as `{}` in {})",
                self.eval_id,
                self.train_id,
                self.train_file.display()
            ),
        }
    }
}

/// At most this many overlapping prompts are listed in the message.
const LISTED: usize = 20;

fn overlap_text(hits: &[OverlapHit]) -> String {
    let mut s = format!(
        "{} eval prompt(s) are also training prompts; nothing was generated: ",
        hits.len()
    );
    let shown: Vec<String> = hits.iter().take(LISTED).map(|h| h.to_string()).collect();
    s.push_str(&shown.join(", "));
    if hits.len() > LISTED {
        s.push_str(&format!(", … ({} more)", hits.len() - LISTED));
    }
    s
}

/// What can go wrong in an evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A contender's description cannot be read or resolved.
    #[error("contender `{item}`: {message}")]
    BadContender {
        /// The contender as given (`NAME=SOURCE` or `SOURCE`).
        item: String,
        /// What is wrong.
        message: String,
    },
    /// An option is out of range.
    #[error("{name} = {value}: {message}")]
    BadParameter {
        /// The option.
        name: String,
        /// Its value.
        value: String,
        /// What is wrong.
        message: String,
    },
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
    /// Eval prompts that are training prompts (by id or normalised text).
    #[error("{}", overlap_text(.0))]
    Overlap(Vec<OverlapHit>),
    /// Some generations or judgements failed; a rerun retries them.
    #[error("{stage}: {failed} item(s) failed ({first}); rerun to retry them")]
    Incomplete {
        /// The stage.
        stage: String,
        /// How many failed.
        failed: usize,
        /// The first failure.
        first: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A curation stage failed.
    #[error(transparent)]
    Curate(Box<adasamp_curate::CurateError>),
    /// A learned sampler could not be loaded or run.
    #[error(transparent)]
    Nets(Box<adasamp_nets::NetsError>),
    /// A pipeline could not be built.
    #[error(transparent)]
    Sampling(Box<adasamp_sampling::SamplingError>),
    /// The engine failed.
    #[error(transparent)]
    Engine(Box<adasamp_engine::EngineError>),
    /// An atomic write failed.
    #[error(transparent)]
    File(#[from] adasamp_engine::files::FileError),
}

/// Boxed (the variants stay small) and converted with `?`.
macro_rules! boxed_from {
    ($($variant:ident: $ty:ty),*) => {$(
        impl From<$ty> for EvalError {
            fn from(e: $ty) -> Self {
                EvalError::$variant(Box::new(e))
            }
        }
    )*};
}

boxed_from!(
    Curate: adasamp_curate::CurateError,
    Nets: adasamp_nets::NetsError,
    Sampling: adasamp_sampling::SamplingError,
    Engine: adasamp_engine::EngineError
);

impl EvalError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }

    /// A [`EvalError::BadParameter`].
    pub fn bad_parameter(
        name: impl Into<String>,
        value: impl ToString,
        message: impl Into<String>,
    ) -> Self {
        Self::BadParameter {
            name: name.into(),
            value: value.to_string(),
            message: message.into(),
        }
    }
}

/// Result of the evaluation.
pub type Result<T, E = EvalError> = std::result::Result<T, E>;
