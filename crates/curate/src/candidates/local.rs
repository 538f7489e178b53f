//! The local backend: the engine's [`Scheduler`] over a model on this machine. Jobs of any
//! prompt, pipeline and seed decode together in one batch; the batch is kept full — a job joins
//! as soon as another finishes — so every step decodes as many sequences as the model's slots
//! allow.

use std::collections::HashMap;

use adasamp_engine::{GenerationRequest, LoadedModel, RequestId, Scheduler};

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
        let mut sched = Scheduler::new(model.as_mut(), tokenizer, self.batch);
        let slots = sched.capacity();
        let mut running: HashMap<RequestId, Job> = HashMap::new();
        let mut pending = jobs.iter();
        loop {
            while running.len() < slots {
                let Some(&job) = pending.next() else { break };
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
            let finished: Vec<_> = sched.take_finished().collect();
            for f in finished {
                let Some(job) = running.remove(&f.id) else {
                    continue;
                };
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
                if pending.len() == 0 {
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
