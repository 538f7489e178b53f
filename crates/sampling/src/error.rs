//! Errors of the sampling core: every variant names the row, pipeline, stage, parameter or value
//! that caused it.

/// Everything that can go wrong while loading pipelines or sampling from logits.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SamplingError {
    /// A logits row holds a NaN.
    #[error("row {row}: logit of token {token} is NaN")]
    NanLogit { row: usize, token: usize },
    /// A logits row holds `+inf`.
    #[error("row {row}: logit of token {token} is +inf")]
    PosInfLogit { row: usize, token: usize },
    /// Every logit of the row is `-inf`: there is nothing to sample.
    #[error("row {row}: every logit is -inf (fully masked row, nothing to sample)")]
    AllMasked { row: usize },
    /// The row has no entries at all.
    #[error("row {row}: empty vocabulary (row of length 0)")]
    EmptyRow { row: usize },
    /// After the pipeline, a kept token's logit is NaN or `+inf` (a stage overflowed `f32`, e.g. a
    /// tiny temperature on huge logits): such a distribution cannot be sampled.
    #[error("row {row}: after the pipeline, the logit of token {token} is {value} (not finite); nothing can be drawn from a non-finite distribution")]
    NonFiniteOutput { row: usize, token: u32, value: f32 },
    /// The pipeline removed every token of the row.
    #[error("row {row}: pipeline `{pipeline}` removed every token (nothing left to sample)")]
    NothingLeft { row: usize, pipeline: String },
    /// A row's length differs from the vocabulary size the caller declared.
    #[error("row {row}: length {got} does not match the vocabulary size {expected}")]
    VocabMismatch {
        row: usize,
        expected: usize,
        got: usize,
    },
    /// A stage parameter is out of its valid range or of the wrong type.
    #[error("pipeline `{pipeline}`, stage `{stage}`, parameter `{param}` = {value}: {reason}")]
    InvalidParam {
        pipeline: String,
        stage: String,
        param: String,
        value: String,
        reason: String,
    },
    /// A required parameter is absent.
    #[error("pipeline `{pipeline}`, stage `{stage}`: missing required parameter `{param}`")]
    MissingParam {
        pipeline: String,
        stage: String,
        param: String,
    },
    /// A parameter the stage does not know.
    #[error("pipeline `{pipeline}`, stage `{stage}`: unknown parameter `{param}` (accepted: {accepted})")]
    UnknownParam {
        pipeline: String,
        stage: String,
        param: String,
        accepted: String,
    },
    /// Parameters the stage does not know, given while a required one is absent (often a
    /// misspelling of it): both are named.
    /// `unknown` is the [`SamplingError::UnknownParam`] error (boxed to keep this enum small).
    #[error("{unknown}; missing required parameter `{missing}`")]
    UnknownAndMissingParams {
        unknown: Box<SamplingError>,
        missing: String,
    },
    /// A stage name that no stage answers to.
    #[error("pipeline `{pipeline}`, stage #{index}: unknown stage `{stage}` (known: {known})")]
    UnknownStage {
        pipeline: String,
        index: usize,
        stage: String,
        known: String,
    },
    /// A stage failed while transforming a row (external stages: e.g. a learned sampler).
    #[error("pipeline `{pipeline}`, stage `{stage}`: {message}")]
    StageFailed {
        pipeline: String,
        stage: String,
        message: String,
    },
    /// A draw was asked of a sequence sampler before it computed a distribution (or after a
    /// restore, which discards it).
    #[error("no distribution to draw from: compute the row's distribution first")]
    NoDistribution,
    /// A saved sampler or stage state does not fit the pipeline it is restored into.
    #[error("state of stage `{stage}` cannot be restored: {reason}")]
    StateMismatch { stage: String, reason: String },
    /// A pipeline file could not be parsed, or is structurally wrong.
    #[error("pipeline file{}: {message}", .source_name.as_deref().map(|s| format!(" `{s}`")).unwrap_or_default())]
    PipelineFile {
        source_name: Option<String>,
        message: String,
    },
    /// No pipeline of that name in the file.
    #[error("no pipeline named `{name}` (available: {available})")]
    NoSuchPipeline { name: String, available: String },
    /// A soft-sampling parameter (guidance α, α schedule ratios) is out of its valid range.
    #[error("soft sampling parameter `{param}` = {value}: {reason}")]
    SoftParam {
        param: &'static str,
        value: String,
        reason: String,
    },
    /// A flat sampling configuration field is out of range.
    #[error("sampling config field `{field}` = {value}: {reason}")]
    InvalidConfig {
        field: String,
        value: String,
        reason: String,
    },
    /// A pipeline that no flat sampling configuration expresses exactly, naming the first stage
    /// at fault (0-based `index`) and why.
    #[error("pipeline `{pipeline}`, stage {index} `{stage}`: {reason}")]
    NotFlat {
        pipeline: String,
        stage: String,
        index: usize,
        reason: String,
    },
    /// An unknown preset name.
    #[error("unknown preset `{0}` (known: creative, precise, balanced, deterministic)")]
    UnknownPreset(String),
    /// A token id outside the vocabulary.
    #[error("{what}: token id {token} is outside the vocabulary of {vocab}")]
    TokenOutOfRange {
        what: String,
        token: u64,
        vocab: usize,
    },
    /// Optimal sampling: θ's and the teacher's rows differ in length (different vocabularies).
    #[error("θ's vocabulary has {theta} tokens but the teacher's has {teacher}: optimal sampling needs one shared vocabulary")]
    VocabSizes { theta: usize, teacher: usize },
    /// Optimal sampling: no token has positive probability under both θ and the teacher (after
    /// the teacher's top-k / top-p).
    #[error("row {row}: θ and the teacher share no token with positive probability")]
    DisjointSupports { row: usize },
    /// Speculative decoding: a target (`p`) or draft (`q`) row, or a proposed token, that the
    /// acceptance rule cannot use; `field` names which, `index` the entry.
    #[error("speculative decoding: {field}[{index}] = {value}: {reason}")]
    Speculative {
        field: String,
        index: usize,
        value: String,
        reason: String,
    },
    /// Two distributions passed to a statistic differ in length or are not distributions.
    #[error("distribution statistics: {0}")]
    Distribution(String),
}

/// Result type of the sampling core.
pub type Result<T, E = SamplingError> = std::result::Result<T, E>;
