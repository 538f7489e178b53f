//! `adasamp bench-sampler`: one-thread CPU time per row of the learned samplers' fast path
//! ([`adasamp_nets::FastSampler`]) against the plain candle forward of the same weights, with the
//! achieved GFLOP/s ([`adasamp_nets::SamplerConfig::flops_per_token`]) as a share of the
//! machine's single-thread f32 matmul rate, measured in the same run with candle's CPU matmul
//! (the `gemm` crate, `Parallelism::None` since `RAYON_NUM_THREADS=1`) on 512×512×512.
//!
//! One thread: the command sets `RAYON_NUM_THREADS=1` before any candle call (candle's CPU
//! matmul reads it on every call to choose the `gemm` crate's parallelism); the fast path is
//! single-threaded by construction.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use adasamp_nets::{FastSampler, LearnedSampler, SamplerConfig};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use clap::Args;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Options of `bench-sampler`.
#[derive(Debug, Args)]
pub struct BenchSamplerArgs {
    /// Vocabulary sizes (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "49152,128256")]
    pub vocab: Vec<usize>,
    /// Batch sizes (rows per call, comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    pub batch: Vec<usize>,
    /// Timed repetitions of the fast path per cell (the candle forward runs once per cell,
    /// after one warm-up when the batch holds at most 2^20 logits).
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
    /// Smoke run: V = 4096, batch 1, one repetition (overrides --vocab/--batch/--iters).
    #[arg(long)]
    pub quick: bool,
    /// Sampler configuration files (default: configs/samplers/{local,simple_dynamic,
    /// sampling_network}.yaml when present, else the same configurations built in).
    #[arg(long, value_name = "CONFIG.yaml")]
    pub config: Vec<PathBuf>,
    /// Skip the candle forward (only the fast path).
    #[arg(long)]
    pub no_candle: bool,
    /// Write the table (markdown) to this file as well.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// The per-row targets at V = 49152, batch 1, one thread (milliseconds).
fn target_ms(c: &SamplerConfig) -> Option<f64> {
    match c {
        SamplerConfig::LocalProbabilityTransform(_) => Some(1.0),
        SamplerConfig::SimpleDistributionAwareTransform(_) => Some(30.0),
        SamplerConfig::SamplingNetwork(_) => Some(100.0),
    }
}

fn default_configs() -> Result<Vec<(String, SamplerConfig)>> {
    let builtin = [
        ("local", "architecture: local_probability_transform\nhidden: 64\n"),
        (
            "simple_dynamic",
            "architecture: simple_distribution_aware_transform\nhidden: 64\ndynamic_truncation: true\n",
        ),
        (
            "sampling_network",
            "architecture: sampling_network\nd_model: 32\nd_ff: 64\nn_blocks: 4\nn_heads: 4\nscale: true\n",
        ),
    ];
    builtin
        .iter()
        .map(|(name, yaml)| {
            let file = PathBuf::from("configs/samplers").join(format!("{name}.yaml"));
            let c = if file.is_file() {
                SamplerConfig::from_yaml_file(&file)?
            } else {
                SamplerConfig::from_yaml_str(yaml, name)?
            };
            Ok((name.to_string(), c))
        })
        .collect()
}

/// Single-thread f32 matmul rate (GFLOP/s) of candle's CPU backend on 512×512×512.
fn matmul_rate() -> Result<f64> {
    let n = 512;
    let a = Tensor::randn(0f32, 1.0, (n, n), &Device::Cpu)?;
    let b = Tensor::randn(0f32, 1.0, (n, n), &Device::Cpu)?;
    for _ in 0..2 {
        a.matmul(&b)?;
    }
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..4 {
            a.matmul(&b)?;
        }
        best = best.min(t.elapsed().as_secs_f64() / 4.0);
    }
    Ok(2.0 * (n * n * n) as f64 / best / 1e9)
}

fn random_rows(rows: usize, vocab: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..rows * vocab)
        .map(|_| {
            let u1: f64 = rng.random::<f64>().max(1e-300);
            let u2: f64 = rng.random::<f64>();
            (3.0 * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
        })
        .collect()
}

/// Runs the benchmark and prints (and optionally writes) the markdown table.
pub fn run(args: &BenchSamplerArgs) -> Result<()> {
    // Before any candle call: one thread for candle's CPU matmul (read on every call).
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let (vocabs, batches, iters) = if args.quick {
        (vec![4096], vec![1], 1)
    } else {
        (args.vocab.clone(), args.batch.clone(), args.iters.max(1))
    };
    if vocabs.iter().chain(&batches).any(|&x| x == 0) {
        bail!("--vocab and --batch values must be ≥ 1");
    }
    let configs = if args.config.is_empty() {
        default_configs()?
    } else {
        args.config
            .iter()
            .map(|p| {
                let c = SamplerConfig::from_yaml_file(p)
                    .with_context(|| format!("--config {}", p.display()))?;
                let name = p
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| c.architecture().to_string());
                Ok((name, c))
            })
            .collect::<Result<Vec<_>>>()?
    };
    let rate = matmul_rate()?;
    eprintln!("single-thread f32 matmul (candle CPU / gemm, 512³): {rate:.1} GFLOP/s");
    let mut table = String::new();
    writeln!(
        table,
        "One thread; f32 matmul rate of this machine (candle CPU matmul = `gemm` crate, 1 thread, \
         512×512×512): **{rate:.1} GFLOP/s**. Time per row; GFLOP/s from the FLOP counts of \
         `SamplerConfig::flops_per_token` (useful work, no padding); a network marked \
         *tabulated* runs as a verified cubic table of `lp` (the LocalProbabilityTransform), so \
         its GFLOP/s is the network-equivalent rate.\n"
    )?;
    writeln!(
        table,
        "| network | params | FLOP/token | V | batch | fast ms/row | GFLOP/s | % matmul | candle ms/row | speed-up | target (V=49152, b=1) |"
    )?;
    writeln!(
        table,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    )?;
    for (name, config) in &configs {
        let sampler = LearnedSampler::seeded(config, 0, DType::F32, &Device::Cpu)?;
        let mut fast = FastSampler::new(&sampler)?;
        let flops = config.flops_per_token().total() as f64;
        let name = match fast.weights().tabulated_intervals() {
            Some(n) => format!("{name} (tabulated, {n} cubics)"),
            None => name.clone(),
        };
        for &vocab in &vocabs {
            for &batch in &batches {
                let input = random_rows(batch, vocab, 42);
                let mut work = input.clone();
                fast.apply_batch(&mut work, vocab)?; // warm-up: scratch allocated here
                let mut best = f64::INFINITY;
                for _ in 0..iters {
                    work.copy_from_slice(&input);
                    let t = Instant::now();
                    fast.apply_batch(&mut work, vocab)?;
                    best = best.min(t.elapsed().as_secs_f64());
                }
                let fast_ms = best * 1e3 / batch as f64;
                let gflops = flops * vocab as f64 / (fast_ms * 1e-3) / 1e9;
                let (candle_ms, speedup) = if args.no_candle {
                    ("—".to_string(), "—".to_string())
                } else {
                    let z = Tensor::from_vec(input.clone(), (batch, vocab), &Device::Cpu)?;
                    if batch * vocab <= 1 << 20 {
                        sampler.forward(&z)?;
                    }
                    let t = Instant::now();
                    sampler.forward(&z)?;
                    let ms = t.elapsed().as_secs_f64() * 1e3 / batch as f64;
                    (format!("{ms:.2}"), format!("{:.1}×", ms / fast_ms))
                };
                let target = match target_ms(config) {
                    Some(t) if vocab == 49152 && batch == 1 => {
                        let ok = if fast_ms <= t { "met" } else { "missed" };
                        format!("≤ {t} ms: {ok}")
                    }
                    _ => String::new(),
                };
                let line = format!(
                    "| {name} | {} | {:.0} | {vocab} | {batch} | {fast_ms:.3} | {gflops:.1} | {:.0} % | {candle_ms} | {speedup} | {target} |",
                    sampler.parameter_count(),
                    flops,
                    100.0 * gflops / rate,
                );
                eprintln!("{line}");
                writeln!(table, "{line}")?;
            }
        }
    }
    print!("{table}");
    if let Some(p) = &args.output {
        adasamp_engine::files::write_atomic(p, table.as_bytes())?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}
