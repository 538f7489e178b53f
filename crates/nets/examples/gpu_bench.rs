//! Prints the learned-sampler GPU benchmark rows ([`adasamp_nets::gpu::gpu_bench_rows`]) as a
//! Markdown table, on CUDA device 0 (built with the `cuda` feature):
//!
//! ```text
//! gpu_bench [SAMPLER_YAML] [ITERS] [forward]   # defaults: configs/samplers/sampling_network.yaml, 20
//! ```
//!
//! With `forward`: only the forward rows ([`adasamp_nets::gpu::bench::gpu_forward_rows`]), no
//! training rows or phase table.

use std::error::Error;
use std::path::PathBuf;

use adasamp_nets::gpu::bench::{gpu_forward_rows, TRAIN_PRECISIONS};
use adasamp_nets::gpu::gpu_bench_rows;
use adasamp_nets::SamplerConfig;
use candle_core::Device;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let config = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "configs/samplers/sampling_network.yaml".into()),
    );
    let iters: usize = match args.next() {
        Some(s) => s
            .parse()
            .map_err(|e| format!("ITERS = {s:?}: not a count: {e}"))?,
        None => 20,
    };
    let forward_only = match args.next().as_deref() {
        None => false,
        Some("forward") => true,
        Some(other) => return Err(format!("third argument {other:?}: only `forward`").into()),
    };
    let config = SamplerConfig::from_yaml_file(&config)?;
    let device = Device::new_cuda(0)?;
    let scratch = tempfile_dir()?;
    let rows = if forward_only {
        gpu_forward_rows(&device, &config, iters)?
    } else {
        gpu_bench_rows(&device, &config, iters, &scratch)?
    };
    println!("| measurement | unit | fused | reference | reference is | fused speed-up |");
    println!("|---|---|---|---|---|---|");
    for row in rows {
        let fused = row.fused.map_or("—".into(), |f| format!("{f:.3}"));
        let speedup = row.speedup().map_or("—".into(), |s| format!("{s:.1}×"));
        println!(
            "| {} | {} | {fused} | {:.3} | {} | {speedup} |",
            row.what, row.unit, row.reference, row.reference_name
        );
    }
    let phase_tables = if !forward_only && adasamp_nets::gpu::FusedTrainer::supports(&config) {
        TRAIN_PRECISIONS.as_slice()
    } else {
        &[]
    };
    for &precision in phase_tables {
        let phases = adasamp_nets::gpu::bench::fused_step_phases(&device, &config, precision)?;
        let total: f64 = phases.iter().map(|(_, s)| s).sum();
        println!(
            "\nOne fused training step, {} logits ({total:.4} s, device synchronised between \
             phases):\n",
            precision.name()
        );
        println!("| phase | ms | share |");
        println!("|---|---:|---:|");
        for (name, secs) in phases {
            println!(
                "| {name} | {:.2} | {:.0} % |",
                secs * 1e3,
                100.0 * secs / total
            );
        }
    }
    std::fs::remove_dir_all(&scratch)?;
    Ok(())
}

/// A fresh directory under the system temp dir for the training run's files.
fn tempfile_dir() -> Result<PathBuf, Box<dyn Error>> {
    let dir = std::env::temp_dir().join(format!("adasamp-gpu-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
