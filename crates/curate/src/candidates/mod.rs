//! `candidates`: every (prompt, pipeline, seed) generated once, each with its own seed, as one
//! [`CandidateRecord`] per line (SPEC 4).
//!
//! A record's id is its [`CandidateKey::record_id`] (`<prompt>/<pipeline>/s<seed>`); it carries
//! the prompt's fields ([`PromptRecord::carried_fields`]), the pipeline (`sampler_info`), the
//! seed, the generation (and its token ids when generated locally), why it ended and the token
//! counts. The output is append-only and resumable: a rerun after a kill skips every key already
//! in the file and generates the rest (a torn last line is cut and generated again), so each key
//! ends up in the file exactly once.
//!
//! Two backends produce the generations: [`local`] (the engine's scheduler on this machine,
//! batching across all (prompt, pipeline, seed) and refilling the batch as sequences finish) and
//! [`remote`] (OpenAI-compatible servers in rotation, with retries, back-off and health checks,
//! refusing up front a pipeline a server cannot run exactly).

pub mod local;
pub mod remote;
pub mod same_pipeline;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use adasamp_engine::record::{CandidateRecord, SamplerInfo};
use adasamp_engine::{FinishReason, Usage};
use adasamp_sampling::{PipelineSet, PipelineSpec};

use crate::error::{CurateError, Result};
use crate::labels;
use crate::prompt::PromptRecord;
use crate::stage::{progress, reopen_output, CandidateKey, StageReport};

pub use local::LocalBackend;
pub use remote::{RemoteBackend, RemoteConfig, RemoteKind};

/// The system prompt of a prompt without its own, unless another is given (SPEC 4).
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a helpful assistant.";

/// What `candidates` generates: every prompt × every pipeline × seeds `0..seeds`.
#[derive(Debug, Clone)]
pub struct CandidateSet {
    /// The prompts.
    pub prompts: Vec<PromptRecord>,
    /// The pipelines (a grid).
    pub pipelines: PipelineSet,
    /// Seeds per (prompt, pipeline): `0..seeds`.
    pub seeds: u64,
    /// Token limit of each generation.
    pub max_new_tokens: usize,
    /// The system prompt of prompts without their own (`None`: no system message).
    pub system_prompt: Option<String>,
}

/// One unit of work: a prompt, a pipeline (indices into the set) and a seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Job {
    /// Index of the prompt in [`CandidateSet::prompts`].
    pub prompt: usize,
    /// Index of the pipeline in [`CandidateSet::pipelines`].
    pub pipeline: usize,
    /// The sampling seed.
    pub seed: u64,
}

/// A finished generation as a backend reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The generated text.
    pub text: String,
    /// The generated token ids, when the backend knows them.
    pub tokens: Option<Vec<u32>>,
    /// Why it ended, when known.
    pub finish_reason: Option<FinishReason>,
    /// Token counts, when known.
    pub usage: Option<Usage>,
}

/// Where a backend hands each finished job: its generation, or why that job alone failed (the
/// job is then reported and left for a rerun). An error returned stops the run.
pub type Sink<'a> = dyn FnMut(Job, std::result::Result<Outcome, String>) -> Result<()> + 'a;

impl CandidateSet {
    /// A set to generate; errors name the parameter: no pipeline, `seeds` or `max_new_tokens`
    /// of 0.
    pub fn new(
        prompts: Vec<PromptRecord>,
        pipelines: PipelineSet,
        seeds: u64,
        max_new_tokens: usize,
        system_prompt: Option<String>,
    ) -> Result<Self> {
        let bad = |name: &str, value: String, message: &str| CurateError::BadParameter {
            name: name.into(),
            value,
            message: message.into(),
        };
        if pipelines.pipelines().is_empty() {
            return Err(bad("pipelines", "[]".into(), "the grid has no pipeline"));
        }
        if seeds == 0 {
            return Err(bad("seeds", "0".into(), "must be at least 1"));
        }
        if max_new_tokens == 0 {
            return Err(bad("max_new_tokens", "0".into(), "must be at least 1"));
        }
        Ok(Self {
            prompts,
            pipelines,
            seeds,
            max_new_tokens,
            system_prompt,
        })
    }

    /// Every job, prompt by prompt, then pipeline by pipeline, then seed by seed.
    pub fn jobs(&self) -> impl Iterator<Item = Job> + '_ {
        let n_pipelines = self.pipelines.pipelines().len();
        (0..self.prompts.len()).flat_map(move |prompt| {
            (0..n_pipelines).flat_map(move |pipeline| {
                (0..self.seeds).map(move |seed| Job {
                    prompt,
                    pipeline,
                    seed,
                })
            })
        })
    }

    /// The key of a job.
    pub fn key(&self, job: Job) -> CandidateKey {
        CandidateKey {
            prompt_id: self.prompts[job.prompt].id.clone(),
            pipeline: self.pipelines.pipelines()[job.pipeline].name().to_string(),
            seed: job.seed,
        }
    }

    /// The system prompt of `prompt`: its own, else the set's.
    pub fn system_for<'a>(&'a self, prompt: &'a PromptRecord) -> Option<&'a str> {
        prompt
            .system_prompt
            .as_deref()
            .or(self.system_prompt.as_deref())
    }

    /// The record of `job`'s generation.
    pub fn record(&self, job: Job, outcome: Outcome) -> CandidateRecord {
        let prompt = &self.prompts[job.prompt];
        let pipeline = &self.pipelines.pipelines()[job.pipeline];
        CandidateRecord {
            id: Some(self.key(job).record_id()),
            prompt: prompt.prompt.clone(),
            system_prompt: self.system_for(prompt).map(str::to_string),
            raw: false,
            generation: outcome.text,
            generation_tokens: outcome.tokens,
            sampler_info: SamplerInfo {
                name: pipeline.name().to_string(),
                config: pipeline.spec().clone(),
                extra: Default::default(),
            },
            seed: Some(job.seed),
            finish_reason: outcome.finish_reason,
            usage: outcome.usage,
            logprobs: None,
            extra: prompt.carried_fields(),
        }
    }
}

/// Where the generations come from.
#[derive(Debug)]
pub enum Backend<'m> {
    /// A model on this machine.
    Local(LocalBackend<'m>),
    /// OpenAI-compatible servers.
    Remote(RemoteBackend),
}

/// Generates every job of `set` not yet in `output` (see the module doc), with a progress bar,
/// and says what it did. A job that fails alone is counted as dropped (a rerun retries it); a
/// backend that cannot go on (the model fails, no server is left) stops the run with its error
/// after everything finished so far is written.
pub fn run(set: &CandidateSet, backend: &mut Backend<'_>, output: &Path) -> Result<StageReport> {
    let mut report = StageReport::new("candidates", output);
    let reopened = reopen_output(output)?;
    if reopened.dropped_torn_line {
        report.note(
            "cut an incomplete last line left by an interrupted run (its record is generated again)",
        );
    }
    let grid: HashMap<&str, &PipelineSpec> = set
        .pipelines
        .pipelines()
        .iter()
        .map(|p| (p.name(), p.spec()))
        .collect();
    let mut done = HashSet::new();
    for r in &reopened.done {
        done.insert(CandidateKey::of(r)?);
        // A record of a pipeline the grid now defines otherwise would mix two samplers
        // under one name.
        if let Some(p) = grid.get(r.sampler_info.name.as_str()) {
            if let Err((stage, why)) = same_pipeline::same_spec(p, &r.sampler_info.config) {
                return Err(CurateError::BadField {
                    id: crate::stage::record_name(r),
                    field: "sampler_info.config".into(),
                    message: format!(
                        "{} already holds pipeline `{}` as another configuration ({}{why}); \
                         write to another output file",
                        output.display(),
                        p.name,
                        stage.map(|s| format!("stage `{s}`: ")).unwrap_or_default()
                    ),
                });
            }
        }
    }
    let all: Vec<Job> = set.jobs().collect();
    let planned: HashSet<CandidateKey> = all.iter().map(|&j| set.key(j)).collect();
    let todo: Vec<Job> = all
        .iter()
        .copied()
        .filter(|&j| !done.contains(&set.key(j)))
        .collect();
    report.read = all.len();
    report.already_done = all.len() - todo.len();
    let foreign = done.iter().filter(|k| !planned.contains(k)).count();
    if foreign > 0 {
        report.note(format!(
            "{foreign} record(s) already in the file are not of these prompts, pipelines and seeds (kept)"
        ));
    }
    // Token ids are only meaningful with their tokenizer: the local backend names it.
    let tokenizer_id = match backend {
        Backend::Local(b) if !todo.is_empty() => Some(b.tokenizer_sha256()?),
        _ => None,
    };
    let bar = progress(todo.len(), "candidates");
    let mut output = reopened.output;
    let t0 = Instant::now();
    let mut tokens = 0usize;
    let mut failed = Vec::new();
    let result = {
        let mut sink = |job: Job, result: std::result::Result<Outcome, String>| -> Result<()> {
            match result {
                Ok(o) => {
                    tokens += o.usage.map_or(0, |u| u.completion_tokens);
                    let mut r = set.record(job, o);
                    if let (Some(id), Some(_)) = (&tokenizer_id, &r.generation_tokens) {
                        r.extra
                            .insert(labels::TOKENIZER_SHA256.into(), id.clone().into());
                    }
                    output.append(&r)?;
                }
                Err(message) => failed.push((job, message)),
            }
            bar.inc(1);
            let secs = t0.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!("{:.1} tokens/s", tokens as f64 / secs));
            Ok(())
        };
        match backend {
            Backend::Local(b) => b.generate(set, &todo, &mut sink, &mut report),
            Backend::Remote(b) => b.generate(set, &todo, &mut sink, &mut report),
        }
    };
    bar.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    report.written = output.written();
    for (job, message) in failed {
        report.drop(format!("{} failed: {message}", set.key(job).record_id()), 1);
    }
    if report.written > 0 {
        report.note(format!(
            "throughput: {:.2} records/s, {:.1} generated tokens/s ({} records, {tokens} tokens in {secs:.1} s)",
            report.written as f64 / secs.max(1e-9),
            tokens as f64 / secs.max(1e-9),
            report.written,
        ));
    }
    result.map(|()| report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels;
    use crate::prompt::parse_prompts;

    pub(crate) fn tiny_set(seeds: u64) -> CandidateSet {
        let prompts = parse_prompts(
            "{\"id\": \"a\", \"prompt\": \"Say hi.\", \"source\": \"test\", \"checks\": [\"diversity\"]}\n\
             {\"id\": \"b\", \"prompt\": \"Count to three.\", \"system_prompt\": \"Be terse.\"}\n",
            Path::new("p.jsonl"),
        )
        .unwrap();
        let grid = PipelineSet::from_yaml(
            "pipelines:\n  - name: t07\n    processors: [{name: temperature, params: {temperature: 0.7}}]\n  - name: t07_p09\n    processors: [{name: temperature, params: {temperature: 0.7}}, {name: top_p, params: {top_p: 0.9}}]\n",
            None,
        )
        .unwrap();
        CandidateSet::new(prompts, grid, seeds, 4, Some(DEFAULT_SYSTEM_PROMPT.into())).unwrap()
    }

    #[test]
    fn jobs_cover_every_key_once() {
        let set = tiny_set(3);
        let keys: Vec<String> = set.jobs().map(|j| set.key(j).record_id()).collect();
        assert_eq!(keys.len(), 2 * 2 * 3);
        assert_eq!(keys.iter().collect::<HashSet<_>>().len(), keys.len());
        assert_eq!(keys[0], "a/t07/s0");
        assert_eq!(keys[11], "b/t07_p09/s2");
    }

    #[test]
    fn records_carry_the_prompt_pipeline_and_seed() {
        let set = tiny_set(2);
        let job = Job {
            prompt: 0,
            pipeline: 1,
            seed: 1,
        };
        let r = set.record(
            job,
            Outcome {
                text: "hi".into(),
                tokens: Some(vec![1, 2]),
                finish_reason: Some(FinishReason::Eos),
                usage: None,
            },
        );
        assert_eq!(r.id.as_deref(), Some("a/t07_p09/s1"));
        assert_eq!(CandidateKey::of(&r).unwrap(), set.key(job));
        assert_eq!(r.system_prompt.as_deref(), Some(DEFAULT_SYSTEM_PROMPT));
        assert_eq!(r.sampler_info.config.processors.len(), 2);
        assert_eq!(r.extra[labels::SOURCE], "test");
        assert_eq!(r.extra[labels::CHECKS], serde_json::json!(["diversity"]));
        let own = set.record(
            Job {
                prompt: 1,
                pipeline: 0,
                seed: 0,
            },
            Outcome {
                text: String::new(),
                tokens: None,
                finish_reason: None,
                usage: None,
            },
        );
        assert_eq!(own.system_prompt.as_deref(), Some("Be terse."));
    }

    /// A backend that is never reached (nothing listens on port 1).
    fn unreachable() -> Backend<'static> {
        let mut c = RemoteConfig::new(vec!["http://127.0.0.1:1".into()]);
        c.attempts = 1;
        Backend::Remote(RemoteBackend::new(c).unwrap())
    }

    fn outcome(text: &str) -> Outcome {
        Outcome {
            text: text.into(),
            tokens: None,
            finish_reason: Some(FinishReason::Eos),
            usage: None,
        }
    }

    #[test]
    fn a_finished_file_needs_no_backend() {
        let set = tiny_set(1);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("c.jsonl");
        let mut text = Vec::new();
        for j in set.jobs() {
            adasamp_engine::record::write_record(&mut text, &set.record(j, outcome("x"))).unwrap();
        }
        std::fs::write(&out, text).unwrap();
        let report = run(&set, &mut unreachable(), &out).unwrap();
        assert_eq!(
            (report.read, report.already_done, report.written),
            (4, 4, 0)
        );
    }

    #[test]
    fn a_pipeline_redefined_since_the_records_were_written_is_refused() {
        let set = tiny_set(1);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("c.jsonl");
        let mut r = set.record(set.jobs().next().unwrap(), outcome("x"));
        r.sampler_info.config.processors[0] =
            adasamp_sampling::StageSpec::new("temperature", &[("temperature", 0.8)]);
        let mut text = Vec::new();
        adasamp_engine::record::write_record(&mut text, &r).unwrap();
        std::fs::write(&out, &text).unwrap();
        let e = run(&set, &mut unreachable(), &out).unwrap_err().to_string();
        assert!(
            e.contains("a/t07/s0") && e.contains("`t07`") && e.contains("0.8"),
            "{e}"
        );
        assert_eq!(std::fs::read(&out).unwrap(), text, "nothing written");
    }

    #[test]
    fn no_healthy_endpoint_is_a_clear_error() {
        let set = tiny_set(1);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("c.jsonl");
        let e = run(&set, &mut unreachable(), &out).unwrap_err().to_string();
        assert!(
            e.contains("no endpoint is healthy") && e.contains("127.0.0.1:1"),
            "{e}"
        );
    }

    #[test]
    fn bad_parameters_are_named() {
        let s = tiny_set(1);
        let e = CandidateSet::new(s.prompts.clone(), s.pipelines.clone(), 0, 4, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("seeds"), "{e}");
        let e = CandidateSet::new(s.prompts.clone(), s.pipelines.clone(), 1, 0, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_new_tokens"), "{e}");
        let e = CandidateSet::new(s.prompts, PipelineSet::from_pipelines(vec![]), 1, 1, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("pipeline"), "{e}");
    }
}
