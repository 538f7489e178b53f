//! Fast CPU training: forward + loss + backward of every learned sampler and
//! [`crate::TruncatedLogitsLoss`] in hand-written f32 code, with the parameter gradient in f64.
//!
//! [`FastGrad`] computes, for a batch of (raw logits row, target row) pairs, the sums of the
//! per-row KL and truncation penalty and the gradient of `scale · Σ_rows (KL + γ·penalty)` with
//! respect to every parameter (candle layout, [`crate::sampler`]'s names) — the same quantity the
//! candle engine obtains by autograd, without candle:
//!
//! - per row, the masked (`-inf`) input tokens are dropped as in [`super::FastSampler`]; the
//!   forward runs over the kept tokens in tiles, keeping what the backward needs (the
//!   SimpleDistributionAwareTransform's gate|up pre-activations, the SamplingNetwork's block
//!   inputs and attention sums); tile activations are recomputed in the backward otherwise;
//! - the loss needs the whole output row (`log_softmax` over the vocabulary), so the backward is
//!   a second pass; the networks' own vocabulary-wide reductions (the pooled mean, the linear
//!   attention's sums) get a further pass each in the backward, as the chain rule requires;
//! - weight gradients are `Xᵀ·dY` products per tile (`kernels::gemm_tn_acc`) summed in
//!   f32 over a few tiles, then in f64; input gradients of a layer are products with the
//!   transposed packed weights;
//! - in [`FastGrad::batch`], tokens whose logits are equal exact f16 values (rows of the f16
//!   replay cache) run as one unit weighted by their count (see `RowBufs`): the same gradient
//!   up to summation order, typically 4–6× fewer tokens at V = 49,152;
//! - rows run data-parallel on a rayon pool, `threads` contiguous chunks; each row's gradient
//!   goes to its own f64 buffer, and the buffers are summed in row order, so the result is the
//!   same bit for bit whatever the thread count. Buffers are allocated once per batch size and
//!   vocabulary, never per row.
//!
//! The statistics `[max lp, H]` of the SimpleDistributionAwareTransform carry no gradient (SPEC
//! §2), nor does `lp` itself during training; [`FastGrad::row`] can still report the gradient
//! with respect to each kept token's `lp` (the networks' per-token input), for checks.

mod layout;
mod local;
mod loss;
mod sampling;
mod simple;

use adasamp_sampling::math;
use adasamp_sampling::row::checked_max;
use candle_core::Tensor;
use rayon::prelude::*;

use super::kernels::{pad8, AlignedBuf, Packed, LANES};
use crate::config::SamplerConfig;
use crate::error::{NetsError, Result};
pub use layout::ParamLayout;
use wide::f32x8;

/// Tiles between two flushes of the f32 per-tile gradient sums into the f64 row totals.
const FLUSH_TILES: usize = 8;

/// A target row: the pipeline's output logits, `-inf` at tokens it removed.
#[derive(Clone, Copy, Debug)]
pub enum TargetRow<'a> {
    /// Every token's target logit (length V).
    Dense(&'a [f32]),
    /// Only the kept tokens: ascending ids and their (finite) logits; all others are `-inf`.
    Sparse {
        /// Kept token ids, strictly ascending, each `< V`.
        ids: &'a [u32],
        /// Their target logits.
        logits: &'a [f32],
    },
}

/// A batch of rows for [`FastGrad::batch`]: raw logits rows (written into a buffer on demand, so
/// stored rows may be f16) and their targets.
pub trait GradRows: Sync {
    /// Number of rows.
    fn len(&self) -> usize;
    /// Whether there are no rows.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Vocabulary size V (length of every row).
    fn vocab(&self) -> usize;
    /// Writes raw logits row `i` into `out` (length V).
    fn logits(&self, i: usize, out: &mut [f32]);
    /// The target of row `i`.
    fn target(&self, i: usize) -> TargetRow<'_>;
}

/// Rows held in memory: `[len, vocab]` row-major logits and one target per row.
#[derive(Clone, Copy, Debug)]
pub struct SliceRows<'a> {
    vocab: usize,
    logits: &'a [f32],
    targets: &'a [TargetRow<'a>],
}

impl<'a> SliceRows<'a> {
    /// `targets.len()` rows of `vocab` logits each in `logits`; errors on a length mismatch.
    pub fn new(vocab: usize, logits: &'a [f32], targets: &'a [TargetRow<'a>]) -> Result<Self> {
        if vocab == 0 || logits.len() != targets.len() * vocab {
            return Err(NetsError::shape(
                "logits batch",
                format!("{} rows (one per target) × V {vocab}", targets.len()),
                format!("{} values", logits.len()),
            ));
        }
        Ok(Self {
            vocab,
            logits,
            targets,
        })
    }
}

impl GradRows for SliceRows<'_> {
    fn len(&self) -> usize {
        self.targets.len()
    }
    fn vocab(&self) -> usize {
        self.vocab
    }
    fn logits(&self, i: usize, out: &mut [f32]) {
        out.copy_from_slice(&self.logits[i * self.vocab..(i + 1) * self.vocab]);
    }
    fn target(&self, i: usize) -> TargetRow<'_> {
        self.targets[i]
    }
}

/// The loss terms of one row (unscaled).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RowLoss {
    /// `KL(target ‖ pred)` (`+inf` when the prediction excludes a token the target keeps).
    pub kl: f64,
    /// Predicted mass on the target's removed tokens.
    pub penalty: f64,
}

/// What [`FastGrad::batch`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchGrad {
    /// `Σ_rows KL`.
    pub kl: f64,
    /// `Σ_rows penalty`.
    pub penalty: f64,
    /// `scale · Σ_rows ∂(KL + γ·penalty)/∂θ`, flat in [`ParamLayout`] order.
    pub grad: Vec<f64>,
}

/// Buffers every architecture's row pass uses.
///
/// The networks run over *units*: the kept tokens, or — when the row's logits are all exact f16
/// values (rows from the default f16 replay cache) and grouping is on — the distinct logit
/// values among them. Tokens with the same logit have the same `lp`, so every per-token layer
/// gives them the same activations: a unit stands for its tokens, with their count as weight in
/// the vocabulary-wide sums, and the backward takes the sum of their output gradients (every
/// step is linear in them). Exact up to summation order; a 49,152-token row of f16 logits holds
/// typically a few thousand distinct values.
#[derive(Debug, Default)]
struct RowBufs {
    /// The raw row (first `vocab` entries).
    z: AlignedBuf,
    vocab: usize,
    /// Kept (finite) tokens of the row.
    kept: usize,
    /// Ids of the kept tokens when some are masked; empty when all are kept.
    ids: Vec<u32>,
    /// Per unit: `lp`, the number of tokens it stands for, outputs, their loss gradient and the
    /// gradient with respect to `lp`.
    lp: AlignedBuf,
    weight: AlignedBuf,
    out: AlignedBuf,
    dout: AlignedBuf,
    dlp: AlignedBuf,
    /// Kept token → unit, when units are groups (empty when they are the tokens).
    unit_of: Vec<u32>,
    /// Per kept token, when units are groups: outputs and their loss gradient.
    tout: AlignedBuf,
    tdout: AlignedBuf,
    unit_sums: Vec<f64>,
    /// The target gathered onto the kept tokens.
    target: AlignedBuf,
    /// f16 bit pattern → unit (`u32::MAX`: none yet), and the patterns set in this row.
    table: Vec<u32>,
    touched: Vec<u16>,
}

impl RowBufs {
    /// The raw-row buffer for a row of `vocab` logits.
    fn raw(&mut self, vocab: usize) -> &mut [f32] {
        self.z.grow(vocab);
        self.vocab = vocab;
        &mut self.z[..vocab]
    }

    /// Validates the raw row (row `index` in errors) and builds the units (see the type's doc;
    /// groups only with `group`); returns `(units, lse)` with `lse = log Σ exp(z − max z)` over
    /// the row, so `max lp = −lse`.
    fn prepare(&mut self, index: usize, group: bool) -> Result<(usize, f32)> {
        let z = &self.z[..self.vocab];
        let m = checked_max(z, index).map_err(|e| NetsError::logits("input logits", e))?;
        let lse = math::sum_exp(z, m).ln() as f32;
        let kept = math::count_finite(z);
        self.kept = kept;
        self.ids.clear();
        if kept < z.len() {
            self.ids
                .extend((0..z.len() as u32).filter(|&i| z[i as usize] > f32::NEG_INFINITY));
        }
        let units = if group && z.iter().all(|&x| x == f32::NEG_INFINITY || is_f16(x)) {
            self.group(m, lse)
        } else {
            self.unit_of.clear();
            self.lp.grow(kept);
            self.weight.grow(kept);
            self.weight[..kept].fill(1.0);
            let z = &self.z[..self.vocab];
            if self.ids.is_empty() {
                for (l, &x) in self.lp.iter_mut().zip(z) {
                    *l = (x - m) - lse;
                }
            } else {
                for (l, &i) in self.lp.iter_mut().zip(&self.ids) {
                    *l = (z[i as usize] - m) - lse;
                }
            }
            kept
        };
        self.out.grow(units);
        self.dout.grow(units);
        self.dlp.grow(units);
        Ok((units, lse))
    }

    /// Units = distinct f16 logits among the kept tokens, in order of first appearance.
    fn group(&mut self, m: f32, lse: f32) -> usize {
        if self.table.len() != 1 << 16 {
            self.table = vec![u32::MAX; 1 << 16];
        }
        for &k in &self.touched {
            self.table[k as usize] = u32::MAX;
        }
        self.touched.clear();
        self.unit_of.clear();
        self.lp.grow(self.kept);
        self.weight.grow(self.kept);
        let z = &self.z[..self.vocab];
        let mut units = 0;
        let mut add = |x: f32| {
            let key = half::f16::from_f32(x).to_bits();
            let u = self.table[key as usize];
            if u == u32::MAX {
                self.table[key as usize] = units as u32;
                self.touched.push(key);
                self.lp[units] = (x - m) - lse;
                self.weight[units] = 1.0;
                self.unit_of.push(units as u32);
                units += 1;
            } else {
                self.weight[u as usize] += 1.0;
                self.unit_of.push(u);
            }
        };
        if self.ids.is_empty() {
            z.iter().for_each(|&x| add(x));
        } else {
            self.ids.iter().for_each(|&i| add(z[i as usize]));
        }
        self.tout.grow(self.kept);
        self.tdout.grow(self.kept);
        units
    }

    /// The vocabulary id of kept token `j`.
    fn id(&self, j: usize) -> usize {
        if self.ids.is_empty() {
            j
        } else {
            self.ids[j] as usize
        }
    }
}

/// Whether `x` is exactly an f16 value.
#[inline]
fn is_f16(x: f32) -> bool {
    half::f16::from_f32(x).to_f32() == x
}

/// `f32` sums of a few tiles, flushed into `f64` totals (gradients of one row).
#[derive(Debug, Default)]
struct Acc {
    v32: Vec<f32>,
    v64: Vec<f64>,
}

impl Acc {
    /// Zeroes both to `len` entries (no allocation once grown).
    fn reset(&mut self, len: usize) {
        self.v32.clear();
        self.v32.resize(len, 0.0);
        self.v64.clear();
        self.v64.resize(len, 0.0);
    }

    /// Adds the f32 sums into the f64 totals and zeroes them.
    fn flush(&mut self) {
        for (a, b) in self.v64.iter_mut().zip(self.v32.iter_mut()) {
            *a += *b as f64;
            *b = 0.0;
        }
    }
}

/// `a += Σ_t x[t]·y[t]` helper: lane-wise f32 dot product (vectorisable), tail added last.
#[inline]
fn dot(x: &[f32], y: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (xc, yc) = (x.chunks_exact(8), y.chunks_exact(8));
    let tail: f32 = xc
        .remainder()
        .iter()
        .zip(yc.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (a, b) in xc.zip(yc) {
        for k in 0..8 {
            acc[k] = a[k].mul_add(b[k], acc[k]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `Σ x` lane-wise in f32 (vectorisable), tail added last.
#[inline]
fn sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let xc = x.chunks_exact(8);
    let tail: f32 = xc.remainder().iter().sum();
    for a in xc {
        for k in 0..8 {
            acc[k] += a[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `σ(x) = 1 / (1 + e⁻ˣ)` (f32, branch-free; saturates cleanly for large |x|).
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + math::exp(-x))
}

/// [`sigmoid`] on 8 lanes (bit-identical lanes).
#[inline(always)]
fn sigmoid8(x: f32x8) -> f32x8 {
    f32x8::ONE / (f32x8::ONE + math::exp8(-x))
}

/// `silu(x) = x / (1 + e⁻ˣ)` on 8 lanes (bit-identical to [`super::kernels::silu`] per lane).
#[inline(always)]
fn silu8(x: f32x8) -> f32x8 {
    x / (f32x8::ONE + math::exp8(-x))
}

/// `silu'(g) = σ(g)·(1 + g·(1 − σ(g)))` from `g` and `σ(g)`, on 8 lanes.
#[inline(always)]
fn dsilu8(g: f32x8, sg: f32x8) -> f32x8 {
    sg * g.mul_add(f32x8::ONE - sg, f32x8::ONE)
}

/// The 8 lanes of `s` starting at `i`.
#[inline(always)]
fn vload(s: &[f32], i: usize) -> f32x8 {
    let mut a = [0.0f32; LANES];
    a.copy_from_slice(&s[i..i + LANES]);
    f32x8::from(a)
}

/// Writes 8 lanes into `s` at `i`.
#[inline(always)]
fn vstore(s: &mut [f32], i: usize, v: f32x8) {
    s[i..i + LANES].copy_from_slice(&v.to_array());
}

/// Where one candle Linear (`weight [out, in_total]`, optional `bias [out]`) lives in a packed
/// matrix: its input columns `in_start .. in_start + k` are the packed rows, its outputs the
/// packed columns `col0 .. col0 + out`.
#[derive(Clone, Copy, Debug)]
struct Part {
    col0: usize,
    out: usize,
    in_total: usize,
    in_start: usize,
    w_off: usize,
    b_off: Option<usize>,
}

/// A per-token linear layer for training: the packed forward weights `[k, n_pad]`, their
/// transpose `[n_pad, pad8(k)]` (for input gradients) and the map back to the parameters.
#[derive(Debug)]
struct Layer {
    fwd: Packed,
    bwd: Packed,
    parts: Vec<Part>,
}

impl Layer {
    /// Packs `parts` of the flat parameters `flat` into a `[k, n_pad]` matrix.
    fn new(flat: &[f32], k: usize, n_pad: usize, parts: Vec<Part>) -> Self {
        let mut fwd = Packed::zeros(k, n_pad);
        for p in &parts {
            let w = &flat[p.w_off..p.w_off + p.out * p.in_total];
            let b = p.b_off.map(|o| &flat[o..o + p.out]);
            fwd.put(p.col0, w, p.out, p.in_total, p.in_start, b);
        }
        let kp = pad8(k);
        let mut bwd = Packed::zeros(n_pad, kp);
        for i in 0..k {
            for c in 0..n_pad {
                bwd.w[c * kp + i] = fwd.w[i * n_pad + c];
            }
        }
        Self { fwd, bwd, parts }
    }

    /// Adds the packed-layout gradients (`gw` `[k, n_pad]`, `gb` `[n_pad]`) to the flat gradient.
    fn scatter(&self, gw: &[f64], gb: &[f64], grad: &mut [f64]) {
        let (k, n) = (self.fwd.k, self.fwd.n_pad);
        for p in &self.parts {
            for o in 0..p.out {
                let dst = p.w_off + o * p.in_total + p.in_start;
                for i in 0..k {
                    grad[dst + i] += gw[i * n + p.col0 + o];
                }
                if let Some(b) = p.b_off {
                    grad[b + o] += gb[p.col0 + o];
                }
            }
        }
    }
}

/// The weight and bias gradient sums of one [`Layer`].
#[derive(Debug, Default)]
struct LayerAcc {
    w: Acc,
    b: Acc,
}

impl LayerAcc {
    fn reset(&mut self, layer: &Layer) {
        self.w.reset(layer.fwd.k * layer.fwd.n_pad);
        self.b.reset(layer.fwd.n_pad);
    }

    /// Accumulates `xᵀ·dy` and `Σ_t dy` of one tile (`x` row stride `ldx`, `dy` row stride `ldy`).
    fn add(&mut self, layer: &Layer, x: &[f32], ldx: usize, dy: &[f32], ldy: usize, rows: usize) {
        let (k, n) = (layer.fwd.k, layer.fwd.n_pad);
        super::kernels::gemm_tn_acc(x, ldx, k, dy, ldy, n, rows, &mut self.w.v32, n);
        for row in dy.chunks(ldy).take(rows) {
            for (a, &v) in self.b.v32.iter_mut().zip(&row[..n]) {
                *a += v;
            }
        }
    }

    fn flush(&mut self) {
        self.w.flush();
        self.b.flush();
    }

    fn scatter(&mut self, layer: &Layer, grad: &mut [f64]) {
        self.flush();
        layer.scatter(&self.w.v64, &self.b.v64, grad);
    }
}

/// The network with the current weights, laid out for the training passes.
#[derive(Debug)]
enum Net {
    Local(local::Net),
    Simple(simple::Net),
    Sampling(Box<sampling::Net>),
}

/// Per-thread buffers of the training passes.
#[derive(Debug)]
enum Workspace {
    Local(Box<local::Workspace>),
    Simple(Box<simple::Workspace>),
    Sampling(Box<sampling::Workspace>),
}

impl Workspace {
    fn for_config(config: &SamplerConfig) -> Self {
        match config {
            SamplerConfig::LocalProbabilityTransform(_) => Workspace::Local(Box::default()),
            SamplerConfig::SimpleDistributionAwareTransform(_) => Workspace::Simple(Box::default()),
            SamplerConfig::SamplingNetwork(_) => Workspace::Sampling(Box::default()),
        }
    }

    fn rows(&mut self) -> &mut RowBufs {
        match self {
            Workspace::Local(w) => &mut w.rows,
            Workspace::Simple(w) => &mut w.rows,
            Workspace::Sampling(w) => &mut w.rows,
        }
    }
}

impl Net {
    fn new(config: &SamplerConfig, layout: &ParamLayout, flat: &[f32]) -> Result<Self> {
        Ok(match config {
            SamplerConfig::LocalProbabilityTransform(c) => {
                Net::Local(local::Net::new(c, layout, flat)?)
            }
            SamplerConfig::SimpleDistributionAwareTransform(c) => {
                Net::Simple(simple::Net::new(c, layout, flat)?)
            }
            SamplerConfig::SamplingNetwork(c) => {
                Net::Sampling(Box::new(sampling::Net::new(c, layout, flat)?))
            }
        })
    }

    /// Forward of the `n` kept tokens of `ws.rows.lp` (row `lse` given) into `ws.rows.out`.
    fn forward(&self, ws: &mut Workspace, n: usize, lse: f32) {
        match (self, ws) {
            (Net::Local(net), Workspace::Local(ws)) => net.forward(ws, n),
            (Net::Simple(net), Workspace::Simple(ws)) => net.forward(ws, n, lse),
            (Net::Sampling(net), Workspace::Sampling(ws)) => net.forward(ws, n),
            _ => unreachable!("workspaces are built for the network's configuration"),
        }
    }

    /// Backward from `ws.rows.dout` (the loss gradient of the outputs): adds the parameter
    /// gradient to `grad` and writes `∂/∂lp` of the kept tokens to `ws.rows.dlp`.
    fn backward(&self, ws: &mut Workspace, n: usize, grad: &mut [f64]) {
        match (self, ws) {
            (Net::Local(net), Workspace::Local(ws)) => net.backward(ws, n, grad),
            (Net::Simple(net), Workspace::Simple(ws)) => net.backward(ws, n, grad),
            (Net::Sampling(net), Workspace::Sampling(ws)) => net.backward(ws, n, grad),
            _ => unreachable!("workspaces are built for the network's configuration"),
        }
    }
}

/// One row: validate and prepare, forward, loss, backward. `ws.rows().z` holds the raw row;
/// `group` lets tokens with equal f16 logits share one unit ([`RowBufs`]). The parameter
/// gradient of `KL + γ·penalty` is added to `grad`; a row whose KL is infinite (its prediction
/// excludes a token the target keeps) contributes no gradient.
fn run_row(
    net: &Net,
    ws: &mut Workspace,
    target: TargetRow<'_>,
    gamma: f32,
    index: usize,
    group: bool,
    grad: &mut [f64],
) -> Result<RowLoss> {
    let rows = ws.rows();
    let (n, lse) = rows.prepare(index, group)?;
    net.forward(ws, n, lse);
    let rows = ws.rows();
    let loss = loss::row(rows, target, gamma, index)?;
    if loss.kl.is_finite() {
        net.backward(ws, n, grad);
    }
    Ok(loss)
}

/// Fast forward + backward of one sampler configuration (see the module doc).
#[derive(Debug)]
pub struct FastGrad {
    config: SamplerConfig,
    layout: ParamLayout,
    net: Option<Net>,
    flat: Vec<f32>,
    workspaces: Vec<Workspace>,
    row_grads: Vec<Vec<f64>>,
    row_losses: Vec<RowLoss>,
    pool: rayon::ThreadPool,
}

impl FastGrad {
    /// A gradient engine for `config` running batches on `threads` threads (≥ 1).
    pub fn new(config: &SamplerConfig, threads: usize) -> Result<Self> {
        config.validate()?;
        if threads == 0 {
            return Err(NetsError::config("threads", 0, "must be ≥ 1"));
        }
        let layout = ParamLayout::new(config)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("adasamp-train-{i}"))
            .build()
            .map_err(|e| NetsError::config("threads", threads, e.to_string()))?;
        Ok(Self {
            config: config.clone(),
            flat: vec![0.0; layout.len()],
            layout,
            net: None,
            workspaces: (0..threads)
                .map(|_| Workspace::for_config(config))
                .collect(),
            row_grads: Vec::new(),
            row_losses: Vec::new(),
            pool,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SamplerConfig {
        &self.config
    }

    /// Where each parameter lives in the flat gradient.
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    /// Threads of the batch pool.
    pub fn threads(&self) -> usize {
        self.workspaces.len()
    }

    /// Loads the current weights (every parameter of the configuration, by name, any float
    /// dtype and device).
    pub fn set_parameters(&mut self, params: &[(String, Tensor)]) -> Result<()> {
        self.layout.flatten(&self.config, params, &mut self.flat)?;
        self.net = Some(Net::new(&self.config, &self.layout, &self.flat)?);
        Ok(())
    }

    /// One row on the calling thread, token by token (no grouping of equal logits): returns its
    /// loss terms and adds the gradient of `scale·(KL + γ·penalty)` to `grad` (length
    /// [`ParamLayout::len`]). With `dlp`
    /// (length V), writes `∂(scale·(KL + γ·penalty))/∂lp` per token (0 at masked tokens), the
    /// networks' input gradient with the per-row statistics held fixed.
    pub fn row(
        &mut self,
        logits: &[f32],
        target: TargetRow<'_>,
        gamma: f64,
        scale: f64,
        grad: &mut [f64],
        dlp: Option<&mut [f32]>,
    ) -> Result<RowLoss> {
        check_gamma(gamma)?;
        self.check_grad_len(grad.len())?;
        if let Some(out) = &dlp {
            if out.len() != logits.len() {
                return Err(NetsError::shape(
                    "input gradient buffer",
                    format!("{} entries (the row's)", logits.len()),
                    out.len().to_string(),
                ));
            }
        }
        let net = self.net.as_ref().ok_or_else(unset)?;
        let ws = &mut self.workspaces[0];
        ws.rows().raw(logits.len()).copy_from_slice(logits);
        let mut g = vec![0.0f64; grad.len()];
        let loss = run_row(net, ws, target, gamma as f32, 0, false, &mut g)?;
        if !loss.kl.is_finite() {
            return Ok(loss);
        }
        for (a, b) in grad.iter_mut().zip(&g) {
            *a += scale * b;
        }
        if let Some(out) = dlp {
            let rows = ws.rows();
            out.fill(0.0);
            for j in 0..rows.kept {
                out[rows.id(j)] = (scale * rows.dlp[j] as f64) as f32;
            }
        }
        Ok(loss)
    }

    fn check_grad_len(&self, len: usize) -> Result<()> {
        if len != self.layout.len() {
            return Err(NetsError::shape(
                "gradient buffer",
                format!("{} entries (the parameter count)", self.layout.len()),
                len.to_string(),
            ));
        }
        Ok(())
    }

    /// The whole batch on the pool: `Σ KL`, `Σ penalty` and `scale · Σ ∂(KL + γ·penalty)/∂θ`
    /// (row gradients summed in row order: the same bits for any thread count; equal f16
    /// logits of a row computed once, see [`RowBufs`]).
    pub fn batch(&mut self, rows: &dyn GradRows, gamma: f64, scale: f64) -> Result<BatchGrad> {
        check_gamma(gamma)?;
        let n = rows.len();
        let v = rows.vocab();
        if v == 0 {
            return Err(NetsError::shape(
                "logits batch",
                "a vocabulary of at least one token",
                "0",
            ));
        }
        let len = self.layout.len();
        if self.row_grads.len() < n {
            self.row_grads.resize_with(n, Vec::new);
        }
        self.row_losses.clear();
        self.row_losses.resize(
            n,
            RowLoss {
                kl: 0.0,
                penalty: 0.0,
            },
        );
        let net = self.net.as_ref().ok_or_else(unset)?;
        let threads = self.workspaces.len();
        let per = n.div_ceil(threads).max(1);
        let gamma = gamma as f32;
        let grads = &mut self.row_grads[..n];
        let losses = &mut self.row_losses[..];
        let workspaces = &mut self.workspaces;
        self.pool.install(|| {
            grads
                .par_chunks_mut(per)
                .zip(losses.par_chunks_mut(per))
                .zip(workspaces.par_iter_mut())
                .enumerate()
                .try_for_each(|(chunk, ((grads, losses), ws))| -> Result<()> {
                    for (k, (g, l)) in grads.iter_mut().zip(losses.iter_mut()).enumerate() {
                        let i = chunk * per + k;
                        g.clear();
                        g.resize(len, 0.0);
                        rows.logits(i, ws.rows().raw(v));
                        *l = run_row(net, ws, rows.target(i), gamma, i, true, g)?;
                    }
                    Ok(())
                })
        })?;
        let mut grad = vec![0.0f64; len];
        let (mut kl, mut penalty) = (0.0, 0.0);
        for (g, l) in self.row_grads[..n].iter().zip(&self.row_losses) {
            kl += l.kl;
            penalty += l.penalty;
            if l.kl.is_finite() {
                for (a, b) in grad.iter_mut().zip(g) {
                    *a += b;
                }
            }
        }
        for a in grad.iter_mut() {
            *a *= scale;
        }
        Ok(BatchGrad { kl, penalty, grad })
    }

    /// The flat gradient split per parameter: `(name, shape, values)` in layout order.
    pub fn named<'a>(
        &'a self,
        grad: &'a [f64],
    ) -> impl Iterator<Item = (&'a str, &'a [usize], &'a [f64])> + 'a {
        self.layout.split(grad)
    }
}

/// The error for gradients asked before any weights were loaded.
fn unset() -> NetsError {
    NetsError::bad_request(
        "fast training engine",
        "no weights",
        "set_parameters must load the weights before gradients are computed",
    )
}

fn check_gamma(gamma: f64) -> Result<()> {
    if !gamma.is_finite() || gamma < 0.0 {
        return Err(NetsError::config("gamma", gamma, "must be finite and ≥ 0"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_transpose_and_scatter_round_trip() {
        // Linear(3 → 5) with weight w[o, i] = 10·o + i, bias 100 + o.
        let mut flat: Vec<f32> = (0..5)
            .flat_map(|o| (0..3).map(move |i| (10 * o + i) as f32))
            .collect();
        flat.extend((0..5).map(|o| 100.0 + o as f32));
        let layer = Layer::new(
            &flat,
            3,
            8,
            vec![Part {
                col0: 0,
                out: 5,
                in_total: 3,
                in_start: 0,
                w_off: 0,
                b_off: Some(15),
            }],
        );
        for o in 0..5 {
            for i in 0..3 {
                assert_eq!(layer.fwd.w[i * 8 + o], (10 * o + i) as f32);
                assert_eq!(layer.bwd.w[o * 8 + i], (10 * o + i) as f32);
            }
        }
        let gw: Vec<f64> = (0..24).map(|x| x as f64).collect();
        let gb: Vec<f64> = (0..8).map(|x| 1000.0 + x as f64).collect();
        let mut grad = vec![0.0; 20];
        layer.scatter(&gw, &gb, &mut grad);
        assert_eq!(grad[1], gw[8]); // w[0, 1] ← packed [1, 0]
        assert_eq!(grad[3 + 2], gw[2 * 8 + 1]); // w[1, 2] ← packed [2, 1]
        assert_eq!(grad[15 + 4], 1004.0);
    }
}
