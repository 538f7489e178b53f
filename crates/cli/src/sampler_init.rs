//! `adasamp sampler init`: a learned sampler with seeded initial weights, saved as a checkpoint
//! directory (an untrained baseline, and a sampler to try `analyze` on before training).

use std::path::PathBuf;

use adasamp_nets::{LearnedSampler, SamplerConfig};
use anyhow::{Context, Result};
use candle_core::{DType, Device};
use clap::Args;

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

/// Runs `sampler init`.
pub fn run(a: &InitArgs) -> Result<()> {
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
