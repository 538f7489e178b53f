//! Training-step throughput on synthetic positions: what `adasamp bench-train` measures.
//!
//! A step is exactly the trainer's ([`crate::train::train`]): forward, [`crate::TruncatedLogitsLoss`],
//! backward and AdamW on one micro-batch, with the chosen [`Engine`] and thread count; evaluation
//! is off and the only checkpoint is written after the timed steps.

use std::path::Path;
use std::time::Instant;

use adasamp_sampling::{PipelineSpec, StageSpec};
use candle_core::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::SamplerConfig;
use crate::error::{NetsError, Result};
use crate::train::data::{Dataset, RowPrecision};
use crate::train::trainer::{train, Engine, StepMetrics, TrainConfig, TrainObserver};

/// `rows` synthetic positions over a vocabulary of `vocab` (one record), stored at `precision`:
/// LM-like logits — a Gaussian bulk `N(0, σ²)`, `σ ∈ [1.5, 3.5)` per row, with 32 random tokens
/// boosted by up to +12 — and targets of the pipeline temperature 0.8 → min_p 0.1 (the docs'
/// quality run). Stored as f16, a row holds ~12,300 distinct values at V = 49,152 (real rows of
/// the default model: 1,200–12,600, median ~8,900), which is what the fast engine's grouping
/// of equal logits sees; stored as f32 every value is distinct. The same `seed` gives the same
/// logits at either precision.
pub fn synthetic_dataset(
    vocab: usize,
    rows: usize,
    seed: u64,
    precision: RowPrecision,
) -> Result<Dataset> {
    if vocab == 0 || rows == 0 {
        return Err(NetsError::bad_request(
            "synthetic dataset",
            format!("{rows} rows × V {vocab}"),
            "needs at least one row and one token",
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut raw = Vec::with_capacity(rows * vocab);
    let mut generation = Vec::with_capacity(rows);
    for _ in 0..rows {
        let sigma: f64 = rng.random_range(1.5..3.5);
        let start = raw.len();
        raw.extend((0..vocab).map(|_| {
            // Box–Muller.
            let u1: f64 = rng.random::<f64>().max(1e-300);
            let u2: f64 = rng.random::<f64>();
            (sigma * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
        }));
        let row = &mut raw[start..];
        for k in 0..32 {
            let i = rng.random_range(0..vocab);
            row[i] += rng.random_range(2.0f32..12.0) * (1.0 - k as f32 / 32.0);
        }
        let best = (0..vocab)
            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
            .unwrap_or(0);
        generation.push(best as u32);
    }
    let spec = PipelineSpec {
        name: "t0.8_min_p0.1".into(),
        weight: 1.0,
        processors: vec![
            StageSpec::new("temperature", &[("temperature", 0.8)]),
            StageSpec::new("min_p", &[("min_p", 0.1)]),
        ],
    };
    let mut ds = Dataset::new(vocab, precision);
    ds.add_record("synthetic", &[0], &generation, &raw, &spec)?;
    Ok(ds)
}

/// Records the time of every completed step.
struct StepClock(Vec<Instant>);

impl TrainObserver for StepClock {
    fn step(&mut self, _: &StepMetrics) {
        self.0.push(Instant::now());
    }
}

/// Positions per second of `steps` optimizer steps of `batch` positions each (after one untimed
/// warm-up step), training `config` on `dataset` with `engine` on `threads` threads (CPU); the
/// run's files go to `scratch`. `dataset` needs `batch · (steps + 1)` positions.
pub fn positions_per_second(
    dataset: &Dataset,
    config: &SamplerConfig,
    engine: Engine,
    threads: usize,
    batch: usize,
    steps: u64,
    scratch: &Path,
) -> Result<f64> {
    if steps == 0 || batch == 0 {
        return Err(NetsError::bad_request(
            "benchmark steps",
            format!("{steps} steps of {batch}"),
            "needs at least one step of one position",
        ));
    }
    let needed = batch * (steps as usize + 1);
    if dataset.num_rows() < needed {
        return Err(NetsError::bad_request(
            "benchmark dataset",
            dataset.num_rows(),
            format!(
                "{} steps of {batch} positions need {needed} positions",
                steps + 1
            ),
        ));
    }
    let cfg = TrainConfig {
        token_batch: batch,
        grad_accum: 1,
        warmup_steps: 0,
        epochs: 1,
        save_every: 0,
        eval_every: 0,
        eval_fraction: 0.0,
        threads,
        engine,
        stop_after: Some(steps + 1),
        ..TrainConfig::default()
    };
    let mut clock = StepClock(Vec::new());
    train(
        dataset,
        "benchmark",
        config,
        &cfg,
        &Device::Cpu,
        scratch,
        false,
        &mut clock,
    )?;
    let (Some(first), Some(last)) = (clock.0.first(), clock.0.last()) else {
        return Err(NetsError::NoData {
            what: "timed benchmark steps".into(),
        });
    };
    let secs = last.duration_since(*first).as_secs_f64().max(1e-9);
    Ok((clock.0.len() - 1) as f64 * batch as f64 / secs)
}
