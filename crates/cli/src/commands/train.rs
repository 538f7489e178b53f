//! `adasamp train`: train a learned sampler on replayed base-model logits (see
//! `adasamp_nets::train` and docs/training.md).

use std::path::PathBuf;

use adasamp_engine::BackendChoice;
use adasamp_nets::train::{self, Engine, ReplaySettings, RowPrecision, ScheduleKind, TrainConfig};
use adasamp_nets::SamplerConfig;
use anyhow::{bail, Context, Result};
use clap::Args;

/// Arguments of `adasamp train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Candidate records (`adasamp generate --output` JSONL); each record's target pipeline is
    /// its `sampler_info.config`.
    #[arg(long, value_name = "FILE.jsonl")]
    pub data: PathBuf,
    /// Sampler architecture (YAML, e.g. configs/samplers/simple_dynamic.yaml).
    #[arg(long, value_name = "CONFIG.yaml")]
    pub sampler: PathBuf,
    /// Run directory: metrics.csv, checkpoints/, final/, report.json.
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
    /// Base model the records came from (default: the default model).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Backend for the replay: auto, candle or llama.cpp.
    #[arg(long, default_value = "auto")]
    pub backend: BackendChoice,
    /// Rows (positions) per micro-batch, drawn across records.
    #[arg(long, value_name = "B", default_value_t = 32)]
    pub token_batch: usize,
    /// Micro-batches per optimizer step.
    #[arg(long, value_name = "A", default_value_t = 1)]
    pub grad_accum: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Final learning rate of the cosine / linear schedule.
    #[arg(long, default_value_t = 1e-5)]
    pub min_lr: f64,
    /// Linear warm-up steps.
    #[arg(long, value_name = "W", default_value_t = 20)]
    pub warmup: u64,
    /// Schedule after warm-up: cosine, linear or constant.
    #[arg(long, default_value = "cosine")]
    pub schedule: String,
    /// Weight γ of the truncation penalty in TruncatedLogitsLoss.
    #[arg(long, value_name = "G", default_value_t = 1.0)]
    pub gamma: f64,
    /// AdamW decoupled weight decay.
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f64,
    /// Passes over the training positions.
    #[arg(long, value_name = "E", default_value_t = 1)]
    pub epochs: u64,
    /// Cap on prompt + generation tokens replayed per record (default: the model's context).
    #[arg(long, value_name = "L")]
    pub max_seq_len: Option<usize>,
    /// Checkpoint every N optimizer steps (0: only at the end).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub save_every: u64,
    /// Evaluate every N optimizer steps (default: --save-every; 0: only at the end).
    #[arg(long, value_name = "N")]
    pub eval_every: Option<u64>,
    /// Continue from the latest checkpoint in --output (exactly; same data and batch settings).
    #[arg(long)]
    pub resume: bool,
    /// Fraction of records held out for evaluation (split by record, from --seed).
    #[arg(long, value_name = "F", default_value_t = 0.1)]
    pub eval_fraction: f64,
    /// Seed: initial weights, record split, shuffling.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Replay cache root (default: $ADASAMP_HOME/replay).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Precision of cached raw rows: f16 (half the disk and memory) or f32.
    #[arg(long, default_value = "f16")]
    pub cache_precision: String,
    /// Use at most N training positions (whole records, in file order).
    #[arg(long, value_name = "N")]
    pub max_positions: Option<usize>,
    /// Chunks of a micro-batch computed in parallel (default: the CPU count). Bitwise
    /// reproducibility (and resume) needs the same value.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Stop after N optimizer steps (the schedule still spans the whole run; `--resume`
    /// continues exactly).
    #[arg(long, value_name = "N")]
    pub stop_after: Option<u64>,
    /// Compute device of the sampler's training and the base model's replay: cpu, cuda or
    /// cuda:N (GPU N; needs a build with `--features cuda`, docs/gpu.md).
    #[arg(long, default_value = "cpu")]
    pub device: adasamp_engine::ComputeDevice,
    /// Gradient engine: fast (hand-written CPU forward + backward, CPU only), candle
    /// (autograd, any device) or fused (the fused CUDA kernels of a `cuda` build for the
    /// SamplingNetwork shapes that have them, candle otherwise; the run says which). Default:
    /// fast on the CPU, fused on CUDA. A run may switch engines between checkpoints (`--resume`).
    #[arg(long, value_name = "fast|candle|fused")]
    pub engine: Option<String>,
}

/// Runs `train`.
pub fn run(a: &TrainArgs) -> Result<()> {
    let config = SamplerConfig::from_yaml_file(&a.sampler)?;
    let device = a
        .device
        .candle()
        .with_context(|| format!("--device {}", a.device))?;
    let engine = match &a.engine {
        Some(e) => Engine::parse(e)?,
        None => Engine::default_for(&device),
    };
    if engine == Engine::Fast && !device.is_cpu() {
        bail!(
            "--engine fast runs on the CPU only (use --engine fused or candle with --device {})",
            a.device
        );
    }
    let threads = a.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let cfg = TrainConfig {
        token_batch: a.token_batch,
        grad_accum: a.grad_accum,
        lr: a.lr,
        min_lr: a.min_lr,
        warmup_steps: a.warmup,
        schedule: ScheduleKind::parse(&a.schedule)?,
        weight_decay: a.weight_decay,
        gamma: a.gamma,
        epochs: a.epochs,
        save_every: a.save_every,
        eval_every: a.eval_every.unwrap_or(a.save_every),
        eval_fraction: a.eval_fraction,
        seed: a.seed,
        threads,
        engine,
        max_train_rows: a.max_positions,
        stop_after: a.stop_after,
    };
    let settings = ReplaySettings {
        model: a.model.clone(),
        backend: a.backend,
        cache_root: a
            .cache_dir
            .clone()
            .unwrap_or_else(|| adasamp_engine::fetch::home().join("replay")),
        precision: RowPrecision::parse(&a.cache_precision)?,
        max_seq_len: a.max_seq_len,
        device: a.device,
    };
    let replay_bar = indicatif::ProgressBar::hidden();
    let t0 = std::time::Instant::now();
    let replayed = train::replayed_dataset(
        &a.data,
        &settings,
        &mut |m: &str| eprintln!("{m}"),
        &mut |done, total| {
            if replay_bar.is_hidden() {
                replay_bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                replay_bar.set_length(total as u64);
                replay_bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "replay {bar:30} {pos}/{len} records [{elapsed_precise} < {eta}]",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
            }
            replay_bar.set_position(done as u64);
        },
    )?;
    replay_bar.finish_and_clear();
    let ds = &replayed.dataset;
    eprintln!(
        "{} positions from {} records (V = {}, {} rows, {}) in {:.1}s{}{}",
        ds.num_rows(),
        ds.records().len(),
        ds.vocab(),
        ds.precision().name(),
        if replayed.cache_hit {
            "cached"
        } else {
            "replayed"
        },
        t0.elapsed().as_secs_f64(),
        if replayed.index.skipped_lines.is_empty() {
            String::new()
        } else {
            format!(
                "; {} records skipped (nothing to replay)",
                replayed.index.skipped_lines.len()
            )
        },
        if ds.tokens_outside_target > 0 {
            format!(
                "; {} generated tokens fall outside their target (f16 rounding at a threshold, random stages, or another pipeline)",
                ds.tokens_outside_target
            )
        } else {
            String::new()
        }
    );
    eprintln!(
        "training {} ({} parameters) on {}, {} engine, {threads} thread(s)",
        config,
        adasamp_nets::parameter_count(&config)?,
        a.device,
        engine.name()
    );
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut progress = train::ProgressObserver { bar };
    let report = train::train(
        ds,
        &replayed.data_sha256,
        &config,
        &cfg,
        &device,
        &a.output,
        a.resume,
        &mut progress,
    )
    .map_err(with_flag_hint)?;
    progress.bar.finish_and_clear();
    eprintln!(
        "{} / {} steps ({:.3} steps/s, {:.1} positions/s); checkpoint {}",
        report.steps,
        report.total_steps,
        report.steps_per_s,
        report.rows_per_s,
        report.checkpoint.display()
    );
    if let Some(e) = &report.eval {
        println!(
            "| held-out ({} positions) | KL(target‖·) nats | truncated mass |",
            e.rows
        );
        println!("|---|---|---|");
        println!(
            "| identity (raw logits) | {:.4} | {:.2} % |",
            e.identity_kl,
            100.0 * e.identity_truncated_mass
        );
        println!(
            "| sampler | {:.4} | {:.2} % |",
            e.kl,
            100.0 * e.truncated_mass
        );
    }
    Ok(())
}

/// Adds the command-line flag to change to a training error that one flag fixes (the library
/// names settings, not flags).
fn with_flag_hint(e: adasamp_nets::NetsError) -> anyhow::Error {
    use adasamp_nets::NetsError;
    let hint = match &e {
        NetsError::NonFiniteLoss { .. } => Some("lower --lr"),
        NetsError::BadRequest { field, .. } if field == "grad_accum" => {
            Some("lower --grad-accum or raise --epochs")
        }
        _ => None,
    };
    match hint {
        // Neither variant has a source error to keep.
        Some(h) => anyhow::anyhow!("{e} ({h})"),
        None => e.into(),
    }
}
