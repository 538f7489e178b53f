//! Optimal sampling over two models (SPEC 3): the base θ and a teacher decode in lockstep, each
//! with its own prompt rendering and KV cache; at every step their logits rows are mixed into
//! `q* ∝ π_θ^(1−α)·π_t^α` ([`adasamp_sampling::optimal::Mixer`]), θ's pipeline acts on q*, and
//! the sampled token is fed to both.
//!
//! θ's side of a request is an ordinary [`Sequence`] (pipeline, seeded sampler, stop strings,
//! limits) fed the q* logits row instead of θ's own; the teacher's side is its prompt and the
//! same generated tokens. Requests run in batches of at most the smaller model's sequence count,
//! each step one forward per model.

use adasamp_sampling::optimal::{MixOptions, MixStep, MixSummary, Mixer};
use rayon::prelude::*;

use crate::error::{bad_request, EngineError, Result};
use crate::model::{Feed, LanguageModel, SeqId};
use crate::sequence::{Generation, GenerationRequest, Sequence};
use crate::tokenizer::TextTokenizer;

/// One two-model generation to run.
#[derive(Debug, Clone)]
pub struct OptimalRequest {
    /// θ's side: its rendered prompt, θ's pipeline (applied to q*), seed, limits, stops.
    pub theta: GenerationRequest,
    /// The teacher's rendered prompt (its own system prompt or template).
    pub teacher_prompt: Vec<u32>,
}

/// How the two models are mixed.
#[derive(Debug, Clone, Default)]
pub struct OptimalOptions {
    /// The α method and its options.
    pub mix: MixOptions,
    /// The first generated token uses the teacher alone (α = 1).
    pub force_teacher_first: bool,
}

/// A finished two-model generation and its per-step diagnostics.
#[derive(Debug, Clone)]
pub struct OptimalGeneration {
    /// The generation (as θ's sampler saw it).
    pub generation: Generation,
    /// One entry per generated token.
    pub steps: Vec<MixStep>,
    /// Means of `steps`.
    pub summary: MixSummary,
}

/// A running request.
struct Running {
    index: usize,
    state: Sequence,
    teacher_history: Vec<u32>,
    seqs: (SeqId, SeqId),
    fed: (usize, usize),
    steps: Vec<MixStep>,
    summary: MixSummary,
}

/// The error for two models whose vocabularies differ.
pub fn check_vocabularies(theta: usize, teacher: usize) -> Result<()> {
    if theta != teacher {
        return Err(EngineError::VocabMismatch { theta, teacher });
    }
    Ok(())
}

/// Runs every request to completion with θ = `theta` and the teacher `teacher` (one shared
/// vocabulary: [`EngineError::VocabMismatch`] otherwise); `tok` is θ's tokenizer (EOS, text).
/// `on_text(i, piece)` receives request `i`'s newly released text. Results come back in request
/// order. A model or sampling error fails the whole call.
pub fn generate_optimal(
    theta: &mut dyn LanguageModel,
    teacher: &mut dyn LanguageModel,
    tok: &TextTokenizer,
    requests: Vec<OptimalRequest>,
    options: &OptimalOptions,
    on_text: &mut dyn FnMut(usize, &str),
) -> Result<Vec<OptimalGeneration>> {
    check_vocabularies(theta.info().vocab_size, teacher.info().vocab_size)?;
    options.mix.validate()?;
    // One mixer and q* row per running sequence: the rows of a step are mixed in parallel (the
    // models' threads wait meanwhile), each exactly as alone.
    let mut mixers: Vec<Mixer> = Vec::new();
    let mut q_rows: Vec<Vec<f32>> = Vec::new();
    let cap = theta.max_sequences().min(teacher.max_sequences()).max(1);
    let n = requests.len();
    let mut out: Vec<Option<OptimalGeneration>> = (0..n).map(|_| None).collect();
    let mut pending = requests.into_iter().enumerate();
    let mut running: Vec<Running> = Vec::new();
    let result = (|| -> Result<()> {
        loop {
            while running.len() < cap {
                let Some((index, r)) = pending.next() else {
                    break;
                };
                let tinfo = teacher.info();
                if r.teacher_prompt.is_empty() || r.teacher_prompt.len() > tinfo.max_seq_len {
                    return Err(bad_request(
                        "teacher_prompt",
                        format!("{} tokens", r.teacher_prompt.len()),
                        format!("must hold 1 to {} tokens", tinfo.max_seq_len),
                    ));
                }
                let state = Sequence::new(r.theta, theta.info())?;
                if state.finish_reason().is_some() {
                    out[index] = Some(finished(state, Vec::new(), MixSummary::default()));
                    continue;
                }
                let a = theta.new_sequence()?;
                let b = match teacher.new_sequence() {
                    Ok(b) => b,
                    Err(e) => {
                        theta.free_sequence(a);
                        return Err(e);
                    }
                };
                running.push(Running {
                    index,
                    state,
                    teacher_history: r.teacher_prompt,
                    seqs: (a, b),
                    fed: (0, 0),
                    steps: Vec::new(),
                    summary: MixSummary::default(),
                });
            }
            if running.is_empty() {
                return Ok(());
            }
            let feeds_theta: Vec<Feed<'_>> = running
                .iter()
                .map(|r| Feed::tokens(r.seqs.0, &r.state.history()[r.fed.0..]))
                .collect();
            let feeds_teacher: Vec<Feed<'_>> = running
                .iter()
                .map(|r| Feed::tokens(r.seqs.1, &r.teacher_history[r.fed.1..]))
                .collect();
            let out_theta = theta.forward(&feeds_theta)?;
            let out_teacher = teacher.forward(&feeds_teacher)?;
            let rows = running.len();
            while mixers.len() < rows {
                mixers.push(Mixer::new(options.mix.clone())?);
                q_rows.push(Vec::new());
            }
            let firsts: Vec<bool> = running
                .iter()
                .map(|r| r.steps.is_empty() && options.force_teacher_first)
                .collect();
            let mixed: Vec<adasamp_sampling::Result<MixStep>> = mixers[..rows]
                .par_iter_mut()
                .zip(q_rows[..rows].par_iter_mut())
                .enumerate()
                .map(|(row, (mixer, q_row))| {
                    mixer.mix(
                        out_theta.last_row(row),
                        out_teacher.last_row(row),
                        row,
                        firsts[row],
                        q_row,
                    )
                })
                .collect();
            for ((row, r), step) in running.iter_mut().enumerate().zip(mixed) {
                r.fed = (r.state.history().len(), r.teacher_history.len());
                let step = step?;
                let adv = r.state.decode(&q_rows[row], row, tok)?;
                r.teacher_history.push(adv.token);
                r.steps.push(step);
                r.summary.add(&step);
                let text = &r.state.text()[adv.text];
                if !text.is_empty() {
                    on_text(r.index, text);
                }
            }
            // Retire the finished, and those the teacher's context can no longer hold.
            let tmax = teacher.info().max_seq_len;
            let mut i = 0;
            while i < running.len() {
                let r = &running[i];
                if r.state.finish_reason().is_some() || r.teacher_history.len() >= tmax {
                    let r = running.remove(i);
                    theta.free_sequence(r.seqs.0);
                    teacher.free_sequence(r.seqs.1);
                    out[r.index] = Some(finished(r.state, r.steps, r.summary));
                } else {
                    i += 1;
                }
            }
        }
    })();
    for r in running.drain(..) {
        theta.free_sequence(r.seqs.0);
        teacher.free_sequence(r.seqs.1);
    }
    result?;
    Ok(out.into_iter().flatten().collect())
}

fn finished(state: Sequence, steps: Vec<MixStep>, summary: MixSummary) -> OptimalGeneration {
    OptimalGeneration {
        generation: state.into_generation(),
        steps,
        summary,
    }
}
