//! The training loop: token batches across records, gradient accumulation, AdamW with a
//! warm-up schedule, [`TruncatedLogitsLoss`], evaluation against the identity on a held-out
//! split of records, `metrics.csv`, checkpoints with the full training state, exact resume.
//!
//! # Batches and the data stream
//! The training rows (positions of the training records) are shuffled once per epoch with a
//! ChaCha8 RNG seeded from `(seed, epoch)` and cut into micro-batches of `token_batch` rows (the
//! last incomplete one dropped, unless the whole epoch is smaller than one batch). Micro-batches
//! form one stream across epochs; an optimizer step consumes `grad_accum` of them. The stream
//! position is `(epoch, batch_in_epoch)`, so a resumed run sees exactly the batches the
//! uninterrupted run would have.
//!
//! # Engines, parallelism and exactness
//! [`Engine::Fast`] (CPU only) computes forward, loss and backward with [`FastGrad`]: the rows of
//! a micro-batch run data-parallel on its rayon pool of `threads` threads and their gradients
//! are summed in row order, so the result does not depend on `threads`. [`Engine::Candle`] uses
//! candle's autograd on the [`Device`] passed in: a micro-batch is split into `threads`
//! contiguous chunks whose forward + backward run on their own threads (candle's CPU
//! elementwise kernels are single-threaded; its matmuls use its own pool), chunk gradients
//! summed in chunk order, deterministic for a given `threads`. [`Engine::Fused`] (the default
//! on a GPU) runs the fused CUDA training step of a `cuda` build on a micro-batch (in passes of
//! a bounded number of tokens) where the configuration has compiled kernels, candle otherwise;
//! the run's first message says which. Its passes read their batches from page-locked memory
//! that a worker thread fills with the next pass's rows while the device runs the current one
//! (`batches`). Its f32 atomics make it reproducible to rounding, not
//! bit for bit. All engines feed the same AdamW (the fused engine runs it as one CUDA kernel,
//! `AdamW::step_fused`, equal to the candle ops to f32 rounding),
//! schedule and checkpoints (the weights stay candle variables), so a run may switch engines
//! between checkpoints; their gradients agree to f32 rounding, not bit for bit. Evaluation runs
//! on the engine's forward ([`crate::FastSampler`] or candle). A resumed run on the fast or
//! candle engine with the same `threads` repeats the uninterrupted run bit for bit.
//!
//! # Output directory
//! `metrics.csv` (appended on resume), `checkpoints/step-NNNNNNNN/` (weights + training state, see
//! [`crate::checkpoint`]), `final/` (the last weights + state), `report.json` (the last
//! evaluation and the run's speed).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use adasamp_engine::files::write_atomic;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, AdamWState, RngState, TrainingState};
use crate::config::SamplerConfig;
use crate::error::{NetsError, Result};
use crate::fast::{FastGrad, FastSampler, GradRows, TargetRow};
use crate::loss::{row_divergence, TruncatedLogitsLoss};
use crate::sampler::LearnedSampler;
use crate::train::batches::batch_tensors;
#[cfg(feature = "cuda")]
use crate::train::batches::PinnedStaging;
use crate::train::data::Dataset;
use crate::train::optim::AdamW;
use crate::train::schedule::{Schedule, ScheduleKind};

/// How gradients (and evaluation outputs) are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Engine {
    /// The hand-written CPU forward + backward ([`FastGrad`]) and [`FastSampler`].
    #[default]
    Fast,
    /// candle's autograd and forward, on any device.
    Candle,
    /// The fused CUDA training step (`crate::gpu::FusedTrainer`, a `cuda` build) where it
    /// runs — a `sampling_network` of a shape with compiled kernels on a CUDA device — and
    /// [`Engine::Candle`] otherwise (the run says which, and why); evaluation on candle.
    Fused,
}

impl Engine {
    /// `fast`, `candle` or `fused`.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Fast => "fast",
            Engine::Candle => "candle",
            Engine::Fused => "fused",
        }
    }

    /// Parses `fast` / `candle` / `fused`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "fast" => Ok(Engine::Fast),
            "candle" => Ok(Engine::Candle),
            "fused" => Ok(Engine::Fused),
            other => Err(NetsError::bad_request(
                "engine",
                other,
                "expected fast, candle or fused",
            )),
        }
    }

    /// The default for `device`: fast on the CPU, fused (candle where it does not run)
    /// elsewhere.
    pub fn default_for(device: &Device) -> Self {
        if device.is_cpu() {
            Engine::Fast
        } else {
            Engine::Fused
        }
    }
}

/// The gradient computation a run uses, resolved from its [`Engine`].
enum Gradients {
    Fast(Box<FastGrad>),
    Candle,
    /// The fused step and the page-locked staging of its batches.
    #[cfg(feature = "cuda")]
    Fused(Box<(crate::gpu::FusedTrainer, PinnedStaging)>),
}

impl Gradients {
    /// Resolves `engine` for `config` on `device`, with a line saying what runs (and why the
    /// fused engine does not, when it falls back to candle).
    fn resolve(
        engine: Engine,
        config: &SamplerConfig,
        device: &Device,
        threads: usize,
    ) -> Result<(Self, String)> {
        match engine {
            Engine::Fast if !device.is_cpu() => Err(NetsError::config(
                "engine",
                "fast",
                "runs on the CPU only; use the candle or fused engine on other devices",
            )),
            Engine::Fast => Ok((
                Gradients::Fast(Box::new(FastGrad::new(config, threads)?)),
                "gradient engine: fast (hand-written CPU forward + backward)".into(),
            )),
            Engine::Candle => Ok((
                Gradients::Candle,
                "gradient engine: plain candle autograd".into(),
            )),
            Engine::Fused => Ok(Self::fused(config, device)),
        }
    }

    #[cfg(feature = "cuda")]
    fn fused(config: &SamplerConfig, device: &Device) -> (Self, String) {
        match crate::gpu::FusedTrainer::new(config, device) {
            Ok(f) => (
                Gradients::Fused(Box::new((f, PinnedStaging::default()))),
                format!(
                    "gradient engine: fused CUDA kernels ({})",
                    config.architecture()
                ),
            ),
            Err(e) => (
                Gradients::Candle,
                format!("gradient engine: plain candle autograd (no fused training: {e})"),
            ),
        }
    }

    #[cfg(not(feature = "cuda"))]
    fn fused(_config: &SamplerConfig, _device: &Device) -> (Self, String) {
        (
            Gradients::Candle,
            "gradient engine: plain candle autograd (no fused training: a build without the \
             `cuda` feature)"
                .into(),
        )
    }
}

/// Hyper-parameters of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Rows per micro-batch (B).
    pub token_batch: usize,
    /// Micro-batches per optimizer step (A).
    pub grad_accum: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate of a decaying schedule.
    pub min_lr: f64,
    /// Warm-up steps.
    pub warmup_steps: u64,
    /// Schedule after warm-up.
    pub schedule: ScheduleKind,
    /// AdamW decoupled weight decay λ.
    pub weight_decay: f64,
    /// Truncation-penalty weight γ of the loss.
    pub gamma: f64,
    /// Passes over the training rows.
    pub epochs: u64,
    /// Checkpoint every this many optimizer steps (0: only at the end).
    pub save_every: u64,
    /// Evaluate every this many optimizer steps (0: only at the end).
    pub eval_every: u64,
    /// Fraction of records held out for evaluation.
    pub eval_fraction: f64,
    /// Seed: initial weights, record split, shuffling.
    pub seed: u64,
    /// Threads computing a micro-batch (1 = no extra threads).
    pub threads: usize,
    /// How gradients are computed (not part of the resume fingerprint: a run may switch).
    pub engine: Engine,
    /// Use at most this many training rows (a prefix of the training records' rows).
    pub max_train_rows: Option<usize>,
    /// Stop after this many optimizer steps (the schedule still spans the whole run; a
    /// checkpoint is written there so `resume` continues exactly).
    pub stop_after: Option<u64>,
}

impl Default for TrainConfig {
    /// B 32, A 1, lr 1e-3 → 1e-5 cosine, warm-up 20, λ 0.01, γ 1, 1 epoch, eval 10 % of records,
    /// the fast engine.
    fn default() -> Self {
        Self {
            token_batch: 32,
            grad_accum: 1,
            lr: 1e-3,
            min_lr: 1e-5,
            warmup_steps: 20,
            schedule: ScheduleKind::Cosine,
            weight_decay: 0.01,
            gamma: 1.0,
            epochs: 1,
            save_every: 0,
            eval_every: 0,
            eval_fraction: 0.1,
            seed: 0,
            threads: 1,
            engine: Engine::Fast,
            max_train_rows: None,
            stop_after: None,
        }
    }
}

impl TrainConfig {
    fn validate(&self) -> Result<()> {
        let bad = |field: &str, v: String, why: &str| NetsError::config(field, v, why);
        if self.token_batch == 0 {
            return Err(bad("token_batch", "0".into(), "must be ≥ 1"));
        }
        if self.grad_accum == 0 {
            return Err(bad("grad_accum", "0".into(), "must be ≥ 1"));
        }
        if self.threads == 0 {
            return Err(bad("threads", "0".into(), "must be ≥ 1"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(bad("lr", self.lr.to_string(), "must be finite and > 0"));
        }
        if !(self.min_lr.is_finite() && self.min_lr >= 0.0) {
            return Err(bad(
                "min_lr",
                self.min_lr.to_string(),
                "must be finite and ≥ 0",
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(bad(
                "weight_decay",
                self.weight_decay.to_string(),
                "must be finite and ≥ 0",
            ));
        }
        if self.epochs == 0 {
            return Err(bad("epochs", "0".into(), "must be ≥ 1"));
        }
        TruncatedLogitsLoss::new(self.gamma)?;
        Ok(())
    }

    /// The settings a resumed run must share with the original (stored in the training state).
    fn fingerprint(&self, dataset: &Dataset, data_id: &str) -> BTreeMap<String, serde_json::Value> {
        use serde_json::json;
        BTreeMap::from([
            ("data".to_string(), json!(data_id)),
            ("rows".to_string(), json!(dataset.num_rows())),
            ("records".to_string(), json!(dataset.records().len())),
            ("token_batch".to_string(), json!(self.token_batch)),
            ("grad_accum".to_string(), json!(self.grad_accum)),
            ("gamma".to_string(), json!(self.gamma)),
            ("epochs".to_string(), json!(self.epochs)),
            ("eval_fraction".to_string(), json!(self.eval_fraction)),
            ("threads".to_string(), json!(self.threads)),
            ("max_train_rows".to_string(), json!(self.max_train_rows)),
        ])
    }
}

/// Mean metrics of one optimizer step.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StepMetrics {
    /// Optimizer steps completed (1-based index of this step).
    pub step: u64,
    /// Epoch of the step's last micro-batch.
    pub epoch: u64,
    /// Learning rate used.
    pub lr: f64,
    /// Mean loss `KL + γ·penalty` over the step's rows.
    pub loss: f64,
    /// Mean KL(target ‖ pred).
    pub kl: f64,
    /// Mean predicted mass on target-truncated tokens.
    pub truncated_mass: f64,
    /// Rows in the step.
    pub rows: usize,
}

/// Evaluation on the held-out rows: the sampler and the identity (raw logits) side by side.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EvalMetrics {
    /// Optimizer steps completed.
    pub step: u64,
    /// Held-out rows.
    pub rows: usize,
    /// Mean KL(target ‖ sampler) in nats.
    pub kl: f64,
    /// Mean sampler mass on target-truncated tokens.
    pub truncated_mass: f64,
    /// Mean KL(target ‖ raw logits) in nats.
    pub identity_kl: f64,
    /// Mean raw-logits mass on target-truncated tokens.
    pub identity_truncated_mass: f64,
}

/// What a run did.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainReport {
    /// Optimizer steps completed in total.
    pub steps: u64,
    /// Steps of the whole schedule.
    pub total_steps: u64,
    /// Step the run started from (0 unless resumed).
    pub resumed_from: u64,
    /// Training / eval rows.
    pub train_rows: usize,
    /// Held-out rows.
    pub eval_rows: usize,
    /// Optimizer steps per second in this run (training only, eval excluded).
    pub steps_per_s: f64,
    /// Training rows (forward + backward) per second in this run.
    pub rows_per_s: f64,
    /// The last evaluation (none without held-out rows).
    pub eval: Option<EvalMetrics>,
    /// Metrics of the last step.
    pub last_step: Option<StepMetrics>,
    /// The final checkpoint (or the stop checkpoint).
    pub checkpoint: PathBuf,
}

/// Receives progress (the CLI draws a progress bar from it).
pub trait TrainObserver {
    /// Called once before the first step: `(start_step, total_steps)`.
    fn start(&mut self, start_step: u64, total_steps: u64) {
        let _ = (start_step, total_steps);
    }
    /// Called after every optimizer step.
    fn step(&mut self, metrics: &StepMetrics) {
        let _ = metrics;
    }
    /// Called after every evaluation.
    fn eval(&mut self, metrics: &EvalMetrics) {
        let _ = metrics;
    }
    /// A human-readable message.
    fn message(&mut self, text: &str) {
        let _ = text;
    }
}

/// An observer that ignores everything.
pub struct Quiet;
impl TrainObserver for Quiet {}

/// An observer that draws training on a progress bar: the step as its position, the last
/// step's loss, KL, truncated mass and learning rate as its message, evaluations and messages
/// as lines above it.
pub struct ProgressObserver {
    /// The bar drawn on (its style is the caller's).
    pub bar: indicatif::ProgressBar,
}

impl TrainObserver for ProgressObserver {
    fn start(&mut self, start_step: u64, total_steps: u64) {
        self.bar.set_length(total_steps);
        self.bar.set_position(start_step);
        self.bar.reset_eta();
    }

    fn step(&mut self, m: &StepMetrics) {
        self.bar.set_position(m.step);
        self.bar.set_message(format!(
            "loss {:.4}  KL {:.4}  trunc {:.2}%  lr {:.2e}",
            m.loss,
            m.kl,
            100.0 * m.truncated_mass,
            m.lr
        ));
    }

    fn eval(&mut self, e: &EvalMetrics) {
        self.bar.println(format!(
            "eval @ step {}: {} rows  KL {:.4} (identity {:.4})  truncated mass {:.2}% (identity {:.2}%)",
            e.step,
            e.rows,
            e.kl,
            e.identity_kl,
            100.0 * e.truncated_mass,
            100.0 * e.identity_truncated_mass
        ));
    }

    fn message(&mut self, text: &str) {
        self.bar.println(text);
    }
}

/// Checkpoint directory for `step` under the run directory.
pub fn checkpoint_dir(out: &Path, step: u64) -> PathBuf {
    out.join("checkpoints").join(format!("step-{step:08}"))
}

/// The checkpoint with the highest step under `out/checkpoints`, if any.
pub fn latest_checkpoint(out: &Path) -> Result<Option<(u64, PathBuf)>> {
    let dir = out.join("checkpoints");
    if !dir.is_dir() {
        return Ok(None);
    }
    let mut best: Option<(u64, PathBuf)> = None;
    for e in fs::read_dir(&dir).map_err(|e| NetsError::io("cannot list", &dir, e))? {
        let e = e.map_err(|e| NetsError::io("cannot list", &dir, e))?;
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(step) = name
            .strip_prefix("step-")
            .and_then(|s| s.parse::<u64>().ok())
        {
            if best.as_ref().is_none_or(|(b, _)| step > *b) {
                best = Some((step, e.path()));
            }
        }
    }
    Ok(best)
}

/// Per-epoch permutation of the training rows and the RNG state after drawing it.
fn epoch_order(train_rows: &[usize], seed: u64, epoch: u64) -> (Vec<usize>, RngState) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch);
    let mut order = train_rows.to_vec();
    order.shuffle(&mut rng);
    (order, RngState::capture(&rng))
}

fn batches_per_epoch(n_train: usize, b: usize) -> u64 {
    (n_train / b).max(1) as u64
}

/// The rows of micro-batch `k` of an epoch's `order` (batches of `b`, the last possibly short).
fn batch_rows(order: &[usize], k: u64, b: usize) -> &[usize] {
    let i = k as usize * b;
    &order[i..(i + b).min(order.len())]
}

/// Rows per forward/backward pass: whole chunks for small vocabularies, one row at a time for
/// real ones. `n · V ≤ 65,536` keeps each activation tensor (`[n, V, width]` f32, width ≤ 128)
/// ≤ 32 MiB — under glibc's largest mmap threshold, so the allocator reuses heap memory instead
/// of mapping and zero-faulting hundreds of MB per op (measured: most of a step was kernel time).
/// On a GPU the whole chunk goes in one pass. Depends only on V and the device, so a resumed run
/// splits its batches identically.
fn rows_per_pass(vocab: usize, device: &Device) -> usize {
    if device.is_cpu() {
        (65_536 / vocab.max(1)).max(1)
    } else {
        usize::MAX
    }
}

/// Splits `n` items into `k` contiguous, nearly equal chunks (none empty).
fn chunk_bounds(n: usize, k: usize) -> Vec<std::ops::Range<usize>> {
    let k = k.clamp(1, n.max(1));
    (0..k).map(|i| (i * n / k)..((i + 1) * n / k)).collect()
}

/// Runs `f` on every chunk, in parallel when there is more than one, results in chunk order.
fn par_chunks<T: Send>(
    n: usize,
    threads: usize,
    f: impl Fn(std::ops::Range<usize>) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let bounds = chunk_bounds(n, threads);
    if bounds.len() == 1 {
        return Ok(vec![f(bounds[0].clone())?]);
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = bounds
            .iter()
            .map(|r| {
                let f = &f;
                let r = r.clone();
                s.spawn(move || f(r))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().map_err(|_| NetsError::Poisoned {
                    what: "a training thread".into(),
                })?
            })
            .collect()
    })
}

struct Model {
    sampler: LearnedSampler,
    vars: BTreeMap<String, Var>,
}

impl Model {
    fn new(sampler: LearnedSampler, varmap: &VarMap) -> Result<Self> {
        let data = varmap.data().lock().map_err(|_| NetsError::Poisoned {
            what: "the VarMap lock".into(),
        })?;
        let vars = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        Ok(Self { sampler, vars })
    }

    /// Sums of (KL, penalty) over `rows` and the gradient of `Σ(KL + γ·pen) / denom`.
    fn grads(
        &self,
        ds: &Dataset,
        rows: &[usize],
        loss: &TruncatedLogitsLoss,
        denom: f64,
        device: &Device,
    ) -> Result<(f64, f64, BTreeMap<String, Tensor>)> {
        let (raw, tgt) = batch_tensors(ds, rows, device)?;
        let pred = self.sampler.forward(&raw)?;
        let (kl, pen) = loss.per_row(&pred, &tgt)?;
        let total = ((&kl + (&pen * loss.gamma)?)?.sum_all()? / denom)?;
        let store = total.backward()?;
        let mut grads = BTreeMap::new();
        for (name, var) in &self.vars {
            if let Some(g) = store.get(var.as_tensor()) {
                grads.insert(name.clone(), g.clone());
            }
        }
        let s = |t: &Tensor| -> Result<f64> {
            Ok(t.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?)
        };
        Ok((s(&kl)?, s(&pen)?, grads))
    }
}

fn add_grads(acc: &mut BTreeMap<String, Tensor>, g: BTreeMap<String, Tensor>) -> Result<()> {
    for (k, t) in g {
        let sum = match acc.remove(&k) {
            Some(a) => (a + t)?,
            None => t,
        };
        acc.insert(k, sum);
    }
    Ok(())
}

/// Evaluates `sampler` on `rows`: mean KL(target ‖ ·) and truncated mass of the sampler and of
/// the raw logits (identity), in f64 via [`row_divergence`].
pub fn evaluate(
    sampler: &LearnedSampler,
    ds: &Dataset,
    rows: &[usize],
    batch: usize,
    threads: usize,
    step: u64,
) -> Result<EvalMetrics> {
    let v = ds.vocab();
    let device = sampler.device().clone();
    let mut sums = [0f64; 4];
    for chunk in rows.chunks(batch.max(1)) {
        let parts = par_chunks(chunk.len(), threads, |r| {
            let mut s = [0f64; 4];
            for rows in chunk[r].chunks(rows_per_pass(v, &device)) {
                let (raw, tgt) = batch_tensors(ds, rows, &device)?;
                let pred = sampler.forward(&raw)?.detach();
                let pred = pred.to_device(&Device::Cpu)?.to_vec2::<f32>()?;
                let raw = raw.to_device(&Device::Cpu)?.to_vec2::<f32>()?;
                let tgt = tgt.to_device(&Device::Cpu)?.to_vec2::<f32>()?;
                for k in 0..rows.len() {
                    let a = row_divergence(&tgt[k], &pred[k])?;
                    let b = row_divergence(&tgt[k], &raw[k])?;
                    s[0] += a.kl;
                    s[1] += a.truncated_mass;
                    s[2] += b.kl;
                    s[3] += b.truncated_mass;
                }
            }
            Ok(s)
        })?;
        for p in parts {
            for i in 0..4 {
                sums[i] += p[i];
            }
        }
    }
    let n = rows.len().max(1) as f64;
    Ok(EvalMetrics {
        step,
        rows: rows.len(),
        kl: sums[0] / n,
        truncated_mass: sums[1] / n,
        identity_kl: sums[2] / n,
        identity_truncated_mass: sums[3] / n,
    })
}

/// [`evaluate`] on the fast inference path: a [`FastSampler`] with `sampler`'s weights, rows
/// split into `threads` chunks on their own threads (CPU).
pub fn evaluate_fast(
    sampler: &LearnedSampler,
    ds: &Dataset,
    rows: &[usize],
    threads: usize,
    step: u64,
) -> Result<EvalMetrics> {
    let fast = FastSampler::new(sampler)?;
    let v = ds.vocab();
    let parts = par_chunks(rows.len(), threads, |r| {
        let mut f = fast.clone();
        let (mut raw, mut pred, mut tgt) = (vec![0f32; v], vec![0f32; v], vec![0f32; v]);
        let mut s = [0f64; 4];
        for &i in &rows[r] {
            ds.raw_row(i, &mut raw);
            pred.copy_from_slice(&raw);
            f.apply_row(&mut pred, i)?;
            ds.target(i).write_dense(&mut tgt);
            let a = row_divergence(&tgt, &pred)?;
            let b = row_divergence(&tgt, &raw)?;
            s[0] += a.kl;
            s[1] += a.truncated_mass;
            s[2] += b.kl;
            s[3] += b.truncated_mass;
        }
        Ok(s)
    })?;
    let mut sums = [0f64; 4];
    for p in parts {
        for i in 0..4 {
            sums[i] += p[i];
        }
    }
    let n = rows.len().max(1) as f64;
    Ok(EvalMetrics {
        step,
        rows: rows.len(),
        kl: sums[0] / n,
        truncated_mass: sums[1] / n,
        identity_kl: sums[2] / n,
        identity_truncated_mass: sums[3] / n,
    })
}

/// Training rows of a [`Dataset`] as a [`GradRows`] batch.
struct DatasetRows<'a> {
    ds: &'a Dataset,
    rows: &'a [usize],
}

impl GradRows for DatasetRows<'_> {
    fn len(&self) -> usize {
        self.rows.len()
    }
    fn vocab(&self) -> usize {
        self.ds.vocab()
    }
    fn logits(&self, i: usize, out: &mut [f32]) {
        self.ds.raw_row(self.rows[i], out);
    }
    fn target(&self, i: usize) -> TargetRow<'_> {
        self.ds.target(self.rows[i]).as_row()
    }
}

/// The fast engine's gradients of one optimizer step (`micro` batches, each row's loss weighted
/// by `1 / denom`): `(Σ KL, Σ penalty, gradients by name on `device`)`.
fn fast_step_grads(
    fast: &mut FastGrad,
    sampler: &LearnedSampler,
    ds: &Dataset,
    micro: &[Vec<usize>],
    gamma: f64,
    denom: usize,
    device: &Device,
) -> Result<(f64, f64, BTreeMap<String, Tensor>)> {
    fast.set_parameters(&sampler.named_parameters())?;
    let mut total = vec![0f64; fast.layout().len()];
    let (mut kl, mut pen) = (0f64, 0f64);
    for rows in micro {
        let out = fast.batch(&DatasetRows { ds, rows }, gamma, 1.0 / denom as f64)?;
        kl += out.kl;
        pen += out.penalty;
        for (a, b) in total.iter_mut().zip(&out.grad) {
            *a += b;
        }
    }
    let grads = fast
        .named(&total)
        .map(|(name, shape, g)| {
            let v: Vec<f32> = g.iter().map(|&x| x as f32).collect();
            Ok((name.to_string(), Tensor::from_vec(v, shape, device)?))
        })
        .collect::<Result<BTreeMap<_, _>>>()?;
    Ok((kl, pen, grads))
}

/// Tokens per pass of the fused step: a micro-batch is split into passes of at most
/// `FUSED_PASS_TOKENS / V` rows (≥ 1), so its activations (≈ 600 f32 per token for the reference
/// SamplingNetwork) stay near 10 GB. Depends only on V, so a resumed run splits identically.
#[cfg(feature = "cuda")]
const FUSED_PASS_TOKENS: usize = 1 << 22;

/// The fused engine's gradients of one optimizer step (`micro` batches, each row's loss
/// weighted by `1 / denom`): `(Σ KL, Σ penalty, gradients by name on `device`)`. The parameters
/// are packed once for all the step's passes. While the device runs a pass, `staging` prepares
/// the next one's batch — the step's next pass, or after its last, the first pass of `next`
/// (the following optimizer step's first micro-batch, when known).
#[cfg(feature = "cuda")]
fn fused_step_grads(
    (fused, staging): (&crate::gpu::FusedTrainer, &mut PinnedStaging),
    sampler: &LearnedSampler,
    ds: &Dataset,
    (micro, next): (&[Vec<usize>], Option<&[usize]>),
    gamma: f64,
    denom: usize,
    device: &Device,
) -> Result<(f64, f64, BTreeMap<String, Tensor>)> {
    let packed = fused.pack(&sampler.named_parameters())?;
    let pass = (FUSED_PASS_TOKENS / ds.vocab().max(1)).max(1);
    let parts: Vec<&[usize]> = micro.iter().flat_map(|rows| rows.chunks(pass)).collect();
    let mut acc = BTreeMap::new();
    let (mut kl, mut pen) = (0f64, 0f64);
    for (j, part) in parts.iter().enumerate() {
        let following = parts
            .get(j + 1)
            .copied()
            .or_else(|| next.map(|rows| &rows[..rows.len().min(pass)]));
        let (raw, tgt) = staging.take(ds, part, device)?;
        let step = staging.while_staging(ds, following, device, || {
            fused.step_packed(&packed, &raw, &tgt, gamma, 1.0 / denom as f64)
        })?;
        kl += step.kl;
        pen += step.penalty;
        add_grads(&mut acc, step.grads)?;
    }
    Ok((kl, pen, acc))
}

/// One AdamW update: as one fused CUDA kernel with the fused engine (`AdamW::step_fused`, the
/// same update), with candle ops otherwise.
#[cfg_attr(not(feature = "cuda"), allow(unused_variables))]
fn optimizer_step(
    opt: &mut AdamW,
    gradients: &Gradients,
    vars: &BTreeMap<String, Var>,
    grads: &BTreeMap<String, Tensor>,
    lr: f64,
) -> Result<()> {
    #[cfg(feature = "cuda")]
    if let Gradients::Fused(..) = gradients {
        return opt.step_fused(vars, grads, lr);
    }
    opt.step(vars, grads, lr)
}

const CSV_HEADER: &str =
    "kind,step,epoch,lr,loss,kl,truncated_mass,identity_kl,identity_truncated_mass,rows,elapsed_s";

/// Drops the rows of `metrics.csv` logged after `step` (a resumed run recomputes them), keeping
/// the header and every row of step ≤ `step`; written atomically (temporary file, then rename).
fn truncate_metrics(path: &Path, step: u64) -> Result<()> {
    let text = fs::read_to_string(path).map_err(|e| NetsError::io("cannot read", path, e))?;
    let mut kept = String::with_capacity(text.len());
    for (i, line) in text.lines().enumerate() {
        let row_step = line.split(',').nth(1).and_then(|s| s.parse::<u64>().ok());
        let keep = match row_step {
            Some(s) => s <= step,
            None if i == 0 => true,
            None => {
                return Err(NetsError::BadMetadata {
                    path: path.to_path_buf(),
                    reason: format!("line {}: cannot read the step of {line:?}", i + 1),
                })
            }
        };
        if keep {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    Ok(write_atomic(path, kept.as_bytes())?)
}

/// Trains a sampler of `config` on `dataset` into `out` (see the module doc). With `resume`, the
/// latest checkpoint under `out/checkpoints` is continued exactly (it must come from the same
/// config, data and batch settings); without one, training starts fresh. `data_id` identifies
/// the data (e.g. its hash) for that check.
#[allow(clippy::too_many_arguments)]
pub fn train(
    dataset: &Dataset,
    data_id: &str,
    config: &SamplerConfig,
    cfg: &TrainConfig,
    device: &Device,
    out: &Path,
    resume: bool,
    observer: &mut dyn TrainObserver,
) -> Result<TrainReport> {
    cfg.validate()?;
    config.validate()?;
    let loss = TruncatedLogitsLoss::new(cfg.gamma)?;
    let (mut gradients, engine_line) = Gradients::resolve(cfg.engine, config, device, cfg.threads)?;
    let ck_root = out.join("checkpoints");
    fs::create_dir_all(&ck_root).map_err(|e| NetsError::io("cannot create", &ck_root, e))?;
    let (mut train_rows, eval_rows) = dataset.split(cfg.eval_fraction, cfg.seed)?;
    if let Some(m) = cfg.max_train_rows {
        train_rows.truncate(m);
    }
    if train_rows.is_empty() {
        return Err(NetsError::NoData {
            what: "training rows".into(),
        });
    }
    let b = cfg.token_batch.min(train_rows.len());
    let bpe = batches_per_epoch(train_rows.len(), b);
    let total_steps = cfg.epochs * bpe / cfg.grad_accum as u64;
    if total_steps == 0 {
        return Err(NetsError::bad_request(
            "grad_accum",
            cfg.grad_accum,
            format!(
                "{bpe} micro-batches per epoch × {} epochs make less than one optimizer step",
                cfg.epochs
            ),
        ));
    }
    let fingerprint = cfg.fingerprint(dataset, data_id);
    let schedule = Schedule {
        kind: cfg.schedule,
        base_lr: cfg.lr,
        min_lr: cfg.min_lr,
        warmup_steps: cfg.warmup_steps,
        total_steps,
    };

    let varmap = VarMap::new();
    let latest = if resume {
        latest_checkpoint(out)?
    } else {
        None
    };
    let (model, mut opt, mut state, schedule) = match &latest {
        Some((_, dir)) => {
            let ck = checkpoint::load_expecting(dir, config, DType::F32, device)?;
            let (state, moments) = ck.training.ok_or_else(|| NetsError::Resume {
                dir: dir.clone(),
                reason: "the checkpoint has no training state".into(),
            })?;
            for (k, v) in &fingerprint {
                if state.extra.get(k) != Some(v) {
                    return Err(NetsError::Resume {
                        dir: dir.clone(),
                        reason: format!(
                            "`{k}` was {} there, {v} now",
                            state
                                .extra
                                .get(k)
                                .map_or("absent".to_string(), |x| x.to_string())
                        ),
                    });
                }
            }
            let sampler = LearnedSampler::trainable_from(
                config,
                ck.sampler.named_parameters(),
                &varmap,
                DType::F32,
                device,
            )?;
            let opt = AdamW::from_saved(state.optimizer.clone(), moments);
            let schedule = Schedule::from_state(&state.schedule)?;
            observer.message(&format!(
                "resuming from {} (step {})",
                dir.display(),
                state.step
            ));
            (Model::new(sampler, &varmap)?, opt, state, schedule)
        }
        None => {
            if resume {
                observer.message("no checkpoint to resume from: starting fresh");
            }
            let sampler = LearnedSampler::init(config, &varmap, cfg.seed, DType::F32, device)?;
            let opt = AdamW::new(AdamWState {
                weight_decay: cfg.weight_decay,
                ..AdamWState::default()
            });
            let state = TrainingState {
                seed: cfg.seed,
                schedule: schedule.state(0, 0.0),
                extra: fingerprint.clone(),
                ..TrainingState::default()
            };
            (Model::new(sampler, &varmap)?, opt, state, schedule)
        }
    };
    let resumed_from = state.step;

    let csv_path = out.join("metrics.csv");
    let fresh_csv = latest.is_none() || !csv_path.exists();
    if !fresh_csv {
        // Rows logged after the checkpoint we resume from are about to be recomputed.
        truncate_metrics(&csv_path, state.step)?;
    }
    let mut csv = if fresh_csv {
        let mut f = fs::File::create(&csv_path)
            .map_err(|e| NetsError::io("cannot create", &csv_path, e))?;
        writeln!(f, "{CSV_HEADER}").map_err(|e| NetsError::io("cannot write", &csv_path, e))?;
        f
    } else {
        fs::OpenOptions::new()
            .append(true)
            .open(&csv_path)
            .map_err(|e| NetsError::io("cannot open", &csv_path, e))?
    };
    let t0 = Instant::now();
    let mut write_csv = |line: String| -> Result<()> {
        writeln!(csv, "{line},{:.3}", t0.elapsed().as_secs_f64())
            .and_then(|_| csv.flush())
            .map_err(|e| NetsError::io("cannot write", &csv_path, e))
    };

    let stop_at = cfg.stop_after.unwrap_or(total_steps).min(total_steps);
    observer.start(state.step, total_steps);
    observer.message(&engine_line);
    observer.message(&format!(
        "{} training rows, {} held-out rows, B {b}, A {}, {bpe} micro-batches/epoch, {total_steps} steps",
        train_rows.len(),
        eval_rows.len(),
        cfg.grad_accum
    ));

    let (mut order, mut rng_state) = epoch_order(&train_rows, cfg.seed, state.epoch);
    let mut train_time = 0f64;
    let mut rows_done = 0usize;
    let mut last_step = None;
    let mut last_eval = None;
    let save = |state: &TrainingState, opt: &AdamW, dir: &Path| -> Result<()> {
        let mut st = state.clone();
        st.optimizer = opt.state().clone();
        checkpoint::save(dir, &model.sampler, Some((&st, opt.moments())))
    };
    let eval_now = |step: u64| -> Result<Option<EvalMetrics>> {
        if eval_rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(match cfg.engine {
            Engine::Fast => evaluate_fast(&model.sampler, dataset, &eval_rows, cfg.threads, step)?,
            Engine::Candle | Engine::Fused => {
                evaluate(&model.sampler, dataset, &eval_rows, b, cfg.threads, step)?
            }
        }))
    };

    let pass = rows_per_pass(dataset.vocab(), device);
    while state.step < stop_at {
        let ts = Instant::now();
        let mut micro: Vec<Vec<usize>> = Vec::with_capacity(cfg.grad_accum);
        for _ in 0..cfg.grad_accum {
            if state.batch_in_epoch >= bpe {
                state.epoch += 1;
                state.batch_in_epoch = 0;
                (order, rng_state) = epoch_order(&train_rows, cfg.seed, state.epoch);
            }
            let rows = batch_rows(&order, state.batch_in_epoch, b).to_vec();
            state.batch_in_epoch += 1;
            micro.push(rows);
        }
        let denom: usize = micro.iter().map(|m| m.len()).sum();
        let n_rows = denom;
        // The following step's first micro-batch when it is in this epoch's order (the fused
        // engine stages it while the device runs this step).
        #[cfg_attr(not(feature = "cuda"), allow(unused_variables))]
        let next_rows = |state: &TrainingState, another: bool| -> Option<&[usize]> {
            (another && state.batch_in_epoch < bpe)
                .then(|| batch_rows(&order, state.batch_in_epoch, b))
        };
        let (kl_sum, pen_sum, acc) = match &mut gradients {
            Gradients::Fast(fast) => fast_step_grads(
                fast,
                &model.sampler,
                dataset,
                &micro,
                cfg.gamma,
                denom,
                device,
            )?,
            #[cfg(feature = "cuda")]
            Gradients::Fused(fused) => fused_step_grads(
                (&fused.0, &mut fused.1),
                &model.sampler,
                dataset,
                (&micro, next_rows(&state, state.step + 1 < stop_at)),
                cfg.gamma,
                denom,
                device,
            )?,
            Gradients::Candle => {
                let mut acc = BTreeMap::new();
                let (mut kl_sum, mut pen_sum) = (0f64, 0f64);
                for rows in &micro {
                    let parts = par_chunks(rows.len(), cfg.threads, |r| {
                        let mut sums = (0f64, 0f64, BTreeMap::new());
                        for part in rows[r].chunks(pass) {
                            let (kl, pen, g) =
                                model.grads(dataset, part, &loss, denom as f64, device)?;
                            sums.0 += kl;
                            sums.1 += pen;
                            add_grads(&mut sums.2, g)?;
                        }
                        Ok(sums)
                    })?;
                    for (kl, pen, g) in parts {
                        kl_sum += kl;
                        pen_sum += pen;
                        add_grads(&mut acc, g)?;
                    }
                }
                (kl_sum, pen_sum, acc)
            }
        };
        let lr = schedule.lr(state.step);
        optimizer_step(&mut opt, &gradients, &model.vars, &acc, lr)?;
        state.step += 1;
        state.rows_seen += n_rows as u64;
        state.schedule = schedule.state(state.step, lr);
        state.rng = Some(rng_state.clone());
        train_time += ts.elapsed().as_secs_f64();
        rows_done += n_rows;
        let kl = kl_sum / n_rows as f64;
        let pen = pen_sum / n_rows as f64;
        if !kl.is_finite() || !pen.is_finite() {
            return Err(NetsError::NonFiniteLoss {
                step: state.step,
                kl,
                penalty: pen,
            });
        }
        let m = StepMetrics {
            step: state.step,
            epoch: state.epoch,
            lr,
            loss: kl + cfg.gamma * pen,
            kl,
            truncated_mass: pen,
            rows: n_rows,
        };
        write_csv(format!(
            "train,{},{},{:e},{},{},{},,,{}",
            m.step, m.epoch, m.lr, m.loss, m.kl, m.truncated_mass, m.rows
        ))?;
        observer.step(&m);
        last_step = Some(m);
        let at_end = state.step == stop_at;
        if cfg.eval_every > 0 && state.step % cfg.eval_every == 0 && !at_end {
            if let Some(e) = eval_now(state.step)? {
                write_csv(format!(
                    "eval,{},{},,,{},{},{},{},{}",
                    e.step,
                    state.epoch,
                    e.kl,
                    e.truncated_mass,
                    e.identity_kl,
                    e.identity_truncated_mass,
                    e.rows
                ))?;
                observer.eval(&e);
            }
        }
        if (cfg.save_every > 0 && state.step % cfg.save_every == 0) || at_end {
            save(&state, &opt, &checkpoint_dir(out, state.step))?;
        }
    }
    if let Some(e) = eval_now(state.step)? {
        write_csv(format!(
            "eval,{},{},,,{},{},{},{},{}",
            e.step,
            state.epoch,
            e.kl,
            e.truncated_mass,
            e.identity_kl,
            e.identity_truncated_mass,
            e.rows
        ))?;
        observer.eval(&e);
        last_eval = Some(e);
    }
    let final_dir = if state.step >= total_steps {
        let d = out.join("final");
        save(&state, &opt, &d)?;
        d
    } else {
        checkpoint_dir(out, state.step)
    };
    let steps_run = state.step - resumed_from;
    let report = TrainReport {
        steps: state.step,
        total_steps,
        resumed_from,
        train_rows: train_rows.len(),
        eval_rows: eval_rows.len(),
        steps_per_s: steps_run as f64 / train_time.max(1e-9),
        rows_per_s: rows_done as f64 / train_time.max(1e-9),
        eval: last_eval,
        last_step,
        checkpoint: final_dir,
    };
    let p = out.join("report.json");
    let json = serde_json::to_string_pretty(&report).map_err(|e| NetsError::Serialize {
        what: "report.json".into(),
        reason: e.to_string(),
    })?;
    write_atomic(&p, json.as_bytes())?;
    Ok(report)
}
