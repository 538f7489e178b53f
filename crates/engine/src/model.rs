//! The one interface every base model implements, whatever the backend.

use crate::error::{bad_request, EngineError, Result};

/// Identifies one sequence (and its KV cache) inside a model.
pub type SeqId = usize;

/// How many sequences a model holds at once unless the load options say otherwise.
pub const DEFAULT_MAX_SEQUENCES: usize = 8;

/// Which library runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// candle (pure Rust; GGUF and safetensors; model internals).
    Candle,
    /// llama.cpp (fast GGUF inference).
    LlamaCpp,
}

impl Backend {
    /// What the backend provides beyond next-token logits.
    pub const fn capabilities(self) -> Capabilities {
        match self {
            Backend::Candle => Capabilities {
                all_logits: true,
                rollback: true,
                hidden_states: true,
                early_exit: true,
                input_embeddings: true,
                embedding_mixture: true,
            },
            Backend::LlamaCpp => Capabilities {
                all_logits: true,
                rollback: true,
                hidden_states: false,
                early_exit: false,
                input_embeddings: true,
                embedding_mixture: true,
            },
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Candle => "candle",
            Backend::LlamaCpp => "llama.cpp",
        })
    }
}

/// What a model can do beyond next-token logits: one flag per optional feature of
/// [`LanguageModel`], each true iff the backend implements it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Capabilities {
    /// [`Feed::all_logits`]: logits of every fed position (teacher-forced replay, verify).
    pub all_logits: bool,
    /// [`LanguageModel::truncate`]: rolling a sequence's KV cache back (speculative decoding).
    pub rollback: bool,
    /// [`Feed::hidden_states`]: hidden states of chosen blocks.
    pub hidden_states: bool,
    /// [`Feed::exit_after`]: running only the first k blocks (self-speculative drafts).
    pub early_exit: bool,
    /// [`Input::Embeddings`]: input embeddings instead of token ids (soft sampling).
    pub input_embeddings: bool,
    /// [`LanguageModel::embedding_mixture`]: `pᵀ·W_E` over the token embedding matrix.
    pub embedding_mixture: bool,
}

impl Capabilities {
    /// Whether `self` has every capability `need` asks for.
    pub fn covers(&self, need: &Capabilities) -> bool {
        self.missing(need).is_none()
    }

    /// The first capability of `need` that `self` lacks.
    pub fn missing(&self, need: &Capabilities) -> Option<Capability> {
        Capability::ALL
            .into_iter()
            .find(|&c| need.has(c) && !self.has(c))
    }

    /// Whether the flag of `c` is set.
    pub fn has(&self, c: Capability) -> bool {
        match c {
            Capability::AllLogits => self.all_logits,
            Capability::Rollback => self.rollback,
            Capability::HiddenStates => self.hidden_states,
            Capability::EarlyExit => self.early_exit,
            Capability::InputEmbeddings => self.input_embeddings,
            Capability::EmbeddingMixture => self.embedding_mixture,
        }
    }
}

/// One optional feature of [`LanguageModel`] (a flag of [`Capabilities`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// Logits of every fed position.
    AllLogits,
    /// KV-cache rollback.
    Rollback,
    /// Hidden states of chosen blocks.
    HiddenStates,
    /// Early exit after the first k blocks.
    EarlyExit,
    /// Input embeddings instead of token ids.
    InputEmbeddings,
    /// The embedding mixture `pᵀ·W_E`.
    EmbeddingMixture,
}

impl Capability {
    /// Every capability, in the order of the [`Capabilities`] fields.
    pub const ALL: [Capability; 6] = [
        Capability::AllLogits,
        Capability::Rollback,
        Capability::HiddenStates,
        Capability::EarlyExit,
        Capability::InputEmbeddings,
        Capability::EmbeddingMixture,
    ];
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Capability::AllLogits => "logits of every fed position",
            Capability::Rollback => "KV-cache rollback",
            Capability::HiddenStates => "hidden states",
            Capability::EarlyExit => "early exit",
            Capability::InputEmbeddings => "input embeddings",
            Capability::EmbeddingMixture => "the embedding mixture",
        })
    }
}

/// Static facts about a loaded model.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelInfo {
    /// File or directory it came from.
    pub source: String,
    /// Architecture name (`llama`, `qwen2`, …).
    pub arch: String,
    /// Backend running it.
    pub backend: Backend,
    /// Vocabulary size (logits per row).
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden_size: usize,
    /// Number of blocks.
    pub n_layers: usize,
    /// Longest sequence supported.
    pub max_seq_len: usize,
    /// What else it can do.
    pub capabilities: Capabilities,
}

/// Logits rows, row-major `[rows, vocab]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Logits {
    /// Number of rows.
    pub rows: usize,
    /// Row length.
    pub vocab: usize,
    /// `rows × vocab` values.
    pub data: Vec<f32>,
}

impl Logits {
    /// Row `r`.
    pub fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.vocab..(r + 1) * self.vocab]
    }
}

/// What one feed appends to its sequence.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// Token ids.
    Tokens(&'a [u32]),
    /// Input embeddings, `[n, hidden]` row-major (soft sampling).
    Embeddings(&'a [f32]),
}

/// One sequence's part of a forward step.
#[derive(Debug, Clone, Copy)]
pub struct Feed<'a> {
    /// The sequence.
    pub seq: SeqId,
    /// What to append (a prompt to prefill, one token to decode, a draft to verify, …).
    pub input: Input<'a>,
    /// Logits of every fed position (multi-token verify), else of the last position only.
    pub all_logits: bool,
    /// Early exit: run only the first k blocks, then the final norm and the LM head.
    pub exit_after: Option<usize>,
    /// Blocks (0-based) whose output hidden states are returned, for every fed position.
    pub hidden_states: &'a [usize],
}

impl<'a> Feed<'a> {
    /// Appends `tokens` to `seq`; last-position logits, nothing else.
    pub fn tokens(seq: SeqId, tokens: &'a [u32]) -> Self {
        Self::new(seq, Input::Tokens(tokens))
    }

    /// Appends input embeddings (`[n, hidden]`, row-major) to `seq`; last-position logits.
    pub fn embeddings(seq: SeqId, embeddings: &'a [f32]) -> Self {
        Self::new(seq, Input::Embeddings(embeddings))
    }

    fn new(seq: SeqId, input: Input<'a>) -> Self {
        Self {
            seq,
            input,
            all_logits: false,
            exit_after: None,
            hidden_states: &[],
        }
    }

    /// Also returns the logits of every fed position.
    pub fn with_all_logits(self) -> Self {
        Self {
            all_logits: true,
            ..self
        }
    }

    /// Runs only the first `k` blocks (then the final norm and the LM head).
    pub fn with_exit_after(self, k: usize) -> Self {
        Self {
            exit_after: Some(k),
            ..self
        }
    }

    /// Also returns the hidden states after these blocks (0-based).
    pub fn with_hidden_states(self, blocks: &'a [usize]) -> Self {
        Self {
            hidden_states: blocks,
            ..self
        }
    }
}

/// The hidden states after one block for every fed position of one feed.
#[derive(Debug, Clone, PartialEq)]
pub struct HiddenState {
    /// The block (0-based) whose output this is.
    pub block: usize,
    /// Number of rows (fed positions).
    pub rows: usize,
    /// `rows × hidden` values, row-major.
    pub data: Vec<f32>,
}

/// What a forward step returns.
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardOutput {
    /// Logits rows, feed after feed: one row per feed, or one per fed position when
    /// `all_logits`.
    pub logits: Logits,
    /// Per feed, the range of its rows in `logits`.
    pub rows: Vec<std::ops::Range<usize>>,
    /// Per feed, the requested hidden states, in the order asked.
    pub hidden: Vec<Vec<HiddenState>>,
}

impl ForwardOutput {
    /// The logits of the last fed position of feed `feed`.
    pub fn last_row(&self, feed: usize) -> &[f32] {
        self.logits.row(self.rows[feed].end - 1)
    }

    /// The logits rows of feed `feed` (`[rows, V]` row-major).
    pub fn feed_rows(&self, feed: usize) -> &[f32] {
        let r = &self.rows[feed];
        &self.logits.data[r.start * self.logits.vocab..r.end * self.logits.vocab]
    }
}

/// A base language model: sequences with KV caches, fed tokens or embeddings, returning logits.
pub trait LanguageModel: Send {
    /// Facts about the model.
    fn info(&self) -> &ModelInfo;

    /// How many sequences may exist at once (llama.cpp: fixed at load; candle: a configured
    /// cap).
    fn max_sequences(&self) -> usize;

    /// Starts a new, empty sequence.
    fn new_sequence(&mut self) -> Result<SeqId>;

    /// Frees a sequence and its KV cache at once (an unknown id is ignored).
    fn free_sequence(&mut self, seq: SeqId);

    /// Number of positions in a sequence.
    fn sequence_len(&self, seq: SeqId) -> Result<usize>;

    /// Appends each feed's input to its sequence (several sequences at once, different lengths
    /// allowed; each sequence at most once) and returns the logits (and hidden states) asked
    /// for. An option the backend lacks is [`EngineError::Unsupported`]; a failed step leaves
    /// every sequence as it was.
    fn forward(&mut self, feeds: &[Feed<'_>]) -> Result<ForwardOutput>;

    /// Rolls a sequence back to its first `len` positions.
    fn truncate(&mut self, seq: SeqId, len: usize) -> Result<()>;

    /// Soft sampling: `out = pᵀ·W_E = Σ_t p_t · W_E[t]` for a probability vector given as
    /// `(token, probability)` pairs (sparse or dense), into `out` of length `hidden`, without
    /// copying the `[V, hidden]` embedding matrix.
    fn embedding_mixture(&self, probs: &[(u32, f32)], out: &mut [f32]) -> Result<()>;
}

/// The error for a capability a backend lacks.
pub fn unsupported(info: &ModelInfo, capability: Capability) -> EngineError {
    EngineError::Unsupported {
        backend: info.backend,
        capability,
    }
}

/// Checks the arguments of [`LanguageModel::embedding_mixture`] for a model described by `info`:
/// `out` holds `hidden` values, every token lies in the vocabulary, every probability is finite.
pub fn check_mixture_args(info: &ModelInfo, probs: &[(u32, f32)], out: &[f32]) -> Result<()> {
    let (v, d) = (info.vocab_size, info.hidden_size);
    if out.len() != d {
        return Err(bad_request(
            "out",
            format!("{} values", out.len()),
            format!("must hold the hidden size {d}"),
        ));
    }
    if let Some(&(t, _)) = probs.iter().find(|&&(t, _)| t as usize >= v) {
        return Err(bad_request(
            "probs",
            t,
            format!("token outside the vocabulary of {v}"),
        ));
    }
    if let Some(&(t, p)) = probs.iter().find(|&&(_, p)| !p.is_finite()) {
        return Err(bad_request(
            "probs",
            p,
            format!("probability of token {t} is not finite"),
        ));
    }
    Ok(())
}
