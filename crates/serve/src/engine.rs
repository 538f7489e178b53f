//! The engine thread: the one owner of the loaded model and its [`Scheduler`]. HTTP handlers
//! talk to it over channels only.
//!
//! Loop: take new commands (blocking while idle), cancel every sequence whose client is gone
//! (its event receiver was dropped: the KV cache is freed at once), run one [`Scheduler::step`],
//! and forward what it did to each request's channel — text delta, tokens, log-probabilities,
//! then the finish. Requests join and leave the running batch between steps (continuous
//! batching). Admission is counted in [`Admission`]: a handler reserves its `n` sequences there
//! before submitting, and the engine releases each one when it ends.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use adasamp_engine::chat::ChatTemplate;
use adasamp_engine::tokenizer::TextTokenizer;
use adasamp_engine::{
    BackendChoice, ComputeDevice, EngineError, Generation, GenerationRequest, LoadOptions,
    LoadedModel, ModelInfo, RequestId, Scheduler, SchedulerOptions,
};
use adasamp_sampling::Sample;
use tokio::sync::mpsc::UnboundedSender;

use crate::error::{ApiError, ServeError};
use crate::metrics::Metrics;

/// What the engine reports about one choice of a request.
#[derive(Debug)]
pub enum Event {
    /// A step generated tokens (and released `text`, possibly empty).
    Delta {
        /// The choice.
        choice: usize,
        /// Text released in this step.
        text: String,
        /// Tokens generated in this step.
        tokens: Vec<u32>,
        /// Their log-probabilities (when asked for).
        logprobs: Vec<Sample>,
    },
    /// The choice finished normally.
    Done {
        /// The choice.
        choice: usize,
        /// Its whole generation.
        generation: Generation,
    },
    /// The choice failed (it alone).
    Failed {
        /// The choice.
        choice: usize,
        /// Why.
        error: ApiError,
    },
}

/// A request for the engine: one generation per choice, and where to send its events.
#[derive(Debug)]
pub struct Submission {
    /// One generation per choice, in choice order.
    pub requests: Vec<GenerationRequest>,
    /// Events of every choice.
    pub events: UnboundedSender<Event>,
    /// When the HTTP request arrived (time-to-first-token is measured from here).
    pub received: Instant,
}

/// A command to the engine thread.
#[derive(Debug)]
pub enum Command {
    /// Run a request.
    Submit(Submission),
    /// Stop taking requests; finish running ones for at most `grace`, then cancel the rest
    /// with a "shutting down" error and end the thread.
    Shutdown {
        /// How long in-flight requests may still run.
        grace: Duration,
    },
}

/// Counts sequences in the system (running + queued) against a bound.
#[derive(Debug)]
pub struct Admission {
    in_system: AtomicUsize,
    capacity: usize,
}

impl Admission {
    /// A bound of `capacity` sequences.
    pub fn new(capacity: usize) -> Self {
        Self {
            in_system: AtomicUsize::new(0),
            capacity,
        }
    }

    /// The bound.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Reserves `n` sequences; a 429 when they do not fit.
    pub fn reserve(&self, n: usize) -> Result<(), ApiError> {
        self.in_system
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                (cur + n <= self.capacity).then_some(cur + n)
            })
            .map(|_| ())
            .map_err(|_| ApiError::overloaded(n, self.capacity))
    }

    /// Releases `n` sequences.
    pub fn release(&self, n: usize) {
        let _ = self
            .in_system
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                Some(cur.saturating_sub(n))
            });
    }

    /// Sequences in the system now.
    pub fn in_system(&self) -> usize {
        self.in_system.load(Ordering::Acquire)
    }
}

/// What handlers need of the loaded model (the model itself stays on the engine thread).
#[derive(Debug, Clone)]
pub struct ModelFacts {
    /// The model's description.
    pub info: ModelInfo,
    /// Its tokenizer.
    pub tokenizer: Arc<TextTokenizer>,
    /// Its chat template.
    pub chat: Option<Arc<ChatTemplate>>,
    /// The id `/v1/models` lists: the model file's stem.
    pub id: String,
}

/// How to load the model.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    /// The model (`None` = the default model, fetched on first use).
    pub path: Option<PathBuf>,
    /// The backend.
    pub backend: BackendChoice,
    /// Cap on prompt + generation length.
    pub max_seq_len: Option<usize>,
    /// CPU threads of the model (default: all cores).
    pub threads: Option<usize>,
    /// llama.cpp's flash attention (faster; moves the logits slightly).
    pub flash_attn: bool,
    /// Where the model runs (the CPU or a GPU).
    pub device: ComputeDevice,
}

/// A running engine thread.
#[derive(Debug)]
pub struct Engine {
    commands: Sender<Command>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Engine {
    /// Loads the model on a new thread and starts its loop with at most `max_running`
    /// sequences in the batch, scheduled as `scheduling` says. Returns once the model is loaded
    /// (or failed to).
    pub fn start(
        spec: ModelSpec,
        max_running: usize,
        scheduling: SchedulerOptions,
        admission: Arc<Admission>,
        metrics: Arc<Metrics>,
    ) -> Result<(Self, ModelFacts), ServeError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (commands, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("adasamp-engine".into())
            .spawn(move || {
                let opts = LoadOptions {
                    max_seq_len: spec.max_seq_len,
                    max_sequences: Some(max_running),
                    threads: spec.threads,
                    flash_attn: spec.flash_attn,
                    device: spec.device,
                    ..Default::default()
                };
                let lm = match adasamp_engine::load(
                    spec.path.as_deref(),
                    spec.backend,
                    opts,
                    &mut |m: &str| tracing::info!("{m}"),
                ) {
                    Ok(lm) => lm,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let id = lm
                    .path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "model".into());
                let facts = ModelFacts {
                    info: lm.model.info().clone(),
                    tokenizer: Arc::new(lm.tokenizer.clone()),
                    chat: lm.chat.clone().map(Arc::new),
                    id,
                };
                if ready_tx.send(Ok(facts)).is_err() {
                    return;
                }
                run(lm, rx, max_running, scheduling, &admission, &metrics);
            })
            .map_err(|e| ServeError::Io {
                context: "starting the engine thread".into(),
                source: e,
            })?;
        let facts = ready_rx.recv().map_err(|_| ServeError::EngineGone)??;
        Ok((
            Self {
                commands,
                thread: Some(thread),
            },
            facts,
        ))
    }

    /// A sender of commands.
    pub fn sender(&self) -> Sender<Command> {
        self.commands.clone()
    }

    /// Asks the thread to shut down (see [`Command::Shutdown`]) and waits for it.
    pub fn shutdown(mut self, grace: Duration) {
        let _ = self.commands.send(Command::Shutdown { grace });
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = self.commands.send(Command::Shutdown {
                grace: Duration::ZERO,
            });
            let _ = t.join();
        }
    }
}

/// One choice of a request, as the engine tracks it.
struct Active {
    events: UnboundedSender<Event>,
    choice: usize,
    received: Instant,
    last_token: Option<Instant>,
    want_logprobs: bool,
    sent_logprobs: usize,
}

/// The error a client gets for a choice that failed in the engine.
fn api_error(e: &EngineError) -> ApiError {
    match e {
        EngineError::BadRequest { field, .. } => ApiError::invalid(field, e.to_string()),
        EngineError::Sampling(_) => ApiError::bad_request("sampling_failed", e.to_string()),
        other => ApiError::internal(other.to_string()),
    }
}

/// The engine loop (see the module doc).
fn run(
    lm: LoadedModel,
    rx: Receiver<Command>,
    max_running: usize,
    scheduling: SchedulerOptions,
    admission: &Admission,
    metrics: &Metrics,
) {
    let LoadedModel {
        mut model,
        tokenizer,
        ..
    } = lm;
    let mut sched = Scheduler::with_options(model.as_mut(), &tokenizer, max_running, scheduling);
    let mut active: HashMap<RequestId, Active> = HashMap::new();
    let mut deadline: Option<Instant> = None;
    let mut hung_up = false;
    loop {
        // 1. Commands: block while there is nothing to run.
        if sched.is_idle() && deadline.is_none() {
            match rx.recv() {
                Ok(c) => take(
                    c,
                    &mut sched,
                    &mut active,
                    &mut deadline,
                    admission,
                    metrics,
                ),
                Err(_) => break,
            }
        }
        loop {
            match rx.try_recv() {
                Ok(c) => take(
                    c,
                    &mut sched,
                    &mut active,
                    &mut deadline,
                    admission,
                    metrics,
                ),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    hung_up = true;
                    break;
                }
            }
        }
        // 2. Clients gone: cancel their sequences now.
        let gone: Vec<RequestId> = active
            .iter()
            .filter(|(_, a)| a.events.is_closed())
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            sched.cancel(id);
            active.remove(&id);
            admission.release(1);
            metrics.cancelled.fetch_add(1, Ordering::Relaxed);
        }
        // 3. Shutting down: stop when idle or past the grace period.
        let out_of_time = deadline.is_some_and(|d| Instant::now() >= d);
        if sched.is_idle() && (deadline.is_some() || hung_up) {
            break;
        }
        if out_of_time || hung_up && sched.is_idle() {
            break;
        }
        publish_counts(&sched, metrics);
        // 4. One step.
        step(&mut sched, &mut active, admission, metrics);
    }
    // Whatever is left is cancelled with a clear error.
    for (id, a) in active.drain() {
        sched.cancel(id);
        admission.release(1);
        let _ = a.events.send(Event::Failed {
            choice: a.choice,
            error: ApiError::shutting_down(),
        });
    }
    metrics.running.store(0, Ordering::Relaxed);
    metrics.queued.store(0, Ordering::Relaxed);
}

/// Publishes the running and queued sequence counts.
fn publish_counts(sched: &Scheduler<'_>, metrics: &Metrics) {
    metrics
        .running
        .store(sched.running().count() as u64, Ordering::Relaxed);
    metrics
        .queued
        .store(sched.waiting().count() as u64, Ordering::Relaxed);
}

/// Handles one command.
fn take(
    c: Command,
    sched: &mut Scheduler<'_>,
    active: &mut HashMap<RequestId, Active>,
    deadline: &mut Option<Instant>,
    admission: &Admission,
    metrics: &Metrics,
) {
    match c {
        Command::Shutdown { grace } => {
            let d = Instant::now() + grace;
            *deadline = Some(deadline.map_or(d, |old| old.min(d)));
        }
        Command::Submit(s) => {
            for (choice, req) in s.requests.into_iter().enumerate() {
                if deadline.is_some() {
                    admission.release(1);
                    let _ = s.events.send(Event::Failed {
                        choice,
                        error: ApiError::shutting_down(),
                    });
                    continue;
                }
                let prompt_len = req.prompt.len();
                let want_logprobs = req.logprobs > 0;
                match sched.add(req) {
                    Ok(id) => {
                        metrics
                            .prompt_tokens
                            .fetch_add(prompt_len as u64, Ordering::Relaxed);
                        active.insert(
                            id,
                            Active {
                                events: s.events.clone(),
                                choice,
                                received: s.received,
                                last_token: None,
                                want_logprobs,
                                sent_logprobs: 0,
                            },
                        );
                    }
                    Err(e) => {
                        admission.release(1);
                        let _ = s.events.send(Event::Failed {
                            choice,
                            error: api_error(&e),
                        });
                    }
                }
            }
        }
    }
}

/// Runs one scheduler step and forwards its events.
fn step(
    sched: &mut Scheduler<'_>,
    active: &mut HashMap<RequestId, Active>,
    admission: &Admission,
    metrics: &Metrics,
) {
    let events: Vec<(RequestId, Vec<u32>, String)> = match sched.step() {
        Ok(report) => {
            metrics
                .cached_prompt_tokens
                .fetch_add(report.cached_tokens as u64, Ordering::Relaxed);
            report
                .events()
                .iter()
                .map(|e| (e.id, report.tokens(e).to_vec(), report.text(e).to_string()))
                .collect()
        }
        Err(e) => {
            tracing::error!("model step failed: {e}");
            // With nothing running the failure is the admission of the first waiting request
            // (the model refused a sequence): fail the waiting ones rather than spin.
            if sched.running().next().is_none() {
                let waiting: Vec<RequestId> = sched.waiting().collect();
                for id in waiting {
                    sched.cancel(id);
                    if let Some(a) = active.remove(&id) {
                        admission.release(1);
                        let _ = a.events.send(Event::Failed {
                            choice: a.choice,
                            error: ApiError::internal(format!("model step failed: {e}")),
                        });
                    }
                }
            }
            Vec::new()
        }
    };
    let finished: HashMap<RequestId, adasamp_engine::Result<Generation>> =
        sched.take_finished().map(|f| (f.id, f.result)).collect();
    // Before any client hears of this step, so the counts it reads include it.
    publish_counts(sched, metrics);
    let now = Instant::now();
    for (id, tokens, text) in events {
        let Some(a) = active.get_mut(&id) else {
            continue;
        };
        let logprobs = if a.want_logprobs {
            let all: &[Sample] = match sched.sequence(id) {
                Some(seq) => seq.logprobs(),
                None => match finished.get(&id) {
                    Some(Ok(g)) => &g.logprobs,
                    _ => &[],
                },
            };
            all.get(a.sent_logprobs..).unwrap_or(&[]).to_vec()
        } else {
            Vec::new()
        };
        a.sent_logprobs += logprobs.len();
        if !tokens.is_empty() {
            match a.last_token {
                None => metrics.ttft.observe(now - a.received),
                Some(t) => metrics.inter_token.observe(now - t),
            }
            a.last_token = Some(now);
            metrics
                .generated_tokens
                .fetch_add(tokens.len() as u64, Ordering::Relaxed);
        }
        let _ = a.events.send(Event::Delta {
            choice: a.choice,
            text,
            tokens,
            logprobs,
        });
    }
    for (id, result) in finished {
        let Some(a) = active.remove(&id) else {
            continue;
        };
        admission.release(1);
        let event = match result {
            Ok(generation) => Event::Done {
                choice: a.choice,
                generation,
            },
            Err(e) => Event::Failed {
                choice: a.choice,
                error: api_error(&e),
            },
        };
        let _ = a.events.send(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_bounds_sequences_in_the_system() {
        let a = Admission::new(3);
        a.reserve(2).unwrap();
        assert_eq!(a.reserve(2).unwrap_err().status.as_u16(), 429);
        a.reserve(1).unwrap();
        a.release(2);
        assert_eq!(a.in_system(), 1);
        a.reserve(2).unwrap();
        a.release(10);
        assert_eq!(a.in_system(), 0);
    }
}
