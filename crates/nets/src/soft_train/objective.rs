//! The soft-sampling training objective (SPEC 3) on a frozen f32 model with a trainable LM head.
//!
//! For a sequence `x_0 … x_{L−1}` the model is fed `e_0 = W_E[x_0]` and, at every later
//! position, the guided mixture `e_t = α·W_E[x_t] + (1−α)·p_tᵀW_E`, where `p_t` is the model's
//! own distribution for position `t` (the trainable head's logits of the previous step, through
//! the soft pipeline). The loss is the cross-entropy of the head's logits against the ground-truth
//! next token, averaged once over every real position of the batch:
//! `L = (1/N)·Σ_{sequences} Σ_{t=1}^{L−1} −log softmax(W_head·h_{t−1})[x_t]`, `N` the number of
//! predicted positions (sequences are fed one position per step each, so there is no padding).
//!
//! Only the head is trained. The functions here run the engine's (non-differentiable) forward:
//! [`teacher_forced_inputs`] gives the α = 1 loss with its exact gradient; [`soft_inputs`] gives
//! the α < 1 loss's value with the mixtures as constants (the head's direct term of the gradient
//! only — the exact gradient, through the mixtures, is [`super::bptt`]'s). The input embeddings
//! `W_E` used for mixtures stay frozen: a tied head is untied.

use adasamp_engine::{Feed, LanguageModel, SeqId};
use adasamp_sampling::soft::{distribution_weights, guided_weights};
use adasamp_sampling::{Context, Pipeline, SequenceSampler};
use candle_core::{Device, Tensor};

use crate::error::{NetsError, Result};

/// One training sequence: token ids (at least two) and how many of them are the prompt (the
/// context the soft pipeline's stages see as prompt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainSequence {
    /// Token ids.
    pub tokens: Vec<u32>,
    /// Prompt length (0 for plain text).
    pub prompt_len: usize,
}

/// The frozen part of the model: its final norm (applied to the last block's output).
#[derive(Debug, Clone)]
pub struct FinalNorm {
    /// RMS norm scale, `[hidden]`.
    pub weight: Tensor,
    /// RMS norm epsilon.
    pub eps: f32,
}

/// The final hidden states `h` (inputs of the LM head) of a batch's predicted positions, row by
/// row, with the ground-truth token each row predicts.
#[derive(Debug, Clone)]
pub struct HeadInputs {
    /// `[N, hidden]`.
    pub hidden: Tensor,
    /// `N` target token ids.
    pub targets: Vec<u32>,
}

/// Frees the model sequences on drop, whatever happens in between.
struct Sequences<'m> {
    model: &'m mut dyn LanguageModel,
    ids: Vec<SeqId>,
}

impl<'m> Sequences<'m> {
    fn new(model: &'m mut dyn LanguageModel, n: usize) -> Result<Self> {
        let mut s = Self {
            model,
            ids: Vec::with_capacity(n),
        };
        for _ in 0..n {
            let id = s
                .model
                .new_sequence()
                .map_err(|e| NetsError::model("starting a sequence", e))?;
            s.ids.push(id);
        }
        Ok(s)
    }
}

impl Drop for Sequences<'_> {
    fn drop(&mut self) {
        for &id in &self.ids {
            self.model.free_sequence(id);
        }
    }
}

pub(crate) fn check_batch(batch: &[TrainSequence], vocab: usize) -> Result<()> {
    if batch.is_empty() {
        return Err(NetsError::NoData {
            what: "sequences in the batch".into(),
        });
    }
    for (i, s) in batch.iter().enumerate() {
        if s.tokens.len() < 2 {
            return Err(NetsError::bad_request(
                format!("batch[{i}].tokens"),
                format!("{} tokens", s.tokens.len()),
                "a training sequence needs at least 2 tokens",
            ));
        }
        if let Some(&t) = s.tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(NetsError::bad_request(
                format!("batch[{i}].tokens"),
                t,
                format!("outside the vocabulary of {vocab}"),
            ));
        }
    }
    Ok(())
}

/// Applies the final norm to `[n, hidden]` block outputs.
fn normed(norm: &FinalNorm, raw: Vec<f32>, n: usize, d: usize) -> Result<Tensor> {
    let x = Tensor::from_vec(raw, (n, d), &Device::Cpu)?;
    Ok(candle_nn::ops::rms_norm(&x, &norm.weight, norm.eps)?)
}

/// Teacher forcing: every sequence's tokens `x_0 … x_{L−2}` fed at once; the head inputs of
/// every position, each predicting the next token.
pub fn teacher_forced_inputs(
    model: &mut dyn LanguageModel,
    norm: &FinalNorm,
    batch: &[TrainSequence],
) -> Result<HeadInputs> {
    let info = model.info().clone();
    check_batch(batch, info.vocab_size)?;
    let last = [info.n_layers - 1];
    let seqs = Sequences::new(model, batch.len())?;
    let feeds: Vec<Feed<'_>> = batch
        .iter()
        .zip(&seqs.ids)
        .map(|(s, &id)| Feed::tokens(id, &s.tokens[..s.tokens.len() - 1]).with_hidden_states(&last))
        .collect();
    let out = seqs
        .model
        .forward(&feeds)
        .map_err(|e| NetsError::model("teacher-forced forward", e))?;
    let mut raw = Vec::new();
    let mut targets = Vec::new();
    for (s, h) in batch.iter().zip(&out.hidden) {
        raw.extend_from_slice(&h[0].data);
        targets.extend_from_slice(&s.tokens[1..]);
    }
    let n = targets.len();
    Ok(HeadInputs {
        hidden: normed(norm, raw, n, info.hidden_size)?,
        targets,
    })
}

/// Soft sampling with guidance `alpha`: every sequence fed one position per step, position `t`
/// getting `α·W_E[x_t] + (1−α)·p_tᵀW_E` with `p_t` the `soft` pipeline's distribution of the
/// logits `head·h_{t−1}` (its stages see the ground-truth tokens as history). Returns the head
/// inputs of every predicted position (sequence after sequence, in position order).
pub fn soft_inputs(
    model: &mut dyn LanguageModel,
    norm: &FinalNorm,
    head: &Tensor,
    soft: &Pipeline,
    batch: &[TrainSequence],
    alpha: f64,
) -> Result<HeadInputs> {
    let info = model.info().clone();
    check_batch(batch, info.vocab_size)?;
    adasamp_sampling::soft::check_alpha("alpha", alpha)
        .map_err(|e| NetsError::bad_request("alpha", alpha, e.to_string()))?;
    let (d, last) = (info.hidden_size, [info.n_layers - 1]);
    let seqs = Sequences::new(model, batch.len())?;
    let mut samplers: Vec<SequenceSampler> = (0..batch.len())
        .map(|i| SequenceSampler::new(soft.clone(), 0, i as u64, 0))
        .collect();
    let mut inputs: Vec<Vec<f32>> = vec![vec![0.0; d]; batch.len()];
    // Per sequence, its predicted positions' normed hidden rows.
    let mut rows: Vec<Vec<f32>> = vec![Vec::new(); batch.len()];
    let (mut weights, mut guided) = (Vec::new(), Vec::new());
    let longest = batch.iter().map(|s| s.tokens.len()).max().unwrap_or(0);
    for t in 1..longest {
        let active: Vec<usize> = (0..batch.len())
            .filter(|&i| batch[i].tokens.len() > t)
            .collect();
        let feeds: Vec<Feed<'_>> = active
            .iter()
            .map(|&i| {
                let f = if t == 1 {
                    Feed::tokens(seqs.ids[i], &batch[i].tokens[..1])
                } else {
                    Feed::embeddings(seqs.ids[i], &inputs[i])
                };
                f.with_hidden_states(&last)
            })
            .collect();
        let out = seqs
            .model
            .forward(&feeds)
            .map_err(|e| NetsError::model(format!("soft forward at position {t}"), e))?;
        let raw: Vec<f32> = out.hidden.iter().flat_map(|h| h[0].data.clone()).collect();
        let h = normed(norm, raw, active.len(), d)?;
        let hv = h.to_vec2::<f32>()?;
        let logits = if alpha < 1.0 {
            Some(h.matmul(&head.t()?)?.to_vec2::<f32>()?)
        } else {
            None
        };
        for (k, &i) in active.iter().enumerate() {
            rows[i].extend_from_slice(&hv[k]);
            let s = &batch[i];
            let truth = s.tokens[t];
            if t + 1 == s.tokens.len() {
                continue;
            }
            match &logits {
                Some(l) => {
                    let ctx = Context::new(&s.tokens[..t], s.prompt_len);
                    let dist = samplers[i].distribution(&l[k], &ctx, k).map_err(|e| {
                        NetsError::logits(format!("soft pipeline at position {t}"), e)
                    })?;
                    distribution_weights(&dist, &mut weights);
                    guided_weights(alpha, truth, &weights, &mut guided)
                        .map_err(|e| NetsError::bad_request("alpha", alpha, e.to_string()))?;
                    samplers[i].accept(truth);
                }
                None => {
                    guided.clear();
                    guided.push((truth, 1.0));
                }
            }
            seqs.model
                .embedding_mixture(&guided, &mut inputs[i])
                .map_err(|e| NetsError::model("embedding mixture", e))?;
        }
    }
    let mut raw = Vec::new();
    let mut targets = Vec::new();
    for (s, r) in batch.iter().zip(rows) {
        raw.extend(r);
        targets.extend_from_slice(&s.tokens[1..]);
    }
    let n = targets.len();
    Ok(HeadInputs {
        hidden: Tensor::from_vec(raw, (n, d), &Device::Cpu)?,
        targets,
    })
}

/// The loss `(1/N)·Σ −log softmax(head·h)[target]` over the `N` rows of `inputs` (a tensor
/// differentiable in `head`).
pub fn head_loss(head: &Tensor, inputs: &HeadInputs) -> Result<Tensor> {
    let n = inputs.targets.len();
    let logits = inputs.hidden.matmul(&head.t()?)?;
    let targets = Tensor::from_slice(&inputs.targets, n, &Device::Cpu)?;
    Ok(candle_nn::loss::cross_entropy(&logits, &targets)?)
}
