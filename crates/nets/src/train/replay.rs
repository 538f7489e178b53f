//! Teacher-forced replay of candidate records through the frozen base LM (SPEC §2, "Training data
//! replay").
//!
//! The prompt is rendered as the generation saw it (`lm.prompt_tokens(prompt, system_prompt,
//! raw)`: the chat template unless the record says `raw: true`); the generation tokens are the
//! record's `generation_tokens`, or the generation text re-tokenized when absent. One `forward`
//! with all-position logits over `prompt + generation[..n−1]` returns a row per fed position;
//! row `j` predicts token `j + 1`, so the rows predicting the generated tokens are
//! `prompt_len − 1 .. prompt_len − 1 + n` — the first generated token included (the seed
//! skipped it by an off-by-one).

use adasamp_engine::{Feed, LoadedModel};

use crate::error::{NetsError, Result};
use crate::train::records::CandidateRecord;

/// One replayed record.
#[derive(Clone, Debug)]
pub struct Replayed {
    /// Prompt tokens (chat template applied).
    pub prompt_tokens: Vec<u32>,
    /// Generated tokens that were replayed (possibly shortened by the length cap).
    pub generation_tokens: Vec<u32>,
    /// `generation_tokens.len()` raw logits rows, row-major `[n, vocab]`; row `i` predicts
    /// `generation_tokens[i]`.
    pub rows: Vec<f32>,
    /// Vocabulary size of the rows.
    pub vocab: usize,
    /// Generated tokens dropped by the length cap.
    pub dropped: usize,
}

/// The token ids of `rec`'s prompt and generation as the model sees them.
pub fn record_tokens(lm: &LoadedModel, rec: &CandidateRecord) -> Result<(Vec<u32>, Vec<u32>)> {
    let err = |what: &str, e: adasamp_engine::EngineError| {
        NetsError::InvalidInput(format!(
            "record {} (line {}): {what}: {e}",
            rec.id, rec.line
        ))
    };
    let prompt = lm
        .prompt_tokens(&rec.prompt, rec.system_prompt.as_deref(), rec.raw)
        .map_err(|e| err("rendering the prompt", e))?;
    let generation = match &rec.generation_tokens {
        Some(t) => t.clone(),
        None => lm
            .tokenizer
            .encode(&rec.generation, false)
            .map_err(|e| err("tokenizing the generation", e))?,
    };
    Ok((prompt, generation))
}

/// Replays `rec` through `lm` with at most `max_seq_len` tokens of prompt + generation (the
/// generation is cut to fit). `None` when nothing is left to replay (empty generation, or a
/// prompt that fills the cap).
pub fn replay_record(
    lm: &mut LoadedModel,
    rec: &CandidateRecord,
    max_seq_len: usize,
) -> Result<Option<Replayed>> {
    let (prompt, mut generation) = record_tokens(lm, rec)?;
    let vocab_limit = lm.model.info().vocab_size;
    if let Some(&bad) = generation.iter().find(|&&t| t as usize >= vocab_limit) {
        return Err(NetsError::InvalidInput(format!(
            "record {} (line {}): generation token {bad} outside the model's vocabulary ({vocab_limit})",
            rec.id, rec.line
        )));
    }
    if prompt.is_empty() {
        return Err(NetsError::InvalidInput(format!(
            "record {} (line {}): the prompt renders to no tokens",
            rec.id, rec.line
        )));
    }
    if prompt.len() > max_seq_len || generation.is_empty() {
        return Ok(None);
    }
    // Fed: prompt + generation[..n−1] ≤ max_seq_len tokens.
    let room = max_seq_len - prompt.len() + 1;
    let dropped = generation.len().saturating_sub(room);
    generation.truncate(room);
    let n = generation.len();
    let mut tokens = prompt.clone();
    tokens.extend_from_slice(&generation[..n - 1]);
    let seq = lm
        .model
        .new_sequence()
        .map_err(|e| NetsError::InvalidInput(format!("replay: new sequence: {e}")))?;
    let result = lm
        .model
        .forward(&[Feed::tokens(seq, &tokens).with_all_logits()])
        .map(|o| o.logits);
    lm.model.free_sequence(seq);
    let logits = result.map_err(|e| {
        NetsError::InvalidInput(format!(
            "record {} (line {}): forward: {e}",
            rec.id, rec.line
        ))
    })?;
    if logits.rows != tokens.len() {
        return Err(NetsError::InvalidInput(format!(
            "record {}: forward returned {} rows for {} tokens",
            rec.id,
            logits.rows,
            tokens.len()
        )));
    }
    let v = logits.vocab;
    let first = prompt.len() - 1;
    let rows = logits.data[first * v..(first + n) * v].to_vec();
    Ok(Some(Replayed {
        prompt_tokens: prompt,
        generation_tokens: generation,
        rows,
        vocab: v,
        dropped,
    }))
}
