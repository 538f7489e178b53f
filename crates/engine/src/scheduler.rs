//! The step-wise scheduler: requests join and leave at any step; each step is one model forward
//! that prefills the newly admitted prompts and decodes one token for every running sequence.
//!
//! Requests wait in FIFO order until a slot is free (at most `min(cap, model.max_sequences())`
//! run at once). A sequence that ends (EOS, stop string, token limit), fails (a sampling error)
//! or is cancelled has its model sequence and KV cache freed at once; the others continue
//! unchanged.
//!
//! Timing: a step's forward time is split between prefill and decode in proportion to the
//! tokens of each kind it fed (a step with only prompts is all prefill, one with only decode
//! tokens all decode); sampling — pipelines, draws, detokenization and stop strings — is timed
//! apart. Time spent in a step observer ([`Scheduler::step_observed`]) is counted in neither.
//!
//! Prompts: by default every admitted prompt is prefilled whole, in the step that admits it.
//! [`SchedulerOptions`] adds a prefix cache (a request that finishes keeps its KV cache; a new
//! request starts from the cached sequence sharing the longest prefix with its prompt, so only
//! the rest is prefilled) and a per-step prefill budget (a long prompt is fed over several
//! steps while the running sequences go on decoding, instead of stalling them all for one long
//! step). Neither changes what a request generates on a backend whose logits for a position do
//! not depend on how its prompt was cut into forwards of two or more positions (llama.cpp as
//! this crate drives it, and candle; tested on the default model and a tiny random one).
//!
//! Loops that need more than tokens and text — an evaluation comparing each position's raw row
//! with the distribution sampled from, a draft model whose probabilities a verifier needs — run
//! [`Scheduler::step_observed`]: it shows each sampled position's raw logits row and final
//! distribution, borrowed, to a callback; [`Scheduler::step`] copies nothing.

use std::collections::VecDeque;
use std::ops::Range;
use std::time::{Duration, Instant};

use adasamp_sampling::Distribution;

use crate::error::{EngineError, Result};
use crate::model::{Feed, ForwardOutput, LanguageModel, SeqId};
use crate::sequence::{FinishReason, Generation, GenerationRequest, Sequence};
use crate::tokenizer::TextTokenizer;

/// Identifies a request within one [`Scheduler`]: assigned by [`Scheduler::add`] in order,
/// from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "request {}", self.0)
    }
}

/// Time spent, for throughput reporting.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timing {
    /// Prefill (prompt processing) time: the prompt tokens' share of each forward.
    pub prefill: Duration,
    /// Decode time: the decoded tokens' share of each forward.
    pub decode: Duration,
    /// Sampling (pipelines + draws, detokenization, stop strings).
    pub sampling: Duration,
    /// Prompt tokens processed.
    pub prefill_tokens: usize,
    /// Tokens decoded (one per running sequence per step).
    pub decode_tokens: usize,
}

impl Timing {
    /// Adds one forward of `prefill` prompt tokens and `decode` decoded tokens that took
    /// `elapsed`: `prefill += elapsed·p/(p+d)`, `decode += elapsed·d/(p+d)`.
    fn add_forward(&mut self, elapsed: Duration, prefill: usize, decode: usize) {
        let total = prefill + decode;
        if total == 0 {
            return;
        }
        let share = elapsed.mul_f64(prefill as f64 / total as f64);
        self.prefill += share;
        self.decode += elapsed.saturating_sub(share);
        self.prefill_tokens += prefill;
        self.decode_tokens += decode;
    }
}

/// How a [`Scheduler`] feeds prompts. The default prefills every admitted prompt whole, from
/// scratch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedulerOptions {
    /// Keep the model sequence (and KV cache) of every request that finishes normally, and
    /// start a new request from the cached sequence whose prompt shares the longest prefix with
    /// its prompt, rolled back to that prefix ([`LanguageModel::truncate`]): only the rest of
    /// the prompt is prefilled. At least the prompt's last two tokens are always fed (a prompt
    /// position is computed among several, as in a whole prefill; its last logits give the
    /// first token). Cached sequences hold model sequences no running request uses; the least
    /// recently cached one is freed when a request needs a sequence and the model has none free.
    pub prefix_cache: bool,
    /// Prompt tokens fed in one step at most, over every request being prefilled, in admission
    /// order (`None`: whole prompts; at least 3). A prompt longer than what is left is fed over
    /// several steps, never one token at a time (a piece of a longer prompt is at least two
    /// tokens, as in a whole prefill); running sequences decode one token in each of them.
    pub prefill_budget: Option<usize>,
}

/// A finished request's model sequence kept for its KV cache.
#[derive(Debug)]
struct CachedSequence {
    seq: SeqId,
    /// Its request's prompt: the part of its cache a new request may start from (the generated
    /// tokens' cache was computed one position at a time, which llama.cpp rounds differently
    /// from a prompt's several positions: reusing it would change what a request generates).
    prompt: Vec<u32>,
}

/// The length of the common prefix of `a` and `b`.
pub(crate) fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// How many of a prompt's `unfed` tokens to feed with `budget` left: as many as fit, but never a
/// single token of a longer rest, nor leaving a single one for later (0 = wait for the next
/// step). With a budget of at least 3 the first prompt in line always advances.
fn prompt_piece(unfed: usize, budget: usize) -> usize {
    let mut n = unfed.min(budget);
    if n < unfed && unfed - n == 1 {
        n -= 1;
    }
    if n == 1 && unfed > 1 {
        n = 0;
    }
    n
}

/// How a request ended in a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepEnd {
    /// It finished normally; its generation is waiting in [`Scheduler::take_finished`].
    Finished(FinishReason),
    /// It failed (the error is waiting in [`Scheduler::take_finished`]); the others go on.
    Failed,
}

/// What one step did to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepEvent {
    /// The request.
    pub id: RequestId,
    tokens: Range<usize>,
    text: Range<usize>,
    /// Set when the request ended in this step.
    pub end: Option<StepEnd>,
}

/// What one [`Scheduler::step`] did: one event per request that sampled a token (or failed to)
/// in the step, in feed order; a request whose prompt is still being prefilled has none.
/// Buffers are reused from step to step.
#[derive(Debug, Clone, Default)]
pub struct StepReport {
    events: Vec<StepEvent>,
    tokens: Vec<u32>,
    text: String,
    /// Prompt tokens prefilled in this step.
    pub prefill_tokens: usize,
    /// Tokens decoded in this step (one per running sequence fed).
    pub decode_tokens: usize,
    /// Prompt tokens of the requests admitted in this step that were found in the prefix cache
    /// (not prefilled).
    pub cached_tokens: usize,
}

impl StepReport {
    /// The events, in feed order.
    pub fn events(&self) -> &[StepEvent] {
        &self.events
    }

    /// The tokens `event`'s request generated in this step.
    pub fn tokens(&self, event: &StepEvent) -> &[u32] {
        &self.tokens[event.tokens.clone()]
    }

    /// The text `event`'s request released in this step (for streaming; may be empty).
    pub fn text(&self, event: &StepEvent) -> &str {
        &self.text[event.text.clone()]
    }

    fn clear(&mut self) {
        self.events.clear();
        self.tokens.clear();
        self.text.clear();
        self.prefill_tokens = 0;
        self.decode_tokens = 0;
        self.cached_tokens = 0;
    }
}

/// One request's position sampled in a step, shown to the observer of
/// [`Scheduler::step_observed`] right after its token was chosen and appended. Everything is
/// borrowed for the duration of the call: an observer that keeps a row copies it.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// The request.
    pub id: RequestId,
    /// The model's raw logits row for the sampled position (before the pipeline).
    pub logits: &'a [f32],
    /// The final distribution the token was drawn from: the pipeline-processed row, normalised
    /// (`distribution.row()` holds its logits, removed tokens `-inf` or absent).
    pub distribution: Distribution<'a>,
    /// The chosen token.
    pub token: u32,
    /// The request's state with the token appended (history, text, finish reason if it ended).
    pub sequence: &'a Sequence,
}

/// A request that ended: its generation, or the error that ended it alone.
#[derive(Debug)]
pub struct Finished {
    /// The request.
    pub id: RequestId,
    /// The generation, or why this sequence failed.
    pub result: Result<Generation>,
}

/// A running request: its state and its sequence in the model.
#[derive(Debug)]
struct Running {
    id: RequestId,
    seq: SeqId,
    /// How many tokens of the history are in the model's KV cache (fewer than the prompt's
    /// while it is being prefilled).
    fed: usize,
    state: Sequence,
    /// Why it failed in the current step, if it did.
    failure: Option<EngineError>,
}

/// Runs requests step by step over one model. Every model sequence it created is freed when
/// its request ends (or, with the prefix cache, when its cached copy is evicted), when a forward
/// fails, and on drop.
pub struct Scheduler<'m> {
    model: &'m mut dyn LanguageModel,
    tok: &'m TextTokenizer,
    capacity: usize,
    options: SchedulerOptions,
    /// The prefix cache, least recently cached first.
    cached: Vec<CachedSequence>,
    /// This step's feeds: (index into `running`, tokens fed) (reused buffer).
    plan: Vec<(usize, usize)>,
    next_id: u64,
    waiting: VecDeque<(RequestId, Sequence)>,
    running: Vec<Running>,
    finished: Vec<Finished>,
    report: StepReport,
    timing: Timing,
    /// Indices into `running` of sequences that ended in the current step (reused buffer).
    ended: Vec<usize>,
}

impl<'m> Scheduler<'m> {
    /// A scheduler running at most `min(cap, model.max_sequences())` sequences at once (at
    /// least one), prefilling whole prompts from scratch.
    pub fn new(model: &'m mut dyn LanguageModel, tok: &'m TextTokenizer, cap: usize) -> Self {
        Self::with_options(model, tok, cap, SchedulerOptions::default())
    }

    /// [`Scheduler::new`] with a prefix cache and a prefill budget as `options` say.
    pub fn with_options(
        model: &'m mut dyn LanguageModel,
        tok: &'m TextTokenizer,
        cap: usize,
        options: SchedulerOptions,
    ) -> Self {
        let capacity = cap.min(model.max_sequences()).max(1);
        let options = SchedulerOptions {
            prefill_budget: options.prefill_budget.map(|b| b.max(3)),
            ..options
        };
        Self {
            model,
            tok,
            capacity,
            options,
            cached: Vec::new(),
            plan: Vec::new(),
            next_id: 0,
            waiting: VecDeque::new(),
            running: Vec::with_capacity(capacity.min(1024)),
            finished: Vec::new(),
            report: StepReport::default(),
            timing: Timing::default(),
            ended: Vec::new(),
        }
    }

    /// How many sequences may run at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The options it runs with.
    pub fn options(&self) -> SchedulerOptions {
        self.options
    }

    /// How many finished requests' sequences the prefix cache holds.
    pub fn cached_sequences(&self) -> usize {
        self.cached.len()
    }

    /// Queues a request (it is admitted, in FIFO order, when a slot is free). Errors: a request
    /// the model cannot serve (empty prompt, token outside the vocabulary, prompt longer than
    /// the context). A request with `max_new_tokens = 0` finishes at once.
    pub fn add(&mut self, request: GenerationRequest) -> Result<RequestId> {
        let state = Sequence::new(request, self.model.info())?;
        let id = RequestId(self.next_id);
        self.next_id += 1;
        if state.finish_reason().is_some() {
            self.finished.push(Finished {
                id,
                result: Ok(state.into_generation()),
            });
        } else {
            self.waiting.push_back((id, state));
        }
        Ok(id)
    }

    /// Cancels a waiting or running request: its model sequence and KV cache are freed at once
    /// and no generation is reported for it. Returns whether the request was waiting or
    /// running.
    pub fn cancel(&mut self, id: RequestId) -> bool {
        if let Some(i) = self.running.iter().position(|r| r.id == id) {
            let r = self.running.remove(i);
            self.model.free_sequence(r.seq);
            return true;
        }
        if let Some(i) = self.waiting.iter().position(|(w, _)| *w == id) {
            self.waiting.remove(i);
            return true;
        }
        false
    }

    /// Whether no request is waiting or running.
    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.running.is_empty()
    }

    /// Requests waiting for a slot, in admission order.
    pub fn waiting(&self) -> impl Iterator<Item = RequestId> + '_ {
        self.waiting.iter().map(|(id, _)| *id)
    }

    /// Requests running, in feed order.
    pub fn running(&self) -> impl Iterator<Item = RequestId> + '_ {
        self.running.iter().map(|r| r.id)
    }

    /// The state of a waiting or running request.
    pub fn sequence(&self, id: RequestId) -> Option<&Sequence> {
        self.running
            .iter()
            .find(|r| r.id == id)
            .map(|r| &r.state)
            .or_else(|| self.waiting.iter().find(|(w, _)| *w == id).map(|(_, s)| s))
    }

    /// The model sequence of a running request.
    pub fn model_sequence(&self, id: RequestId) -> Option<SeqId> {
        self.running.iter().find(|r| r.id == id).map(|r| r.seq)
    }

    /// The model.
    pub fn model(&self) -> &dyn LanguageModel {
        &*self.model
    }

    /// Time spent so far.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// Takes the requests that ended (normally or with an error) since the last call, in the
    /// order they ended.
    pub fn take_finished(&mut self) -> std::vec::Drain<'_, Finished> {
        self.finished.drain(..)
    }

    /// Runs one step: admits waiting requests into free slots, then one forward that prefills
    /// the admitted prompts and feeds every running sequence its last sampled token, then samples
    /// one token for each. Returns what happened per request. With nothing to run it does
    /// nothing. A forward error fails the step and ends every running request (their sequences
    /// are freed and each is reported finished with an error; waiting requests stay queued); a
    /// sampling error ends only its own request. When the model refuses a new sequence while
    /// none is running, the step fails and the request stays first in line.
    pub fn step(&mut self) -> Result<&StepReport> {
        self.run_step(None)
    }

    /// [`Scheduler::step`], showing `observer` every position sampled in the step (in feed
    /// order; a request whose sampling failed is not shown). Its time is not counted in
    /// [`Scheduler::timing`].
    pub fn step_observed(
        &mut self,
        observer: &mut dyn FnMut(&Observation<'_>),
    ) -> Result<&StepReport> {
        self.run_step(Some(observer))
    }

    /// One step (see [`Scheduler::step`]), with an optional observer of the sampled positions.
    fn run_step(
        &mut self,
        observer: Option<&mut dyn FnMut(&Observation<'_>)>,
    ) -> Result<&StepReport> {
        self.report.clear();
        self.admit()?;
        if self.running.is_empty() {
            return Ok(&self.report);
        }
        let t0 = Instant::now();
        let out = match self.forward() {
            Ok(out) => out,
            Err(e) => {
                for r in self.running.drain(..) {
                    self.model.free_sequence(r.seq);
                    self.finished.push(Finished {
                        id: r.id,
                        result: Err(EngineError::BackendFailure {
                            backend: self.model.info().backend,
                            reason: format!("{}: ended by a failed model step: {e}", r.id),
                        }),
                    });
                }
                return Err(e);
            }
        };
        self.timing.add_forward(
            t0.elapsed(),
            self.report.prefill_tokens,
            self.report.decode_tokens,
        );
        let ts = Instant::now();
        let observed = self.sample_all(&out, observer);
        self.retire_ended();
        self.timing.sampling += ts.elapsed().saturating_sub(observed);
        Ok(&self.report)
    }

    /// Moves waiting requests into free slots, giving each a model sequence (see
    /// [`Scheduler::claim_sequence`]).
    fn admit(&mut self) -> Result<()> {
        while self.running.len() < self.capacity {
            let Some((id, state)) = self.waiting.pop_front() else {
                break;
            };
            match self.claim_sequence(state.prompt()) {
                Ok((seq, fed)) => {
                    self.report.cached_tokens += fed;
                    self.running.push(Running {
                        id,
                        seq,
                        fed,
                        state,
                        failure: None,
                    })
                }
                Err(e) => {
                    self.waiting.push_front((id, state));
                    // With others running, wait for one of them to free its sequence.
                    if self.running.is_empty() {
                        return Err(e);
                    }
                    break;
                }
            }
        }
        Ok(())
    }

    /// A model sequence for a request with `prompt` and how many of its tokens are already in
    /// its KV cache: a cached sequence rolled back to the prefix it shares with the prompt (see
    /// [`Scheduler::pick_cached`]), else a new one — freeing the least recently cached sequence
    /// while the model has none free.
    fn claim_sequence(&mut self, prompt: &[u32]) -> Result<(SeqId, usize)> {
        if let Some((k, reuse)) = self.pick_cached(prompt) {
            let c = self.cached.remove(k);
            if self.model.truncate(c.seq, reuse).is_ok() {
                return Ok((c.seq, reuse));
            }
            self.model.free_sequence(c.seq);
        }
        loop {
            match self.model.new_sequence() {
                Ok(seq) => return Ok((seq, 0)),
                Err(e) if self.cached.is_empty() => return Err(e),
                Err(_) => {
                    let c = self.cached.remove(0);
                    self.model.free_sequence(c.seq);
                }
            }
        }
    }

    /// The cached sequence to start a request with `prompt` from, and how many tokens of it to
    /// keep: the longest common prefix of the two prompts, leaving at least two tokens to feed
    /// (most recently cached first among equals). While the model has a free sequence, a cached
    /// one is only taken when the new prompt keeps all of its prompt (the same prompt again, or
    /// a conversation going on): one that would lose its own prompt stays cached for a request
    /// that repeats it.
    fn pick_cached(&self, prompt: &[u32]) -> Option<(usize, usize)> {
        let limit = prompt.len().saturating_sub(2);
        let (k, reuse) = self
            .cached
            .iter()
            .enumerate()
            .map(|(k, c)| (k, common_prefix(&c.prompt, prompt).min(limit)))
            .max_by_key(|&(k, reuse)| (reuse, k))?;
        let free = self.running.len() + self.cached.len() < self.model.max_sequences();
        let keeps_its_prompt = reuse >= self.cached[k].prompt.len().min(limit);
        if reuse == 0 || free && !keeps_its_prompt {
            return None;
        }
        Some((k, reuse))
    }

    /// The one model call of a step: every decoding sequence's last token, and the prompts
    /// being prefilled as far as the prefill budget allows (in admission order), one feed each.
    fn forward(&mut self) -> Result<ForwardOutput> {
        self.plan.clear();
        let mut budget = self.options.prefill_budget.unwrap_or(usize::MAX);
        for (i, r) in self.running.iter().enumerate() {
            let unfed = r.state.history().len() - r.fed;
            let n = if r.fed < r.state.prompt().len() {
                let n = prompt_piece(unfed, budget);
                budget -= n;
                self.report.prefill_tokens += n;
                n
            } else {
                self.report.decode_tokens += unfed;
                unfed
            };
            if n > 0 {
                self.plan.push((i, n));
            }
        }
        let feeds: Vec<Feed<'_>> = self
            .plan
            .iter()
            .map(|&(i, n)| {
                let r = &self.running[i];
                Feed::tokens(r.seq, &r.state.history()[r.fed..r.fed + n])
            })
            .collect();
        let out = self.model.forward(&feeds)?;
        if out.rows.len() != feeds.len() || out.rows.iter().any(|r| r.is_empty()) {
            return Err(EngineError::BackendFailure {
                backend: self.model.info().backend,
                reason: format!(
                    "returned logits for {} of {} feeds",
                    out.rows.iter().filter(|r| !r.is_empty()).count(),
                    feeds.len()
                ),
            });
        }
        Ok(out)
    }

    /// Advances every fed sequence; samples one token for each whose history is now all fed
    /// (a prompt still being prefilled waits), records the events and shows each sampled
    /// position to `observer`; returns the time spent in the observer.
    fn sample_all(
        &mut self,
        out: &ForwardOutput,
        mut observer: Option<&mut dyn FnMut(&Observation<'_>)>,
    ) -> Duration {
        let mut observed = Duration::ZERO;
        self.ended.clear();
        for (row, &(i, n)) in self.plan.iter().enumerate() {
            let r = &mut self.running[i];
            r.fed += n;
            if r.fed < r.state.history().len() {
                continue;
            }
            let tokens_from = self.report.tokens.len();
            let text_from = self.report.text.len();
            let logits = out.last_row(row);
            let end = match r.state.decode(logits, row, self.tok) {
                Ok(adv) => {
                    if let Some(obs) = observer.as_deref_mut() {
                        // `decode` just computed the distribution it drew from.
                        if let Some(distribution) = r.state.sampler().current() {
                            let t = Instant::now();
                            obs(&Observation {
                                id: r.id,
                                logits,
                                distribution,
                                token: adv.token,
                                sequence: &r.state,
                            });
                            observed += t.elapsed();
                        }
                    }
                    self.report.tokens.push(adv.token);
                    self.report.text.push_str(&r.state.text()[adv.text]);
                    adv.finished.map(StepEnd::Finished)
                }
                Err(e) => {
                    r.failure = Some(e);
                    Some(StepEnd::Failed)
                }
            };
            if end.is_some() {
                self.ended.push(i);
            }
            self.report.events.push(StepEvent {
                id: r.id,
                tokens: tokens_from..self.report.tokens.len(),
                text: text_from..self.report.text.len(),
                end,
            });
        }
        observed
    }

    /// Frees (or, with the prefix cache, caches) the sequences that ended in this step and
    /// reports them, in feed order. A failed sequence is freed.
    fn retire_ended(&mut self) {
        for (k, &i) in self.ended.iter().enumerate() {
            // Earlier removals shifted the later indices down by one each.
            let r = self.running.remove(i - k);
            let result = match r.failure {
                Some(e) => {
                    self.model.free_sequence(r.seq);
                    Err(e)
                }
                None => {
                    if self.options.prefix_cache {
                        self.cached.push(CachedSequence {
                            seq: r.seq,
                            prompt: r.state.prompt().to_vec(),
                        });
                    } else {
                        self.model.free_sequence(r.seq);
                    }
                    Ok(r.state.into_generation())
                }
            };
            self.finished.push(Finished { id: r.id, result });
        }
    }

    /// Frees every running and cached sequence and forgets them.
    fn free_all(&mut self) {
        for r in self.running.drain(..) {
            self.model.free_sequence(r.seq);
        }
        for c in self.cached.drain(..) {
            self.model.free_sequence(c.seq);
        }
    }
}

impl Drop for Scheduler<'_> {
    fn drop(&mut self) {
        self.free_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_pieces_are_never_single_and_always_advance() {
        for budget in 3..12 {
            for len in 1..60 {
                // A prompt alone in line, fed step after step.
                let (mut unfed, mut steps) = (len, 0);
                while unfed > 0 {
                    let n = prompt_piece(unfed, budget);
                    assert!(n > 0, "stuck at {unfed} of {len} with budget {budget}");
                    assert!(n <= budget);
                    assert!(len == 1 || n >= 2, "a single token of {len}");
                    unfed -= n;
                    steps += 1;
                }
                assert!(steps <= len.div_ceil(budget) + 1);
            }
        }
        // Behind another prompt, what is left may not be enough: wait rather than feed one.
        assert_eq!(prompt_piece(10, 1), 0);
        assert_eq!(prompt_piece(1, 1), 1);
        assert_eq!(prompt_piece(3, 2), 0);
        assert_eq!(prompt_piece(4, 2), 2);
    }
}
