//! The one interface every base model implements, whatever the backend.

use crate::error::{EngineError, Result};

/// Identifies one sequence (and its KV cache) inside a model.
pub type SeqId = usize;

/// Which library runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// candle (pure Rust; GGUF and safetensors; model internals).
    Candle,
    /// llama.cpp (fast GGUF inference).
    LlamaCpp,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Candle => "candle",
            Backend::LlamaCpp => "llama.cpp",
        })
    }
}

/// What a model can do beyond next-token logits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Capabilities {
    /// Logits of every fed position (teacher-forced replay).
    pub all_logits: bool,
    /// Truncating a sequence's KV cache (speculative decoding).
    pub rollback: bool,
    /// Hidden states of chosen blocks.
    pub hidden_states: bool,
    /// Running only the first k blocks (self-speculative drafts).
    pub early_exit: bool,
    /// Input embeddings instead of token ids (soft sampling).
    pub input_embeddings: bool,
    /// Access to the token embedding matrix.
    pub embedding_matrix: bool,
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

/// Tokens to append to one sequence in a forward step.
#[derive(Debug, Clone, Copy)]
pub struct Feed<'a> {
    /// The sequence.
    pub seq: SeqId,
    /// Tokens to append (a prompt to prefill, or one token to decode).
    pub tokens: &'a [u32],
}

impl<'a> Feed<'a> {
    /// Appends `tokens` to sequence `seq`.
    pub fn tokens(seq: SeqId, tokens: &'a [u32]) -> Self {
        Self { seq, tokens }
    }
}

/// A base language model: sequences with KV caches, fed tokens, returning logits.
pub trait LanguageModel: Send {
    /// Facts about the model.
    fn info(&self) -> &ModelInfo;

    /// How many sequences may exist at once.
    fn max_sequences(&self) -> usize {
        usize::MAX
    }

    /// Starts a new, empty sequence.
    fn new_sequence(&mut self) -> Result<SeqId>;

    /// Frees a sequence and its cache.
    fn free_sequence(&mut self, seq: SeqId);

    /// Number of tokens in a sequence's cache.
    fn sequence_len(&self, seq: SeqId) -> Result<usize>;

    /// Appends tokens to several sequences at once (different lengths allowed) and returns, per
    /// feed, the logits of its last position (`[feeds, V]`).
    fn forward(&mut self, feeds: &[Feed<'_>]) -> Result<Logits>;

    /// Appends tokens to one sequence and returns the logits of every fed position
    /// (`[tokens, V]`; teacher-forced replay).
    fn forward_all(&mut self, feed: Feed<'_>) -> Result<Logits>;

    /// Rolls a sequence back to its first `len` tokens.
    fn truncate(&mut self, seq: SeqId, len: usize) -> Result<()> {
        let _ = (seq, len);
        Err(unsupported(self.info(), "KV-cache rollback"))
    }

    /// Appends input embeddings (`[n, hidden]`, row-major) instead of tokens; returns the last
    /// position's logits.
    fn forward_embeddings(&mut self, seq: SeqId, embeddings: &[f32]) -> Result<Logits> {
        let _ = (seq, embeddings);
        Err(unsupported(self.info(), "input embeddings"))
    }

    /// The token embedding matrix `[V, hidden]`, row-major.
    fn embedding_matrix(&self) -> Result<Vec<f32>> {
        Err(unsupported(self.info(), "the embedding matrix"))
    }
}

/// The error for a capability a backend lacks.
pub fn unsupported(info: &ModelInfo, what: &str) -> EngineError {
    EngineError::Request(format!(
        "the {} backend does not provide {what} (use --backend candle)",
        info.backend
    ))
}
