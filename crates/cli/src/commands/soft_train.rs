//! `adasamp soft-train`: trains a model's LM head with the soft-sampling objective (see
//! [`adasamp_nets::soft_train`]) on candidate records or `{"text": …}` lines, logging α and the
//! loss per step, checkpointing atomically into `--output` and resuming from it when run again.
//! Use the result with `generate --lm-head DIR`.

use std::path::PathBuf;

use adasamp_nets::soft_train::{
    self, load_train_model, read_sequences, SoftTrainConfig, SoftTrainModel,
};
use adasamp_sampling::soft::AlphaSchedule;
use adasamp_sampling::{PipelineSet, PipelineSpec};
use anyhow::{bail, Context, Result};
use clap::Args;

/// Options of `soft-train`.
#[derive(Debug, Args)]
pub struct SoftTrainArgs {
    /// Training data: candidate-record JSONL (as `generate --output` writes) or `{"text": …}`
    /// lines.
    #[arg(long, value_name = "FILE.jsonl")]
    pub data: PathBuf,
    /// Base model: a .gguf file or a Hugging Face directory (loaded as an f32 copy on candle;
    /// default: the embedded SmolLM2-135M-Instruct).
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// Checkpoint directory (resumed from when it holds a checkpoint of the same run).
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
    /// Optimizer steps.
    #[arg(long, default_value_t = 100)]
    pub steps: usize,
    /// Sequences per step.
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    /// Tokens per sequence at most (longer ones are cut).
    #[arg(long, default_value_t = 128)]
    pub max_len: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Fraction of the steps with α held at 1 (teacher forcing).
    #[arg(long, default_value_t = 0.1)]
    pub delay_ratio: f64,
    /// Fraction of the steps over which α falls linearly from 1 to --alpha-min.
    #[arg(long, default_value_t = 0.7)]
    pub warmup_ratio: f64,
    /// Final guidance α (weight of the ground-truth token's embedding).
    #[arg(long, default_value_t = 0.25)]
    pub alpha_min: f64,
    /// Pipeline file whose distribution weighs the soft inputs (default: the plain softmax).
    #[arg(long, value_name = "FILE")]
    pub soft_pipeline: Option<PathBuf>,
    /// The pipeline of --soft-pipeline to use (needed when the file holds several).
    #[arg(long, value_name = "NAME", requires = "soft_pipeline")]
    pub soft_name: Option<String>,
    /// Seed of the data order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Checkpoint every this many steps (and at the end).
    #[arg(long, default_value_t = 10)]
    pub checkpoint_every: usize,
}

/// Runs `soft-train`.
pub fn run(a: &SoftTrainArgs) -> Result<()> {
    let soft_pipeline = match &a.soft_pipeline {
        Some(p) => PipelineSet::from_path(p)
            .with_context(|| format!("reading the soft pipeline {}", p.display()))?
            .select(a.soft_name.as_deref())?
            .spec()
            .clone(),
        None => PipelineSpec {
            name: "softmax".into(),
            weight: 1.0,
            processors: vec![],
        },
    };
    let config = SoftTrainConfig {
        steps: a.steps,
        batch_size: a.batch_size,
        lr: a.lr,
        weight_decay: a.weight_decay,
        schedule: AlphaSchedule {
            delay_ratio: a.delay_ratio,
            warmup_ratio: a.warmup_ratio,
            alpha_min: a.alpha_min,
        },
        soft_pipeline,
        seed: a.seed,
        checkpoint_every: a.checkpoint_every,
    };
    config.validate()?;
    if a.max_len < 2 {
        bail!("--max-len must be at least 2, got {}", a.max_len);
    }
    let path = match &a.model {
        Some(p) => p.clone(),
        None => adasamp_engine::fetch::ensure_default_model(&mut |m| eprintln!("{m}"))?,
    };
    eprintln!("loading {} as an f32 copy on candle", path.display());
    let mut tm = load_train_model(&path, a.batch_size, a.max_len)?;
    let data = read_sequences(&a.data, &tm.lm, a.max_len)?;
    let tokens: usize = data.iter().map(|s| s.tokens.len()).sum();
    eprintln!(
        "{} sequences, {} tokens; training the LM head only (untied from the input embeddings)",
        data.len(),
        tokens
    );
    let bar = indicatif::ProgressBar::new(a.steps as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    if let Ok(state) = std::fs::read_to_string(a.output.join(soft_train::STATE_FILE)) {
        if let Ok(s) = serde_json::from_str::<soft_train::SoftTrainState>(&state) {
            bar.set_position(s.step as u64);
            bar.suspend(|| eprintln!("resuming from step {}", s.step));
        }
    }
    let mut m = SoftTrainModel {
        model: tm.lm.model.as_mut(),
        norm: tm.norm.clone(),
        frozen: tm.frozen.clone(),
        initial_head: tm.head.clone(),
    };
    let out = soft_train::train(&mut m, &data, &config, &a.output, None, &mut |l| {
        bar.inc(1);
        bar.set_message(format!("α {:.3}  loss {:.4}", l.alpha, l.loss));
        bar.suspend(|| {
            eprintln!(
                "step {:>5}  α {:.4}  loss {:.5}  ({} positions)",
                l.step, l.alpha, l.loss, l.positions
            )
        });
    })?;
    bar.finish();
    eprintln!(
        "{} steps run ({} in total); head and state in {}",
        out.ran,
        out.state.step,
        a.output.display()
    );
    Ok(())
}
