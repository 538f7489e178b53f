//! The local backend: the engine's [`Scheduler`] over a model on this machine. Jobs of any
//! prompt, pipeline and seed decode together in one batch; the batch is kept full — a job joins
//! as soon as another finishes — so every step decodes as many sequences as the model's slots
//! allow.
//!
//! The scheduler keeps a finished job's prompt in its prefix cache, and the job that takes its
//! place is one of the same prompt when any is left ([`Pending`]): it starts from that cache and
//! prefills only its prompt's last two tokens. A prompt's jobs (pipelines × seeds) thus prefill
//! it about once per slot instead of once each; what a job generates does not change (the
//! engine's batch invariance).

use std::collections::{HashMap, VecDeque};

use adasamp_engine::{GenerationRequest, LoadedModel, RequestId, Scheduler, SchedulerOptions};

use super::{CandidateSet, Job, Outcome, Sink};
use crate::error::Result;
use crate::stage::StageReport;

/// A model on this machine and how many sequences it decodes at once.
pub struct LocalBackend<'m> {
    model: &'m mut LoadedModel,
    batch: usize,
}

impl std::fmt::Debug for LocalBackend<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBackend")
            .field("model", &self.model)
            .field("batch", &self.batch)
            .finish()
    }
}

impl<'m> LocalBackend<'m> {
    /// Decodes up to `batch` sequences at once on `model` (at most as many as it was loaded
    /// for; at least one).
    pub fn new(model: &'m mut LoadedModel, batch: usize) -> Self {
        Self { model, batch }
    }

    /// The identity of the model's tokenizer ([`crate::index::tokenizer_sha256`]), written on
    /// each record beside its `generation_tokens` so later stages know what the ids mean.
    pub fn tokenizer_sha256(&self) -> Result<String> {
        crate::index::tokenizer_sha256(&self.model.tokenizer)
    }

    /// Runs `jobs`, handing each finished one to `sink` (in the order they finish), and notes
    /// in `report` where the engine's time went. A job the model cannot take (its prompt does
    /// not fit the context, the chat template fails) or whose sampling fails is handed over as
    /// failed; a model error stops the run.
    pub(crate) fn generate(
        &mut self,
        set: &CandidateSet,
        jobs: &[Job],
        sink: &mut Sink<'_>,
        report: &mut StageReport,
    ) -> Result<()> {
        // Each prompt is templated and tokenized once, before the scheduler borrows the model.
        let mut prompts: HashMap<usize, std::result::Result<Vec<u32>, String>> = HashMap::new();
        for j in jobs {
            prompts.entry(j.prompt).or_insert_with(|| {
                let p = &set.prompts[j.prompt];
                self.model
                    .prompt_tokens(&p.prompt, set.system_for(p), false)
                    .map_err(|e| e.to_string())
            });
        }
        let LoadedModel {
            model, tokenizer, ..
        } = &mut *self.model;
        let options = SchedulerOptions {
            prefix_cache: true,
            prefill_budget: None,
        };
        let mut sched = Scheduler::with_options(model.as_mut(), tokenizer, self.batch, options);
        let slots = sched.capacity();
        let mut running: HashMap<RequestId, Job> = HashMap::new();
        let mut pending = Pending::new(jobs);
        // Prompts of the jobs that finished since the last refill: their KV caches are free.
        let mut freed: Vec<usize> = Vec::new();
        loop {
            while running.len() < slots {
                let Some(job) = pending.next(freed.pop()) else {
                    break;
                };
                let prompt = match &prompts[&job.prompt] {
                    Ok(p) => p.clone(),
                    Err(e) => {
                        sink(job, Err(e.clone()))?;
                        continue;
                    }
                };
                let request = GenerationRequest {
                    prompt,
                    pipeline: set.pipelines.pipelines()[job.pipeline].clone(),
                    seed: job.seed,
                    max_new_tokens: set.max_new_tokens,
                    stop: Vec::new(),
                    logprobs: 0,
                };
                match sched.add(request) {
                    Ok(id) => {
                        running.insert(id, job);
                    }
                    Err(e) => sink(job, Err(e.to_string()))?,
                }
            }
            freed.clear();
            let finished: Vec<_> = sched.take_finished().collect();
            for f in finished {
                let Some(job) = running.remove(&f.id) else {
                    continue;
                };
                freed.push(job.prompt);
                let outcome = f
                    .result
                    .map(|g| Outcome {
                        text: g.text,
                        tokens: Some(g.tokens),
                        finish_reason: Some(g.finish_reason),
                        usage: Some(g.usage),
                    })
                    .map_err(|e| e.to_string());
                sink(job, outcome)?;
            }
            if sched.is_idle() {
                // Every admitted request has been reported by now; one that was not would be
                // lost silently, so it is reported as failed (and left for a rerun).
                for (_, job) in running.drain() {
                    sink(
                        job,
                        Err("the scheduler ended it without a generation".into()),
                    )?;
                }
                if pending.is_empty() {
                    let t = sched.timing();
                    if t.prefill_tokens + t.decode_tokens > 0 {
                        report.note(format!(
                            "engine: prefill {} tokens in {:.1} s, decode {} tokens in {:.1} s \
                             ({:.1} tokens/s), sampling {:.1} s",
                            t.prefill_tokens,
                            t.prefill.as_secs_f64(),
                            t.decode_tokens,
                            t.decode.as_secs_f64(),
                            t.decode_tokens as f64 / t.decode.as_secs_f64().max(1e-9),
                            t.sampling.as_secs_f64()
                        ));
                    }
                    return Ok(());
                }
                continue;
            }
            sched.step()?;
        }
    }
}

/// The jobs not yet started, per prompt, handed out so that a freed slot goes to a job of the
/// prompt that just finished there (its prefix is cached) and otherwise to the prompts in turn
/// (so the first batch holds as many different prompts as it can).
#[derive(Debug)]
struct Pending {
    /// Per prompt (in order of first appearance), its jobs in the given order.
    queues: Vec<(usize, VecDeque<Job>)>,
    /// Which queue to take from next when no freed prompt has jobs left.
    turn: usize,
    left: usize,
}

impl Pending {
    fn new(jobs: &[Job]) -> Self {
        let mut queues: Vec<(usize, VecDeque<Job>)> = Vec::new();
        let mut at: HashMap<usize, usize> = HashMap::new();
        for &j in jobs {
            let q = *at.entry(j.prompt).or_insert_with(|| {
                queues.push((j.prompt, VecDeque::new()));
                queues.len() - 1
            });
            queues[q].1.push_back(j);
        }
        Self {
            queues,
            turn: 0,
            left: jobs.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.left == 0
    }

    /// The next job: one of prompt `freed` if it has any left, else the next prompt's in turn.
    fn next(&mut self, freed: Option<usize>) -> Option<Job> {
        if self.left == 0 {
            return None;
        }
        if let Some(p) = freed {
            if let Some((_, q)) = self.queues.iter_mut().find(|(prompt, _)| *prompt == p) {
                if let Some(j) = q.pop_front() {
                    self.left -= 1;
                    return Some(j);
                }
            }
        }
        let n = self.queues.len();
        for k in 0..n {
            let i = (self.turn + k) % n;
            if let Some(j) = self.queues[i].1.pop_front() {
                self.turn = (i + 1) % n;
                self.left -= 1;
                return Some(j);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(prompt: usize, seed: u64) -> Job {
        Job {
            prompt,
            pipeline: 0,
            seed,
        }
    }

    #[test]
    fn pending_takes_prompts_in_turn_then_the_freed_prompt_first() {
        let jobs: Vec<Job> = (0..3)
            .flat_map(|p| (0..3).map(move |s| job(p, s)))
            .collect();
        let mut pending = Pending::new(&jobs);
        // the first batch: one job of each prompt before a second of any
        let first: Vec<Job> = (0..4).map(|_| pending.next(None).unwrap()).collect();
        assert_eq!(first, [job(0, 0), job(1, 0), job(2, 0), job(0, 1)]);
        // prompt 2's job finished: its slot goes to prompt 2
        assert_eq!(pending.next(Some(2)), Some(job(2, 1)));
        assert_eq!(pending.next(Some(2)), Some(job(2, 2)));
        // prompt 2 has none left: the next in turn
        assert_eq!(pending.next(Some(2)), Some(job(1, 1)));
        let rest: Vec<Job> = std::iter::from_fn(|| pending.next(None)).collect();
        assert_eq!(rest, [job(0, 2), job(1, 2)]);
        assert!(pending.is_empty());
        assert_eq!(pending.next(Some(0)), None);
    }
}
