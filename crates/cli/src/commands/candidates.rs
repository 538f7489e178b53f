//! `adasamp candidates`: every (prompt, pipeline, seed) of a prompt file × a grid generated once,
//! as resumable JSONL (see `adasamp_curate::candidates`).

use std::path::PathBuf;
use std::time::Duration;

use adasamp_curate::candidates::{
    self, Backend, CandidateSet, LocalBackend, RemoteBackend, RemoteConfig, RemoteKind,
    DEFAULT_SYSTEM_PROMPT,
};
use adasamp_curate::prompt::read_prompts;
use adasamp_engine::{BackendChoice, LoadOptions};
use adasamp_sampling::PipelineSet;
use anyhow::{bail, Result};
use clap::{Args, ValueEnum};

/// Where the generations come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Source {
    /// A model on this machine (the engine's scheduler).
    Local,
    /// One or more OpenAI-compatible servers (--endpoint).
    Openai,
}

/// Options of `candidates`.
#[derive(Debug, Args)]
pub struct CandidatesArgs {
    /// Prompt file: one JSON object per line (`id`, `prompt`, `system_prompt`?, `source`?,
    /// `license`?, `checks`?, `dataset`?, `ground_truth`?).
    #[arg(long, value_name = "FILE.jsonl")]
    pub prompts: PathBuf,
    /// The pipelines: a pipeline YAML file (e.g. from `adasamp grid`).
    #[arg(long, value_name = "FILE.yaml")]
    pub grid: PathBuf,
    /// Seeds per (prompt, pipeline): 0..N.
    #[arg(long, default_value_t = 8)]
    pub seeds: u64,
    /// Token limit of each generation.
    #[arg(long, default_value_t = 2048)]
    pub max_new_tokens: usize,
    /// System prompt of prompts without their own ("" = no system message).
    #[arg(long, default_value = DEFAULT_SYSTEM_PROMPT)]
    pub system: String,
    /// Output JSONL (appended to: a rerun skips what is there and generates the rest).
    #[arg(long, default_value = "candidates.jsonl")]
    pub output: PathBuf,
    /// Where the generations come from.
    #[arg(long, value_enum, default_value_t = Source::Local)]
    pub backend: Source,
    /// local: a .gguf file or a Hugging Face directory (default: the default model);
    /// openai: the model name sent (default: the first model each server lists).
    #[arg(long)]
    pub model: Option<String>,
    /// local: the engine backend (auto, candle or llama.cpp).
    #[arg(long, default_value = "auto")]
    pub engine: BackendChoice,
    /// local: sequences decoded together.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// local: cap on prompt + generation length (default: the model's context, at most 4096).
    #[arg(long)]
    pub max_seq_len: Option<usize>,
    /// openai: a server's base URL (repeatable: the servers take requests in turn).
    #[arg(long = "endpoint", value_name = "URL")]
    pub endpoints: Vec<String>,
    /// openai: requests in flight at most, over all servers.
    #[arg(long, default_value_t = 8)]
    pub max_concurrency: usize,
    /// openai: what the servers are: auto (adasamp when GET /v1/samplers answers), generic
    /// (vLLM, SGLang: standard sampling fields only) or adasamp (installed samplers by name).
    #[arg(long, default_value = "auto")]
    pub remote: RemoteKind,
    /// openai: bearer key sent with every request.
    #[arg(long)]
    pub api_key: Option<String>,
    /// openai: seconds one request may take.
    #[arg(long, default_value_t = 600.0)]
    pub request_timeout: f64,
    /// openai: tries per candidate (the first and the retries, with exponential back-off).
    #[arg(long, default_value_t = 4)]
    pub attempts: u32,
}

/// Runs `candidates`.
pub fn run(a: &CandidatesArgs) -> Result<()> {
    let prompts = read_prompts(&a.prompts)?;
    let grid = PipelineSet::from_path(&a.grid)?;
    let system = (!a.system.is_empty()).then(|| a.system.clone());
    let set = CandidateSet::new(prompts, grid, a.seeds, a.max_new_tokens, system)?;
    eprintln!(
        "{} prompt(s) × {} pipeline(s) × {} seed(s) = {} candidates → {}",
        set.prompts.len(),
        set.pipelines.pipelines().len(),
        set.seeds,
        set.jobs().count(),
        a.output.display()
    );
    let report = match a.backend {
        Source::Local => {
            if !a.endpoints.is_empty() {
                bail!("--endpoint is for --backend openai");
            }
            let opts = LoadOptions {
                max_seq_len: a.max_seq_len,
                max_sequences: Some(a.batch_size.max(1)),
                ..Default::default()
            };
            let path = a.model.as_ref().map(PathBuf::from);
            let mut lm =
                adasamp_engine::load(path.as_deref(), a.engine, opts, &mut |m| eprintln!("{m}"))?;
            let mut backend = Backend::Local(LocalBackend::new(&mut lm, a.batch_size));
            candidates::run(&set, &mut backend, &a.output)?
        }
        Source::Openai => {
            if !(a.request_timeout > 0.0 && a.request_timeout.is_finite()) {
                bail!("--request-timeout must be a positive number of seconds");
            }
            let config = RemoteConfig {
                model: a.model.clone(),
                kind: a.remote,
                max_concurrency: a.max_concurrency,
                api_key: a.api_key.clone(),
                request_timeout: Duration::from_secs_f64(a.request_timeout),
                attempts: a.attempts,
                ..RemoteConfig::new(a.endpoints.clone())
            };
            let mut backend = Backend::Remote(RemoteBackend::new(config)?);
            candidates::run(&set, &mut backend, &a.output)?
        }
    };
    eprintln!("{report}");
    let failed = report.dropped_total();
    if failed > 0 {
        bail!("{failed} candidate(s) failed (listed above); rerun to retry them");
    }
    Ok(())
}
