//! The fields curation adds to a candidate record, each name declared once. Stages write them
//! into [`CandidateRecord::extra`](adasamp_engine::record::CandidateRecord::extra); `score`
//! reads them. A missing label is absent (or `null`), never a sentinel number.

/// The prompt's id (string), copied from the prompt file by `candidates`.
pub const PROMPT_ID: &str = "prompt_id";
/// Where the prompt came from (string), copied from the prompt file.
pub const SOURCE: &str = "source";
/// The prompt's licence (string), copied from the prompt file.
pub const LICENSE: &str = "license";
/// The checks that apply to the prompt (array of [`Check`](crate::prompt::Check) names).
pub const CHECKS: &str = "checks";
/// The verifiable task's family (`gsm8k`, `math`, `ifeval`), copied from the prompt file.
pub const DATASET: &str = "dataset";
/// The verifiable task's expected answer or instruction arguments, copied from the prompt file.
pub const GROUND_TRUTH: &str = "ground_truth";

/// Bradley–Terry rating of the generation within its (prompt, seed) tournament, mean-centred.
pub const QUALITY: &str = "quality";
/// Accumulated soft tournament score (sum of soft outcomes, byes 0.5).
pub const QUALITY_SCORE: &str = "quality_score";
/// A direct scalar reward from a scorer endpoint (instead of the tournament).
pub const REWARD: &str = "reward";

/// sacreBLEU sentence BLEU (0–100) of the generation against the other seeds' generations of
/// its (prompt, pipeline) group, averaged over the group (one value per group, on each member).
pub const SELF_BLEU: &str = "self_bleu";
/// `ln(max(self_bleu, 1e-9))`, the reference implementation's stored form.
pub const LOG_SELF_BLEU: &str = "log_self_bleu";
/// Embedding entropy (bits) of the (prompt, pipeline) group: −Σλ log₂ λ over the eigenvalues
/// of the cosine Gram matrix normalised to sum 1.
pub const EMBEDDING_ENTROPY: &str = "embedding_entropy";
/// `ln(max(embedding_entropy, 1e-9))`, the reference implementation's stored form.
pub const LOG_EMBEDDING_ENTROPY: &str = "log_embedding_entropy";

/// SHA-256 of the tokenizer that made `generation_tokens`
/// ([`tokenizer_sha256`](crate::index::tokenizer_sha256)). `label overlap` scores the tokens as
/// they are only when this is its index's tokenizer, and re-tokenizes the text otherwise.
pub const TOKENIZER_SHA256: &str = "tokenizer_sha256";

/// Tokens of the generation covered by greedy longest matches in the reference corpus.
pub const OVERLAP_MATCHED: &str = "overlap_matched_tokens";
/// `overlap_matched_tokens / generation tokens` (0 for an empty generation).
pub const OVERLAP_COVERAGE: &str = "overlap_coverage";
/// Match → no-match transitions along the generation.
pub const OVERLAP_BREAKS: &str = "overlap_breaks";

/// Verifiable reward: 1 when the generation is correct for its `dataset` and `ground_truth`,
/// else 0.
pub const VERIFIED: &str = "verified";

/// The final combined score written by `score`.
pub const SCORE: &str = "score";
