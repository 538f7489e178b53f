//! `adasamp eval`: every contender on the same held-out prompts and seeds, rated by a judge
//! among each other, with accuracy, diversity, length and (learned samplers) imitation; writes
//! report.md, report.json and two plots (see `adasamp_eval` and docs/evaluation.md).

use std::path::{Path, PathBuf};

use adasamp_curate::candidates::DEFAULT_SYSTEM_PROMPT;
use adasamp_engine::BackendChoice;
use adasamp_eval::{ContenderSource, EvalOptions, EvalReport, JudgeChoice};
use anyhow::{Context, Result};
use clap::Args;

use crate::plots;

/// The rating plot's file name.
pub const RATING_PNG: &str = "rating.png";
/// The quality-vs-diversity plot's file name.
pub const QUALITY_DIVERSITY_PNG: &str = "quality_vs_diversity.png";

/// Options of `eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Held-out prompt file (one JSON object per line: `id`, `prompt`, and `checks`, `dataset`,
    /// `ground_truth` where answers can be checked).
    #[arg(long, value_name = "FILE.jsonl")]
    pub prompts: PathBuf,
    /// The contenders, comma-separated, the one under test first: each `NAME=SOURCE` or
    /// `SOURCE`, where SOURCE is a preset (balanced, creative, precise, deterministic), a
    /// pipeline file with one pipeline, `FILE.yaml#PIPELINE`, or a learned-sampler checkpoint
    /// (or `adasamp train` output) directory.
    #[arg(long, value_name = "A,B,…")]
    pub samplers: String,
    /// Seeds per (prompt, contender): 0..N.
    #[arg(long, default_value_t = 2)]
    pub seeds: u64,
    /// The judge: a model file or directory run locally, or the URL of an OpenAI-compatible
    /// server. Default: the default model.
    #[arg(long, value_name = "PATH|URL")]
    pub judge: Option<String>,
    /// Model name sent to a judge endpoint (default: the first one it lists).
    #[arg(long, value_name = "NAME")]
    pub judge_model: Option<String>,
    /// The base model generating (and replaying, for learned samplers): a .gguf file or a
    /// Hugging Face directory (default: the default model).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Engine backend of local models: auto, candle or llama.cpp.
    #[arg(long, default_value = "auto")]
    pub backend: BackendChoice,
    /// Token limit of each generation.
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,
    /// Prompts the contenders were trained on (prompt or candidate/scored JSONL; repeatable):
    /// overlap with --prompts is refused, and a learned sampler's training data among them
    /// names the pipeline it imitates.
    #[arg(long = "train-prompts", value_name = "FILE.jsonl")]
    pub train_prompts: Vec<PathBuf>,
    /// Run directory (every intermediate file, the report and the plots; a rerun resumes).
    #[arg(long, value_name = "DIR", default_value = "eval")]
    pub out: PathBuf,
    /// Bootstrap resamples of the prompts.
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Sequences decoded together (generating and judging).
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Cap on prompt + generation tokens of local models.
    #[arg(long, default_value_t = 2048)]
    pub max_seq_len: usize,
    /// System prompt of prompts without their own ("" = no system message).
    #[arg(long, default_value = DEFAULT_SYSTEM_PROMPT)]
    pub system: String,
    /// Sentence-embedder directory for the diversity labels (default: all-MiniLM-L6-v2).
    #[arg(long, value_name = "DIR")]
    pub embedder: Option<PathBuf>,
    /// Generate on OpenAI-compatible servers instead of the local model (repeatable; learned
    /// samplers still generate locally).
    #[arg(long = "endpoint", value_name = "URL")]
    pub endpoints: Vec<String>,
    /// Endpoints (--endpoint and a --judge URL): send `Authorization: Bearer KEY`.
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
}

impl EvalArgs {
    /// The library's options.
    pub fn options(&self) -> Result<EvalOptions> {
        let contenders = ContenderSource::parse_list(&self.samplers).context("--samplers")?;
        let mut judge = JudgeChoice::parse(self.judge.as_deref());
        if let JudgeChoice::Endpoint { model, .. } = &mut judge {
            model.clone_from(&self.judge_model);
        }
        Ok(EvalOptions {
            seeds: self.seeds,
            max_new_tokens: self.max_new_tokens,
            model: self.model.clone(),
            backend: self.backend,
            judge,
            train_prompts: self.train_prompts.clone(),
            bootstrap: self.bootstrap,
            seed: self.seed,
            batch_size: self.batch_size,
            max_seq_len: self.max_seq_len,
            system_prompt: (!self.system.is_empty()).then(|| self.system.clone()),
            embedder: self.embedder.clone(),
            endpoints: self.endpoints.clone(),
            api_key: self.api_key.clone(),
            ..EvalOptions::new(&self.prompts, contenders, &self.out)
        })
    }
}

/// Draws the two plots into `dir`, names them in the report and writes report.json and
/// report.md again (`adasamp demo` calls this after its eval too).
pub fn finish(report: &mut EvalReport, dir: &Path) -> Result<()> {
    let mut drawn = Vec::new();
    plots::rating_plot(&dir.join(RATING_PNG), report)?;
    drawn.push(RATING_PNG.to_string());
    if plots::quality_diversity_plot(&dir.join(QUALITY_DIVERSITY_PNG), report)? {
        drawn.push(QUALITY_DIVERSITY_PNG.to_string());
    } else {
        report.notes.push(format!(
            "{QUALITY_DIVERSITY_PNG} not drawn: no contender has an embedding entropy (one seed)"
        ));
    }
    report.files.plots = drawn;
    report.write(dir)?;
    Ok(())
}

/// Runs `eval`.
pub fn run(a: &EvalArgs) -> Result<()> {
    let opts = a.options()?;
    let mut report = adasamp_eval::run(&opts)?;
    finish(&mut report, &opts.out_dir)?;
    println!("{}", report.to_markdown());
    println!("Run directory: {}", opts.out_dir.display());
    Ok(())
}
