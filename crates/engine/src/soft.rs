//! Soft sampling (SPEC 3): each decode step feeds the model the probability-weighted mixture of
//! input embeddings `e = pᵀ·W_E` instead of the sampled token's embedding; the discrete sample is
//! still drawn and recorded as the text.
//!
//! A request is an ordinary [`Sequence`] (pipeline, seeded sampler, stop strings, limits); `p`
//! is the final distribution of its own pipeline, or of a separate soft pipeline over the same
//! logits row and context. The prompt is fed as tokens, every generated position as the mixture
//! ([`LanguageModel::embedding_mixture`], [`adasamp_sampling::soft`] for the weights). Requests
//! run in batches of at most the model's sequence count, one forward per step.

use adasamp_sampling::soft::distribution_weights;
use adasamp_sampling::{Context, Pipeline, SequenceSampler};

use crate::error::Result;
use crate::model::{Feed, LanguageModel, SeqId};
use crate::sequence::{Generation, GenerationRequest, Sequence};
use crate::tokenizer::TextTokenizer;

/// One soft-sampling generation to run.
#[derive(Debug, Clone)]
pub struct SoftRequest {
    /// The generation: prompt, pipeline the text is sampled with, seed, limits, stops.
    pub request: GenerationRequest,
    /// The pipeline whose distribution weighs the fed mixture (`None`: the request's own).
    pub soft_pipeline: Option<Pipeline>,
}

/// A running request.
struct Running {
    index: usize,
    state: Sequence,
    /// The soft pipeline's sampler (its distribution only; never drawn from).
    soft: Option<SequenceSampler>,
    seq: SeqId,
    /// Whether the prompt is in the KV cache.
    prefilled: bool,
    /// The mixture to feed for the last generated token.
    embedding: Vec<f32>,
}

/// Runs every request to completion with soft inputs on `model` (which needs the input
/// embeddings and embedding mixture capabilities); `tok` gives EOS and text. `on_text(i, piece)`
/// receives request `i`'s newly released text. Results come back in request order. A model or
/// sampling error fails the whole call.
pub fn generate_soft(
    model: &mut dyn LanguageModel,
    tok: &TextTokenizer,
    requests: Vec<SoftRequest>,
    on_text: &mut dyn FnMut(usize, &str),
) -> Result<Vec<Generation>> {
    let cap = model.max_sequences().max(1);
    let hidden = model.info().hidden_size;
    let n = requests.len();
    let mut out: Vec<Option<Generation>> = (0..n).map(|_| None).collect();
    let mut pending = requests.into_iter().enumerate();
    let mut running: Vec<Running> = Vec::new();
    let mut weights = Vec::new();
    let result = (|| -> Result<()> {
        loop {
            while running.len() < cap {
                let Some((index, r)) = pending.next() else {
                    break;
                };
                let soft = r
                    .soft_pipeline
                    .map(|p| SequenceSampler::new(p, r.request.seed, 1, 0));
                let state = Sequence::new(r.request, model.info())?;
                if state.finish_reason().is_some() {
                    out[index] = Some(state.into_generation());
                    continue;
                }
                running.push(Running {
                    index,
                    state,
                    soft,
                    seq: model.new_sequence()?,
                    prefilled: false,
                    embedding: vec![0.0; hidden],
                });
            }
            if running.is_empty() {
                return Ok(());
            }
            let feeds: Vec<Feed<'_>> = running
                .iter()
                .map(|r| {
                    if r.prefilled {
                        Feed::embeddings(r.seq, &r.embedding)
                    } else {
                        Feed::tokens(r.seq, r.state.history())
                    }
                })
                .collect();
            let fwd = model.forward(&feeds)?;
            for (row, r) in running.iter_mut().enumerate() {
                r.prefilled = true;
                let logits = fwd.last_row(row);
                if let Some(soft) = r.soft.as_mut() {
                    let ctx = Context::new(r.state.history(), r.state.prompt().len());
                    distribution_weights(&soft.distribution(logits, &ctx, row)?, &mut weights);
                }
                let adv = r.state.decode(logits, row, tok)?;
                match r.soft.as_mut() {
                    Some(soft) => soft.accept(adv.token),
                    None => {
                        if let Some(d) = r.state.sampler().current() {
                            distribution_weights(&d, &mut weights);
                        }
                    }
                }
                if adv.finished.is_none() {
                    model.embedding_mixture(&weights, &mut r.embedding)?;
                }
                let text = &r.state.text()[adv.text];
                if !text.is_empty() {
                    on_text(r.index, text);
                }
            }
            let mut i = 0;
            while i < running.len() {
                if running[i].state.finish_reason().is_some() {
                    let r = running.remove(i);
                    model.free_sequence(r.seq);
                    out[r.index] = Some(r.state.into_generation());
                } else {
                    i += 1;
                }
            }
        }
    })();
    for r in running.drain(..) {
        model.free_sequence(r.seq);
    }
    result?;
    Ok(out.into_iter().flatten().collect())
}
