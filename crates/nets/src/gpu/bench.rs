//! The learned-sampler rows of `adasamp bench-gpu`: the SamplingNetwork's forward at
//! V = 128,256 (batch 1 / 16 / 64), fused kernels against plain candle on the same device, and
//! training positions/s, each with its same-run reference named.

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::SamplerConfig;
use crate::error::{NetsError, Result};
use crate::gpu::fused::{FusedPrecision, FusedSampler};
use crate::sampler::LearnedSampler;
use crate::train::bench::{positions_per_second_on, synthetic_dataset};
use crate::train::data::RowPrecision;
use crate::train::trainer::Engine;

/// Vocabulary of the forward rows (Llama 3's).
pub const FORWARD_VOCAB: usize = 128_256;
/// Batch sizes (rows) of the forward rows.
pub const FORWARD_BATCHES: [usize; 3] = [1, 16, 64];
/// Vocabulary of the training row (SmolLM2's).
pub const TRAIN_VOCAB: usize = 49_152;
/// Positions per training step.
pub const TRAIN_POSITIONS: usize = 32;
/// Untimed calls before each timed series (the first call loads the PTX).
const WARMUP: usize = 2;

/// One measured row.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuBenchRow {
    /// What is measured, e.g. `sampling_network forward (split f16), V = 128256, batch 16`.
    pub what: String,
    /// The batch (rows) of a forward row; `None` for the training row.
    pub batch: Option<usize>,
    /// Unit of [`Self::fused`] and [`Self::reference`]: `ms` (lower is better) or `positions/s`
    /// (higher is better).
    pub unit: &'static str,
    /// The fused kernels' figure; `None` where there is no fused implementation (training:
    /// the fused backward is not built yet).
    pub fused: Option<f64>,
    /// The reference's figure, measured in the same run on the same device.
    pub reference: f64,
    /// The reference's name.
    pub reference_name: &'static str,
}

impl GpuBenchRow {
    /// How many times faster the fused path is than the reference (`reference / fused` for
    /// times, `fused / reference` for rates); `None` without a fused figure.
    pub fn speedup(&self) -> Option<f64> {
        let fused = self.fused?;
        Some(if self.unit == "ms" {
            self.reference / fused
        } else {
            fused / self.reference
        })
    }
}

/// Median wall time in ms of `iters` calls of `f`, each followed by a device synchronisation,
/// after [`WARMUP`] untimed calls.
fn median_ms(device: &Device, iters: usize, mut f: impl FnMut() -> Result<Tensor>) -> Result<f64> {
    for _ in 0..WARMUP {
        f()?;
    }
    device.synchronize()?;
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let start = Instant::now();
        f()?;
        device.synchronize()?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// The fused forward's variants measured by [`gpu_bench_rows`], with their labels.
pub const FORWARD_PRECISIONS: [(FusedPrecision, &str); 2] = [
    (FusedPrecision::SplitF16, "split f16"),
    (FusedPrecision::F16, "f16"),
];

/// Measures, on `device` (a CUDA device), a `sampling_network` `config` with seeded weights:
/// the forward at V = [`FORWARD_VOCAB`] for every batch of [`FORWARD_BATCHES`] (median of
/// `iters` calls, plain candle and the fused kernels at each of [`FORWARD_PRECISIONS`], on the
/// same random logits; one row per precision and batch), and the training rate at
/// V = [`TRAIN_VOCAB`], [`TRAIN_POSITIONS`] positions per step (`iters` steps of the trainer's
/// candle engine; scratch files in `scratch`). Shows a progress bar.
pub fn gpu_bench_rows(
    device: &Device,
    config: &SamplerConfig,
    iters: usize,
    scratch: &Path,
) -> Result<Vec<GpuBenchRow>> {
    if iters == 0 {
        return Err(NetsError::bad_request(
            "iterations",
            iters,
            "needs at least one timed call",
        ));
    }
    let sampler = LearnedSampler::seeded(config, 0, DType::F32, device)?;
    let fused = FORWARD_PRECISIONS
        .iter()
        .map(|&(p, label)| Ok((FusedSampler::new(&sampler)?.with_precision(p), label)))
        .collect::<Result<Vec<_>>>()?;
    let bar = ProgressBar::new(FORWARD_BATCHES.len() as u64 + 1).with_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}")
            .map_err(|e| NetsError::bad_request("progress template", e, "invalid"))?,
    );
    let mut rows = Vec::new();
    for batch in FORWARD_BATCHES {
        bar.set_message(format!("forward batch {batch}"));
        let logits = (Tensor::randn(0f32, 1f32, (batch, FORWARD_VOCAB), device)? * 3.0)?;
        let plain = median_ms(device, iters, || sampler.forward(&logits))?;
        for (net, label) in &fused {
            let fast = median_ms(device, iters, || net.forward(&logits))?;
            rows.push(GpuBenchRow {
                what: format!(
                    "{} forward ({label}), V = {FORWARD_VOCAB}, batch {batch}",
                    config.architecture()
                ),
                batch: Some(batch),
                unit: "ms",
                fused: Some(fast),
                reference: plain,
                reference_name: "plain candle",
            });
        }
        bar.inc(1);
    }
    bar.set_message("training");
    let dataset = synthetic_dataset(
        TRAIN_VOCAB,
        TRAIN_POSITIONS * (iters + 1),
        7,
        RowPrecision::F16,
    )?;
    let rate = positions_per_second_on(
        device,
        &dataset,
        config,
        Engine::Candle,
        1,
        TRAIN_POSITIONS,
        iters as u64,
        scratch,
    )?;
    rows.push(GpuBenchRow {
        what: format!(
            "{} training step, V = {TRAIN_VOCAB}, {TRAIN_POSITIONS} positions",
            config.architecture()
        ),
        batch: None,
        unit: "positions/s",
        fused: None,
        reference: rate,
        reference_name: "plain candle (trainer)",
    });
    bar.finish_and_clear();
    Ok(rows)
}
