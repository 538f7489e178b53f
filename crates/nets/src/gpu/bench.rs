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
use crate::gpu::fused_training::FusedTrainer;
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
    /// The fused kernels' figure; `None` where there is no fused implementation (a
    /// configuration without compiled training kernels).
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

/// The forward rows of [`gpu_bench_rows`] alone (same measurement, same rows), with a progress
/// bar.
pub fn gpu_forward_rows(
    device: &Device,
    config: &SamplerConfig,
    iters: usize,
) -> Result<Vec<GpuBenchRow>> {
    check_iters(iters)?;
    let sampler = LearnedSampler::seeded(config, 0, DType::F32, device)?;
    let bar = progress_bar(FORWARD_BATCHES.len() as u64)?;
    let rows = forward_rows_of(device, config, &sampler, iters, &bar)?;
    bar.finish_and_clear();
    Ok(rows)
}

/// An error unless `iters` (timed calls per measurement) is at least 1.
fn check_iters(iters: usize) -> Result<()> {
    if iters == 0 {
        return Err(NetsError::bad_request(
            "iterations",
            iters,
            "needs at least one timed call",
        ));
    }
    Ok(())
}

/// A progress bar of `len` steps with a message.
fn progress_bar(len: u64) -> Result<ProgressBar> {
    Ok(ProgressBar::new(len).with_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}")
            .map_err(|e| NetsError::bad_request("progress template", e, "invalid"))?,
    ))
}

/// One row per batch of [`FORWARD_BATCHES`] and precision of [`FORWARD_PRECISIONS`]: `sampler`'s
/// fused forward against its plain candle forward (median of `iters` calls each), advancing
/// `bar` once per batch.
fn forward_rows_of(
    device: &Device,
    config: &SamplerConfig,
    sampler: &LearnedSampler,
    iters: usize,
    bar: &ProgressBar,
) -> Result<Vec<GpuBenchRow>> {
    let fused = FORWARD_PRECISIONS
        .iter()
        .map(|&(p, label)| Ok((FusedSampler::new(sampler)?.with_precision(p), label)))
        .collect::<Result<Vec<_>>>()?;
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
    Ok(rows)
}

/// Measures, on `device` (a CUDA device), a `sampling_network` `config` with seeded weights:
/// the forward at V = [`FORWARD_VOCAB`] for every batch of [`FORWARD_BATCHES`] (median of
/// `iters` calls, plain candle and the fused kernels at each of [`FORWARD_PRECISIONS`], on the
/// same random logits; one row per precision and batch), the fused training step alone against
/// candle's autograd, and the training rate at V = [`TRAIN_VOCAB`], [`TRAIN_POSITIONS`] positions
/// per step (`iters` steps of the trainer, fused engine against the candle engine; scratch files
/// in `scratch`). The training rows come in pairs, on logits stored as f16 (the replay cache's
/// rows: the fused step groups equal logits, see [`FusedTrainer`]) and as f32 (every token
/// distinct: token by token). Shows a progress bar.
pub fn gpu_bench_rows(
    device: &Device,
    config: &SamplerConfig,
    iters: usize,
    scratch: &Path,
) -> Result<Vec<GpuBenchRow>> {
    check_iters(iters)?;
    let sampler = LearnedSampler::seeded(config, 0, DType::F32, device)?;
    let bar = progress_bar(FORWARD_BATCHES.len() as u64 + 4)?;
    let mut rows = forward_rows_of(device, config, &sampler, iters, &bar)?;
    for precision in TRAIN_PRECISIONS {
        if FusedTrainer::supports(config) {
            bar.set_message(format!("training step, {} rows", precision.name()));
            rows.push(step_row(device, config, &sampler, iters, precision)?);
            bar.inc(1);
        }
        bar.set_message(format!("training, {} rows", precision.name()));
        let dataset = synthetic_dataset(TRAIN_VOCAB, TRAIN_POSITIONS * (iters + 1), 7, precision)?;
        let rate = |engine| {
            positions_per_second_on(
                device,
                &dataset,
                config,
                engine,
                1,
                TRAIN_POSITIONS,
                iters as u64,
                scratch,
            )
        };
        let plain = rate(Engine::Candle)?;
        let fused = if FusedTrainer::supports(config) {
            Some(rate(Engine::Fused)?)
        } else {
            None
        };
        rows.push(GpuBenchRow {
            what: format!(
                "{} training step, V = {TRAIN_VOCAB}, {TRAIN_POSITIONS} positions, {}",
                config.architecture(),
                rows_name(precision)
            ),
            batch: None,
            unit: "positions/s",
            fused,
            reference: plain,
            reference_name: "plain candle (trainer)",
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(rows)
}

/// Storage precisions of the training rows' logits: f16 (the replay cache's; the fused step
/// groups equal values) and f32 (every value distinct).
pub const TRAIN_PRECISIONS: [RowPrecision; 2] = [RowPrecision::F16, RowPrecision::F32];

/// How a training row names its logits.
fn rows_name(precision: RowPrecision) -> &'static str {
    match precision {
        RowPrecision::F16 => "f16 logits (equal values grouped)",
        RowPrecision::F32 => "f32 logits (token by token)",
    }
}

/// The training step alone on inputs already on the GPU — forward, loss and backward of
/// [`TRAIN_POSITIONS`] rows at V = [`TRAIN_VOCAB`] (random logits rounded to `precision`, targets
/// temperature 0.8 → min_p 0.1 of them), no optimizer and no host data: [`FusedTrainer::step`]
/// against candle's autograd of the same loss, in positions/s (median of `iters` steps each).
fn step_row(
    device: &Device,
    config: &SamplerConfig,
    sampler: &LearnedSampler,
    iters: usize,
    precision: RowPrecision,
) -> Result<GpuBenchRow> {
    use crate::loss::TruncatedLogitsLoss;
    use candle_nn::VarMap;

    let (z, target) = step_inputs(device, precision)?;
    let params = sampler.named_parameters();
    let scale = 1.0 / TRAIN_POSITIONS as f64;
    let trainer = FusedTrainer::new(config, device)?;
    let fused = median_ms(device, iters, || {
        let step = trainer.step(&params, &z, &target, 1.0, scale)?;
        Ok(step.grads.into_values().next().unwrap_or_else(|| z.clone()))
    })?;
    let varmap = VarMap::new();
    let trainable = LearnedSampler::trainable_from(config, params, &varmap, DType::F32, device)?;
    let loss = TruncatedLogitsLoss::new(1.0)?;
    let plain = median_ms(device, iters, || {
        let pred = trainable.forward(&z)?;
        let (kl, pen) = loss.per_row(&pred, &target)?;
        let total = ((kl + pen)?.sum_all()? * scale)?;
        let grads = total.backward()?;
        Ok(grads.get(&pred).cloned().unwrap_or(total))
    })?;
    let rate = |ms: f64| TRAIN_POSITIONS as f64 / (ms / 1e3);
    Ok(GpuBenchRow {
        what: format!(
            "{} forward + loss + backward (inputs on the GPU, no optimizer), V = {TRAIN_VOCAB}, \
             {TRAIN_POSITIONS} positions, {}",
            config.architecture(),
            rows_name(precision)
        ),
        batch: None,
        unit: "positions/s",
        fused: Some(rate(fused)),
        reference: rate(plain),
        reference_name: "plain candle autograd",
    })
}

/// [`TRAIN_POSITIONS`] rows of random logits `N(0, 3²)` at V = [`TRAIN_VOCAB`] on `device`,
/// rounded to `precision`, and their targets (temperature 0.8 → min_p 0.1).
fn step_inputs(device: &Device, precision: RowPrecision) -> Result<(Tensor, Tensor)> {
    let z = (Tensor::randn(0f32, 1f32, (TRAIN_POSITIONS, TRAIN_VOCAB), device)? * 3.0)?;
    let z = match precision {
        RowPrecision::F16 => z.to_dtype(DType::F16)?.to_dtype(DType::F32)?,
        RowPrecision::F32 => z,
    };
    let t = (&z / 0.8)?;
    let floor = t
        .max_keepdim(1)?
        .broadcast_add(&Tensor::new(0.1f32.ln(), device)?)?;
    let keep = t.broadcast_ge(&floor)?;
    let target = keep.where_cond(&t, &t.ones_like()?.affine(0.0, f64::NEG_INFINITY)?)?;
    Ok((z, target))
}

/// Where the time of one fused training step goes ([`crate::gpu::FusedStep::phases`]): the
/// inputs of the step row ([`TRAIN_POSITIONS`] positions at V = [`TRAIN_VOCAB`], logits rounded
/// to `precision`) with seeded weights, after one untimed step; the device is synchronised
/// between phases.
pub fn fused_step_phases(
    device: &Device,
    config: &SamplerConfig,
    precision: RowPrecision,
) -> Result<Vec<(&'static str, f64)>> {
    let sampler = LearnedSampler::seeded(config, 0, DType::F32, device)?;
    let params = sampler.named_parameters();
    let (z, target) = step_inputs(device, precision)?;
    let trainer = FusedTrainer::new(config, device)?.with_phase_times(true);
    let scale = 1.0 / TRAIN_POSITIONS as f64;
    trainer.step(&params, &z, &target, 1.0, scale)?;
    Ok(trainer.step(&params, &z, &target, 1.0, scale)?.phases)
}
