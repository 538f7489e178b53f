//! `adasamp label quality`: quality labels by a judged Swiss tournament per (prompt, seed), or
//! rewards from a scorer endpoint (see `adasamp_curate::quality`).

use std::path::PathBuf;
use std::time::Duration;

use adasamp_curate::quality::{
    label_quality, label_rewards, EndpointJudge, HttpOptions, LocalJudge, Scorer, TournamentOptions,
};
use adasamp_engine::{BackendChoice, LoadOptions};
use anyhow::{Context, Result};
use clap::Args;

/// Options of `label quality`.
#[derive(Debug, Args)]
pub struct QualityArgs {
    /// Candidate records to label (JSONL; normally the verified file).
    #[arg(long, value_name = "FILE.jsonl")]
    pub input: PathBuf,
    /// Where to write the labelled records (resumes: groups already there are skipped).
    #[arg(long, value_name = "OUT.jsonl")]
    pub output: PathBuf,
    /// The judge: a model file or directory run locally, or the URL of an OpenAI-compatible
    /// server (http://host:port, …/v1 or …/v1/chat/completions). Default: the default model.
    #[arg(long, value_name = "PATH|URL", conflicts_with = "scorer")]
    pub judge: Option<String>,
    /// Model name sent to a judge endpoint (default: the first one it lists at /v1/models).
    #[arg(long, value_name = "NAME")]
    pub judge_model: Option<String>,
    /// Rounds beyond ⌈log₂ n⌉ per tournament.
    #[arg(long, default_value_t = 1)]
    pub extra_rounds: usize,
    /// Seed of the tournaments' first-round random orders.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Instead of a judge: a reward endpoint, POST {"prompt", "system_prompt", "response"} →
    /// {"score": number}, one call per generation; a failed call leaves the reward missing.
    #[arg(long, value_name = "URL")]
    pub scorer: Option<String>,
    /// Comparisons per judge call at least (tournaments are played together until their round
    /// has this many).
    #[arg(long, default_value_t = 64)]
    pub comparisons_per_call: usize,
    /// Local judge: sequences run together in one forward.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Local judge: backend (auto, candle or llama.cpp).
    #[arg(long, default_value = "auto")]
    pub backend: BackendChoice,
    /// Local judge: context length (longer judging prompts have their answers cut to fit;
    /// default: the backend's).
    #[arg(long)]
    pub max_seq_len: Option<usize>,
    /// Local judge (candle or llama.cpp): re-quantize Q4_1/Q5_x weights to Q8_0 for speed
    /// (slightly different numerics; see docs/performance.md).
    #[arg(long)]
    pub requant_q8: bool,
    /// Endpoints (judge or scorer): send `Authorization: Bearer KEY`.
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Endpoints: requests in flight at once.
    #[arg(long, default_value_t = 8)]
    pub max_concurrency: usize,
    /// Endpoints: seconds one request may take.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Endpoints: retries of a failed request (connection errors, timeouts, 429, 5xx), with
    /// exponential back-off from 0.5 s.
    #[arg(long, default_value_t = 3)]
    pub retries: usize,
}

/// Runs `label quality`.
pub fn run(a: &QualityArgs) -> Result<()> {
    let http = HttpOptions {
        timeout: Duration::from_secs(a.timeout),
        retries: a.retries,
        ..HttpOptions::default()
    };
    let report = if let Some(url) = &a.scorer {
        let scorer = Scorer::new(url, http, a.api_key.as_deref())?;
        label_rewards(&a.input, &a.output, &scorer, a.max_concurrency)?
    } else {
        let opts = TournamentOptions {
            extra_rounds: a.extra_rounds,
            seed: a.seed,
            batch: a.comparisons_per_call.max(1),
        };
        match a.judge.as_deref() {
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                let mut judge = EndpointJudge::connect(
                    url,
                    a.judge_model.as_deref(),
                    a.max_concurrency,
                    http,
                    a.api_key.as_deref(),
                )
                .with_context(|| format!("connecting to the judge at {url}"))?;
                label_quality(&a.input, &a.output, &mut judge, &opts)?
            }
            path => {
                let mut log = |m: &str| eprintln!("{m}");
                let load = LoadOptions {
                    max_seq_len: a.max_seq_len,
                    max_sequences: Some(a.batch_size.max(1)),
                    requant_q8: a.requant_q8,
                    ..Default::default()
                };
                let lm = adasamp_engine::load(
                    path.map(std::path::Path::new),
                    a.backend,
                    load,
                    &mut log,
                )?;
                let info = lm.model.info();
                eprintln!(
                    "judge: {} ({}, context {}) on backend {}",
                    info.source, info.arch, info.max_seq_len, info.backend
                );
                let mut judge = LocalJudge::new(lm);
                label_quality(&a.input, &a.output, &mut judge, &opts)?
            }
        }
    };
    println!("{report}");
    Ok(())
}
