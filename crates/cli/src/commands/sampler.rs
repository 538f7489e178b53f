//! `adasamp sampler …`: learned-sampler utilities — `init` writes a sampler with seeded initial
//! weights as a checkpoint directory (an untrained baseline, and a sampler to try `analyze` on
//! before training); `info` describes a config or a checkpoint.

use std::path::{Path, PathBuf};

use adasamp_nets::{checkpoint, describe, LearnedSampler, SamplerConfig};
use anyhow::{Context, Result};
use candle_core::{DType, Device};
use clap::{Args, Subcommand};

/// Options of `sampler`.
#[derive(Debug, Args)]
pub struct SamplerArgs {
    #[command(subcommand)]
    pub action: SamplerAction,
}

/// The `sampler` subcommands.
#[derive(Debug, Subcommand)]
pub enum SamplerAction {
    /// Write a sampler with seeded initial weights (an untrained baseline) as a checkpoint.
    Init(InitArgs),
    /// Print a learned sampler's architecture, parameter counts per module and layer, and FLOPs
    /// per token, from a config YAML or a checkpoint directory.
    Info {
        /// A sampler config (`configs/samplers/*.yaml`) or a checkpoint directory.
        #[arg(value_name = "CONFIG.yaml|CHECKPOINT_DIR")]
        path: PathBuf,
    },
}

/// Options of `sampler init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Sampler architecture config (YAML, e.g. configs/samplers/sampling_network.yaml).
    #[arg(value_name = "CONFIG.yaml")]
    pub config: PathBuf,
    /// Checkpoint directory to write (config.json + weights; replaced atomically).
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
    /// Seed of the initialisation (same seed ⇒ bitwise the same weights).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Runs `sampler`.
pub fn run(a: &SamplerArgs) -> Result<()> {
    match &a.action {
        SamplerAction::Init(args) => init(args),
        SamplerAction::Info { path } => info(path),
    }
}

/// `sampler init`: saves a seeded sampler.
fn init(a: &InitArgs) -> Result<()> {
    let cfg = SamplerConfig::from_yaml_file(&a.config)?;
    let sampler = LearnedSampler::seeded(&cfg, a.seed, DType::F32, &Device::Cpu)?;
    sampler
        .save(&a.output)
        .with_context(|| format!("saving the sampler to {}", a.output.display()))?;
    eprintln!(
        "wrote a {} sampler ({} parameters, seed {}, config {}) to {}",
        cfg.architecture(),
        sampler.parameter_count(),
        a.seed,
        a.config.display(),
        a.output.display()
    );
    Ok(())
}

/// `sampler info PATH`: prints the architecture, parameter counts per module and layer
/// ([`adasamp_nets::describe`]) and FLOPs per token of a config YAML or a checkpoint directory.
fn info(path: &Path) -> Result<()> {
    let config = if path.is_dir() {
        let meta = checkpoint::read_meta(path)
            .with_context(|| format!("checkpoint {}", path.display()))?;
        println!(
            "checkpoint: {} (format {} v{}, weights {})",
            path.display(),
            meta.format,
            meta.format_version,
            meta.dtype
        );
        meta.config
    } else {
        SamplerConfig::from_yaml_file(path)?
    };
    print!("{}", describe(&config)?);
    let f = config.flops_per_token();
    println!(
        "FLOPs per token: {} ({} matmul + {} elementwise); per row: {:.3} GFLOP at V = 49152, {:.3} GFLOP at V = 128256",
        f.total(),
        f.matmul,
        f.elementwise,
        f.total() as f64 * 49152.0 / 1e9,
        f.total() as f64 * 128256.0 / 1e9
    );
    Ok(())
}
