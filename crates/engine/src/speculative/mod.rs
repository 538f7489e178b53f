//! Exact speculative decoding (SPEC 3) over one target model and a drafter: each round every
//! running sequence drafts up to G tokens, the target verifies every sequence's draft in ONE
//! forward (logits of every fed position), and each sequence keeps the longest accepted prefix
//! plus one token — a residual draw at the first rejection, a bonus draw from the target when
//! everything was kept ([`adasamp_sampling::speculative`]). Its output is distributed exactly as
//! plain decoding with the same pipeline.
//!
//! Per sequence and per drafted position, `p` is the target's final distribution computed in the
//! context extended by the draft tokens kept so far (they are appended to the [`Sequence`] as
//! they are accepted, so penalties, DRY, no-repeat-ngram and mirostat see exactly the context
//! plain decoding would, and mirostat's state advances only on tokens kept). A draft model's `q`
//! is its own final distribution under the same pipeline, run by a separate sampler whose stage
//! state is rolled back after the round ([`adasamp_sampling::SequenceSampler::restore`]) to its
//! state after the last kept draft token, then observes the round's correction or bonus token
//! (its RNG is never rolled back: drafts stay independent of earlier accept tests; `q` only
//! steers acceptance, so this bookkeeping affects speed, never the output distribution). Both models' KV caches are truncated to the kept
//! prefix. EOS, stop strings and limits act token by token, exactly as in plain decoding: the
//! tokens after the one that ends a sequence are dropped.
//!
//! Drafters: a second model with the same vocabulary, the target's own first K blocks (early
//! exit, on a second sequence of the target; candle only) and prompt-lookup n-grams
//! ([`ngram_draft`], `q` one-hot on the proposal).

mod ngram;

pub use ngram::ngram_draft;

use adasamp_sampling::speculative::{judge, resample, Proposal, SpeculationStats, Verdict};
use adasamp_sampling::{Context, SamplerState, SequenceSampler};

use crate::error::{bad_request, EngineError, Result};
use crate::model::{unsupported, Capability, Feed, LanguageModel, SeqId};
use crate::scheduler::common_prefix;
use crate::sequence::{Generation, GenerationRequest, Sequence};
use crate::tokenizer::TextTokenizer;

/// Where draft tokens come from.
pub enum Drafter<'a> {
    /// A second model sharing the target's vocabulary.
    Model(&'a mut dyn LanguageModel),
    /// The target's first `layers` blocks, then its final norm and LM head (self-speculative).
    EarlyExit {
        /// Blocks run (1 ≤ layers < the target's block count).
        layers: usize,
    },
    /// Prompt lookup: the continuation of the longest earlier match of the last ≤ `n` tokens.
    Ngram {
        /// Longest suffix matched (≥ 1).
        n: usize,
    },
}

impl Drafter<'_> {
    /// A short name for reports: `model`, `early-exit`, `ngram`.
    pub fn kind(&self) -> &'static str {
        match self {
            Drafter::Model(_) => "model",
            Drafter::EarlyExit { .. } => "early-exit",
            Drafter::Ngram { .. } => "ngram",
        }
    }
}

/// A finished speculative generation and its speculation counts.
#[derive(Debug, Clone)]
pub struct SpeculativeGeneration {
    /// The generation.
    pub generation: Generation,
    /// Drafted and accepted tokens, target forwards, tokens generated.
    pub stats: SpeculationStats,
}

/// A running request.
struct Running {
    index: usize,
    state: Sequence,
    /// The target's sequence and how many history tokens its KV cache holds.
    seq: SeqId,
    fed: usize,
    /// The drafter's sequence (draft model or early exit) and how many tokens of
    /// history + drafts its KV cache holds.
    draft_seq: Option<SeqId>,
    draft_fed: usize,
    /// The draft model's sampler (same pipeline, its own RNG stream).
    draft_sampler: Option<SequenceSampler>,
    /// The draft sampler's states this round: at its start, then after each draft token.
    draft_states: Vec<SamplerState>,
    /// This round's draft tokens, their dense `q` rows (empty for one-hot drafts), and how many
    /// to draft.
    drafts: Vec<u32>,
    q: Vec<Vec<f32>>,
    want: usize,
    /// What the current forward feeds (reused buffer).
    feed: Vec<u32>,
    stats: SpeculationStats,
}

/// The RNG stream of a draft model's sampler (the target's sampler uses stream 0).
const DRAFT_STREAM: u64 = 1;

/// Checks the drafter against the target: same vocabulary for a draft model
/// ([`EngineError::DraftVocabMismatch`] naming both sizes), early exit supported and
/// `1 ≤ layers < blocks`, `n ≥ 1`, `draft_tokens ≥ 1`; both models need all-position logits
/// and KV rollback.
pub fn check_drafter(
    target: &dyn LanguageModel,
    drafter: &Drafter<'_>,
    draft_tokens: usize,
) -> Result<()> {
    let info = target.info();
    if draft_tokens == 0 {
        return Err(bad_request("draft_tokens", 0, "must be at least 1"));
    }
    for c in [Capability::AllLogits, Capability::Rollback] {
        if !info.capabilities.has(c) {
            return Err(unsupported(info, c));
        }
    }
    match drafter {
        Drafter::Model(d) => {
            let di = d.info();
            if di.vocab_size != info.vocab_size {
                return Err(EngineError::DraftVocabMismatch {
                    target: info.vocab_size,
                    draft: di.vocab_size,
                });
            }
            if !di.capabilities.rollback {
                return Err(unsupported(di, Capability::Rollback));
            }
        }
        Drafter::EarlyExit { layers } => {
            if !info.capabilities.early_exit {
                return Err(unsupported(info, Capability::EarlyExit));
            }
            if *layers == 0 || *layers >= info.n_layers {
                return Err(bad_request(
                    "draft_layers",
                    layers,
                    format!(
                        "must be 1 to {} (the target has {} blocks)",
                        info.n_layers - 1,
                        info.n_layers
                    ),
                ));
            }
        }
        Drafter::Ngram { n } => {
            if *n == 0 {
                return Err(bad_request("draft_ngram", 0, "must be at least 1"));
            }
        }
    }
    Ok(())
}

/// Runs every request to completion on `target` with draft tokens from `drafter`, at most
/// `draft_tokens` (G ≥ 1) per round; `tok` is the target's tokenizer. `on_text(i, piece)`
/// receives request `i`'s newly released text. Results come back in request order, each with
/// its speculation counts. A model or sampling error fails the whole call.
pub fn generate_speculative(
    target: &mut dyn LanguageModel,
    mut drafter: Drafter<'_>,
    tok: &TextTokenizer,
    requests: Vec<GenerationRequest>,
    draft_tokens: usize,
    on_text: &mut dyn FnMut(usize, &str),
) -> Result<Vec<SpeculativeGeneration>> {
    check_drafter(target, &drafter, draft_tokens)?;
    let cap = match &drafter {
        Drafter::Model(d) => target.max_sequences().min(d.max_sequences()),
        Drafter::EarlyExit { .. } => target.max_sequences() / 2,
        Drafter::Ngram { .. } => target.max_sequences(),
    }
    .max(1);
    let n = requests.len();
    let mut out: Vec<Option<SpeculativeGeneration>> = (0..n).map(|_| None).collect();
    let mut pending = requests.into_iter().enumerate();
    let mut running: Vec<Running> = Vec::new();
    let mut scratch = Scratch::default();
    let result = (|| -> Result<()> {
        loop {
            while running.len() < cap {
                let Some((index, r)) = pending.next() else {
                    break;
                };
                let draft_sampler =
                    matches!(drafter, Drafter::Model(_) | Drafter::EarlyExit { .. })
                        .then(|| SequenceSampler::new(r.pipeline.clone(), r.seed, DRAFT_STREAM, 0));
                let state = Sequence::new(r, target.info())?;
                if state.finish_reason().is_some() {
                    out[index] = Some(SpeculativeGeneration {
                        generation: state.into_generation(),
                        stats: SpeculationStats::default(),
                    });
                    continue;
                }
                let seq = target.new_sequence()?;
                let draft_seq = match &mut drafter {
                    Drafter::Model(d) => Some(d.new_sequence()),
                    Drafter::EarlyExit { .. } => Some(target.new_sequence()),
                    Drafter::Ngram { .. } => None,
                };
                let draft_seq = match draft_seq.transpose() {
                    Ok(s) => s,
                    Err(e) => {
                        target.free_sequence(seq);
                        return Err(e);
                    }
                };
                running.push(Running {
                    index,
                    state,
                    seq,
                    fed: 0,
                    draft_seq,
                    draft_fed: 0,
                    draft_sampler,
                    draft_states: Vec::new(),
                    drafts: Vec::new(),
                    q: Vec::new(),
                    want: 0,
                    feed: Vec::new(),
                    stats: SpeculationStats::default(),
                });
            }
            if running.is_empty() {
                return Ok(());
            }
            draft_round(target, &mut drafter, &mut running, draft_tokens)?;
            verify_round(
                target,
                &mut drafter,
                &mut running,
                tok,
                &mut scratch,
                on_text,
            )?;
            let mut i = 0;
            while i < running.len() {
                if running[i].state.finish_reason().is_some() {
                    let r = running.remove(i);
                    free(target, &mut drafter, &r);
                    out[r.index] = Some(SpeculativeGeneration {
                        generation: r.state.into_generation(),
                        stats: r.stats,
                    });
                } else {
                    i += 1;
                }
            }
        }
    })();
    for r in running.drain(..) {
        free(target, &mut drafter, &r);
    }
    result?;
    Ok(out.into_iter().flatten().collect())
}

/// Frees a request's sequences in both models.
fn free(target: &mut dyn LanguageModel, drafter: &mut Drafter<'_>, r: &Running) {
    target.free_sequence(r.seq);
    if let Some(d) = r.draft_seq {
        match drafter {
            Drafter::Model(m) => m.free_sequence(d),
            Drafter::EarlyExit { .. } => target.free_sequence(d),
            Drafter::Ngram { .. } => {}
        }
    }
}

/// Buffers reused across rounds: the target's dense `p` and the residual.
#[derive(Default)]
struct Scratch {
    p: Vec<f32>,
    residual: Vec<f64>,
}

/// How many tokens a sequence may draft this round: at most `g`, leaving room for the round's
/// extra token within its limits and within the drafter's context.
fn draft_budget(r: &Running, g: usize, draft_max_len: usize) -> usize {
    let room = draft_max_len.saturating_sub(r.state.history().len());
    g.min(r.state.remaining().saturating_sub(1)).min(room)
}

/// Fills every running sequence's `drafts` (and, for model drafters, the dense `q` rows): one
/// drafter forward per draft position for all sequences at once.
fn draft_round(
    target: &mut dyn LanguageModel,
    drafter: &mut Drafter<'_>,
    running: &mut [Running],
    g: usize,
) -> Result<()> {
    let draft_max_len = match drafter {
        Drafter::Model(d) => d.info().max_seq_len,
        _ => target.info().max_seq_len,
    };
    for r in running.iter_mut() {
        r.drafts.clear();
        r.q.clear();
        r.want = draft_budget(r, g, draft_max_len);
        r.draft_states.clear();
        r.draft_states
            .extend(r.draft_sampler.as_ref().map(SequenceSampler::snapshot));
    }
    let (model, exit_after): (&mut dyn LanguageModel, Option<usize>) = match drafter {
        Drafter::Ngram { n } => {
            for r in running.iter_mut() {
                r.drafts = ngram_draft(r.state.history(), *n, r.want);
            }
            return Ok(());
        }
        Drafter::Model(d) => (&mut **d, None),
        Drafter::EarlyExit { layers } => (target, Some(*layers)),
    };
    let mut pdense = Vec::new();
    loop {
        let active: Vec<usize> = (0..running.len())
            .filter(|&i| running[i].drafts.len() < running[i].want)
            .collect();
        if active.is_empty() {
            return Ok(());
        }
        for &i in &active {
            let r = &mut running[i];
            let hist = r.state.history();
            r.feed.clear();
            let hl = hist.len();
            // history + drafts so far, from what the drafter's cache holds.
            if r.draft_fed < hl {
                r.feed.extend_from_slice(&hist[r.draft_fed..]);
                r.feed.extend_from_slice(&r.drafts);
            } else {
                r.feed.extend_from_slice(&r.drafts[r.draft_fed - hl..]);
            }
        }
        let feeds: Vec<Feed<'_>> = active
            .iter()
            .map(|&i| {
                let r = &running[i];
                let f = Feed::tokens(r.draft_seq.unwrap_or_default(), &r.feed);
                match exit_after {
                    Some(k) => f.with_exit_after(k),
                    None => f,
                }
            })
            .collect();
        let out = model.forward(&feeds)?;
        for (k, &i) in active.iter().enumerate() {
            let r = &mut running[i];
            r.draft_fed = r.state.history().len() + r.drafts.len();
            let Some(sampler) = r.draft_sampler.as_mut() else {
                continue;
            };
            let mut ctx_hist = r.state.history().to_vec();
            ctx_hist.extend_from_slice(&r.drafts);
            let prompt_len = r.state.prompt().len();
            let ctx = Context::new(&ctx_hist, prompt_len);
            let dist = sampler.distribution(out.last_row(k), &ctx, k)?;
            pdense.resize(dist.vocab(), 0.0);
            dist.write_probs(&mut pdense);
            let s = sampler.draw()?;
            sampler.accept(s.token);
            r.draft_states.push(sampler.snapshot());
            r.q.push(pdense.clone());
            r.drafts.push(s.token);
        }
    }
}

/// One target forward verifying every sequence's draft, then per sequence the accept / reject
/// walk, the KV rollbacks and the draft sampler's catch-up.
fn verify_round(
    target: &mut dyn LanguageModel,
    drafter: &mut Drafter<'_>,
    running: &mut [Running],
    tok: &TextTokenizer,
    scratch: &mut Scratch,
    on_text: &mut dyn FnMut(usize, &str),
) -> Result<()> {
    prefill_long_prompts(target, running)?;
    for r in running.iter_mut() {
        r.feed.clear();
        r.feed.extend_from_slice(&r.state.history()[r.fed..]);
        r.feed.extend_from_slice(&r.drafts);
    }
    let feeds: Vec<Feed<'_>> = running
        .iter()
        .map(|r| Feed::tokens(r.seq, &r.feed).with_all_logits())
        .collect();
    let out = target.forward(&feeds)?;
    for (k, r) in running.iter_mut().enumerate() {
        let before = r.state.history().len();
        let rows = &out.rows[k];
        let g = r.drafts.len();
        let base = rows.end - (g + 1);
        let mut accepted = 0;
        for i in 0..=g {
            let row = out.logits.row(base + i);
            let dist = r.state.distribution(row, base + i)?;
            let adv = if i == g {
                r.state.draw(tok)?
            } else {
                let x = r.drafts[i];
                scratch.p.resize(dist.vocab(), 0.0);
                dist.write_probs(&mut scratch.p);
                let q = match r.q.get(i) {
                    Some(q) => Proposal::Dense(q),
                    None => Proposal::OneHot,
                };
                let u = r.state.next_uniform();
                match judge(&scratch.p, q, x, u)? {
                    Verdict::Accepted => {
                        accepted += 1;
                        r.state.commit(x, tok)?
                    }
                    Verdict::Rejected => {
                        let u = r.state.next_uniform();
                        let y = resample(&scratch.p, q, x, u, &mut scratch.residual)?;
                        let adv = r.state.commit(y, tok)?;
                        release(r, &adv, on_text);
                        break;
                    }
                }
            };
            release(r, &adv, on_text);
            if adv.finished.is_some() {
                break;
            }
        }
        let after = r.state.history().len();
        r.stats.drafted += g;
        r.stats.accepted += accepted;
        r.stats.target_forwards += 1;
        r.stats.generated += after - before;
        reconcile(target, drafter, r, before)?;
    }
    Ok(())
}

/// Unfed history beyond which a sequence's prompt is prefilled in a forward of its own.
const PREFILL_SPLIT: usize = 64;

/// Feeds every sequence whose unfed history is longer than [`PREFILL_SPLIT`] all but its last two
/// unfed tokens, in one forward without all-position logits, so that verification (which needs
/// every fed position's logits) holds at most the last two prompt tokens and the draft — memory
/// `O((G + 2)·V)` per sequence instead of `O(prompt·V)`. Both forwards feed at least two
/// positions, as a whole prefill does.
fn prefill_long_prompts(target: &mut dyn LanguageModel, running: &mut [Running]) -> Result<()> {
    let long: Vec<usize> = (0..running.len())
        .filter(|&i| running[i].state.history().len() - running[i].fed > PREFILL_SPLIT)
        .collect();
    if long.is_empty() {
        return Ok(());
    }
    let feeds: Vec<Feed<'_>> = long
        .iter()
        .map(|&i| {
            let r = &running[i];
            let h = r.state.history();
            Feed::tokens(r.seq, &h[r.fed..h.len() - 2])
        })
        .collect();
    target.forward(&feeds)?;
    for i in long {
        let r = &mut running[i];
        r.fed = r.state.history().len() - 2;
        r.stats.target_forwards += 1;
    }
    Ok(())
}

/// Streams the text an advance released.
fn release(r: &Running, adv: &crate::sequence::Advance, on_text: &mut dyn FnMut(usize, &str)) {
    let text = &r.state.text()[adv.text.clone()];
    if !text.is_empty() {
        on_text(r.index, text);
    }
}

/// After a round that started with `before` history tokens: both KV caches are cut back to the
/// part that still matches the history, and the draft sampler's stages are rolled back to their
/// state after the last kept draft token and observe the round's last token (its RNG position
/// stays where drafting left it).
fn reconcile(
    target: &mut dyn LanguageModel,
    drafter: &mut Drafter<'_>,
    r: &mut Running,
    before: usize,
) -> Result<()> {
    let hist = r.state.history();
    let kept = common_prefix(&r.drafts, &hist[before..]);
    // The target's cache holds the history up to `before` and every draft token.
    let valid = before + kept;
    if r.state.finish_reason().is_none() {
        target.truncate(r.seq, valid)?;
    }
    r.fed = valid;
    if let Some(d) = r.draft_seq {
        let dvalid = r.draft_fed.min(valid);
        if r.state.finish_reason().is_none() && dvalid < r.draft_fed {
            match drafter {
                Drafter::Model(m) => m.truncate(d, dvalid)?,
                Drafter::EarlyExit { .. } => target.truncate(d, dvalid)?,
                Drafter::Ngram { .. } => {}
            }
        }
        r.draft_fed = dvalid;
    }
    // The draft sampler returns to its state after the last kept draft token (RNG excepted)
    // and observes the round's last token (a correction or bonus) on top.
    if let (Some(sampler), Some(state)) = (r.draft_sampler.as_mut(), r.draft_states.get(kept)) {
        let mut state = state.clone();
        state.rng_word_pos = sampler.snapshot().rng_word_pos;
        sampler.restore(&state)?;
        for &t in &hist[before + kept..] {
            sampler.accept(t);
        }
    }
    Ok(())
}
