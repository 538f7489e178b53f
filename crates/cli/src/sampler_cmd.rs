//! `adasamp sampler …`: learned-sampler utilities.

use std::path::Path;

use adasamp_nets::{checkpoint, describe, SamplerConfig};
use anyhow::{Context, Result};

/// `adasamp sampler info PATH`: prints the architecture, parameter counts per module and layer
/// ([`adasamp_nets::describe`]) and FLOPs per token of a config YAML or a checkpoint directory.
pub fn info(path: &Path) -> Result<()> {
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
