//! [`FusedTrainer`]: one training step of a SamplingNetwork — forward, [`crate::TruncatedLogitsLoss`]
//! and backward — as fused CUDA kernels (`fused_training.cu`), f32 storage with f32 arithmetic
//! and accumulation (the blocks' matrix products in split f16 on tensor cores, about
//! f32 accuracy), giving the loss sums and the gradient of every parameter; equal to candle's
//! autograd of [`crate::LearnedSampler::forward`] + [`crate::TruncatedLogitsLoss::per_row`] up to
//! rounding.
//!
//! A step over `N` rows of `V` tokens (`T = N·V` tokens in all):
//! - the output head, its backward with the loss gradient and the encoder's backward run one
//!   thread per token;
//! - the encoder and the blocks run on tensor cores over 16-token tiles: one launch for the
//!   encoder and one per block forward (each with the next block's attention sums or the pool),
//!   three per block backward (FFN and LayerNorms; the output projection and attention; the
//!   attention's key / value side and `dx`, which needs the block's vocabulary-wide `dS`,
//!   `ds`), each backward launch adding its Linear layers' weight and bias gradients `dY·Xᵀ`
//!   in-kernel (per-warp shared-memory sums, then one global add per thread block) — `4B + 9`
//!   launches in all with the per-row ones (row statistics ×2, loss, the per-row heads and their
//!   backward), [`FusedTrainer::launches`];
//! - the vocabulary-wide sums the network itself needs (attention sums, pool, their backward)
//!   are per-row atomics inside those kernels; the per-row heads (`mult`, `s`, `τ` and the
//!   transform's context part, a few thousand flops per row) and their backward are one kernel
//!   each (a thread block per row; the forward is the inference's `sn_head_ctx`), so nothing
//!   goes to the host inside a step but the number of units per row (below) and, at its end,
//!   the loss sums and the row checks;
//! - the parameters are packed into one device buffer by [`FusedTrainer::pack`] (one gather
//!   launch) once per optimizer step and reused by every pass ([`FusedTrainer::step_packed`]);
//! - the weight gradients of the transform's token part (gate and up, written straight into
//!   their weights' token columns) and of the encoder's down projection are `dY·Xᵀ` over the `T`
//!   tokens by cuBLAS (three GEMMs), on operands the kernels write channel-major (`[C][T]`), each
//!   input with a channel of ones whose column of the product is the bias gradient; the
//!   LayerNorm, encoder gate/up and transform down-projection gradients are in-kernel sums.
//!
//! The network runs over *units*, as [`crate::fast::FastGrad`] does: a row whose finite logits are
//! all exact f16 values (rows of the default f16 replay cache) is grouped into its distinct
//! values — tokens with the same logit have the same `lp`, so every per-token layer gives them
//! the same activations; a unit stands for its tokens with their count as its weight in the
//! vocabulary-wide sums, and its output gradient is the sum of its tokens' (the loss gradient of
//! each token from its own target, summed per unit; every backward step is linear in it). Exact
//! up to summation order (measured on an H100: the same distance from the f64 plain step as the
//! token-by-token run of the same rows, whatever the units' size). A 49,152-token f16 row holds a
//! few thousand to ~12,000 distinct values, so the per-token kernels run over 4–16× fewer
//! positions (a unit stands for at most [`DEFAULT_MAX_UNIT_WEIGHT`] tokens). Other rows, and
//! rows of fewer than [`MIN_GROUPED_VOCAB`] tokens (the per-row counters, 2¹⁶ of them, would
//! outweigh them), run token by token ([`FusedTrainer::with_grouping`] turns grouping off,
//! [`FusedTrainer::with_max_unit_weight`] caps the tokens per unit). Finding the units takes the
//! step's one mid-step wait for the device (their number sizes the buffers).
//!
//! Rows whose KL is infinite (the input masks a token the target keeps) contribute no gradient,
//! as in [`crate::fast::FastGrad`].

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use candle_core::backend::{BackendDevice, BackendStorage};
use candle_core::cuda_backend::cudarc::cublas::{sys::cublasOperation_t, Gemm, GemmConfig};
use candle_core::cuda_backend::cudarc::driver::sys::CUfunction_attribute;
use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaView, CudaViewMut, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::{CudaDevice, WrapErr};
use candle_core::op::BackpropOp;
use candle_core::{CudaStorage, DType, Device, Storage, Tensor};

use crate::arch::logits_dims;
use crate::config::{SamplerConfig, SamplingNetworkConfig};
use crate::error::{NetsError, Result};
use crate::gpu::adamw::address;
use crate::gpu::fused::{
    blocks_per_row, check_rows, fill, is_compiled, kernel_suffix, ordered_parameters,
    output_buffer, packing_order, MAX_ROWS, ROW_THREADS,
};
use crate::layers::SwiGlu;

/// PTX of `fused_training.cu`, compiled by the crate's build script.
const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/fused_training.ptx"));
/// Name the PTX module is cached under in candle's CUDA device.
const MODULE: &str = "adasamp_nets_fused_training";
/// Floats per row of the row-statistics and loss kernels (their `STATS`, `LOSS`).
const STATS: usize = 4;
const LOSS: usize = 4;
/// Threads per block of the per-token kernels (the kernels' `THREADS`).
const THREADS: u32 = 128;
/// Threads per block of the unit kernels (the kernels' `UNIT_THREADS`).
const UNIT_THREADS: u32 = 256;
/// Blocks per row of the unit kernels, each over a slice of the row (their `UNIT_SLICES`).
const UNIT_SLICES: u32 = 8;
/// Threads per block of the packing kernel.
const PACK_THREADS: u32 = 256;
/// f16 bit patterns: the per-row counters of the unit kernels (their `UNIT_KEYS`).
const UNIT_KEYS: usize = 1 << 16;
/// The most tokens a unit stands for unless [`FusedTrainer::with_max_unit_weight`] says
/// otherwise (the configuration measured on an H100; the distance from the f64 plain step was
/// the token-by-token run's at every cap tried, 1 to 16).
pub const DEFAULT_MAX_UNIT_WEIGHT: usize = 16;
/// Rows shorter than this run token by token (no grouping).
pub const MIN_GROUPED_VOCAB: usize = 4096;
/// Threads per block of the per-row head kernels (the kernels' `ROW_HEAD_THREADS`).
const ROW_HEAD_THREADS: u32 = 128;
/// Warps per block of the tensor-core block kernels (the kernels' `BW_WARPS`).
const BW_WARPS: usize = 8;

/// Launches CUDA kernel `$name` of the training module with launch configuration `$cfg` and the
/// given arguments (buffers as `&` / `&mut` CUDA slices, scalars as `&` values).
macro_rules! launch {
    ($self:expr, $name:expr, $cfg:expr; $($arg:expr),* $(,)?) => {{
        let func = $self.cuda.get_or_load_custom_func($name, MODULE, PTX)?;
        let mut b = func.builder();
        $( b.arg($arg); )*
        // SAFETY: the per-token kernels read and write their own token's channels of the
        // [C][N][V] buffers (sized by the step for N·V tokens) and add to per-row and
        // per-parameter sums with atomics; the per-row kernels read their row of V floats and
        // write their row's few outputs.
        unsafe { b.launch($cfg) }.w()?;
    }};
}

/// Launches tensor-core block kernel `$name` (dynamic shared memory `$smem` bytes,
/// [`BW_WARPS`] warps per block, thread blocks per row to fill the device) over `$rows` rows
/// of `$vocab` tokens.
macro_rules! launch_bw {
    ($self:expr, $name:expr, $smem:expr, $rows:expr, $vocab:expr; $($arg:expr),* $(,)?) => {{
        let func = $self.cuda.get_or_load_custom_func($name, MODULE, PTX)?;
        let smem = $smem as u32;
        func.set_attribute(
            CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
            smem as i32,
        )
        .w()?;
        let threads = (32 * BW_WARPS) as u32;
        let per_row = blocks_per_row(&$self.cuda, &func, $rows, $vocab, threads, smem)?;
        let cfg = LaunchConfig {
            grid_dim: (per_row, $rows as u32, 1),
            block_dim: (threads, 1, 1),
            shared_mem_bytes: smem,
        };
        let mut b = func.builder();
        $( b.arg($arg); )*
        // SAFETY: the kernels read and write the channels of their row's 16-token tiles in the
        // [C][N][V] buffers (sized by the step for N·V tokens), check that they were given the
        // shared memory they need, and add to per-row and per-parameter sums with atomics.
        unsafe { b.launch(cfg) }.w()?;
    }};
}

/// One block of [`ROW_THREADS`] per row.
fn row_cfg(rows: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows as u32, 1, 1),
        block_dim: (ROW_THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// [`UNIT_SLICES`] blocks of [`UNIT_THREADS`] per row (the unit kernels).
fn unit_cfg(rows: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows as u32, UNIT_SLICES, 1),
        block_dim: (UNIT_THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// One block of [`ROW_HEAD_THREADS`] per row (the per-row head kernels).
fn row_head_cfg(rows: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows as u32, 1, 1),
        block_dim: (ROW_HEAD_THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// One thread per token: `[V / THREADS, N]` blocks of [`THREADS`].
fn token_cfg(rows: usize, vocab: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: ((vocab as u32).div_ceil(THREADS), rows as u32, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// What one [`FusedTrainer::step`] returns.
#[derive(Clone, Debug)]
pub struct FusedStep {
    /// `Σ_rows KL` (`+inf` if a row's prediction excludes a token its target keeps).
    pub kl: f64,
    /// `Σ_rows penalty`.
    pub penalty: f64,
    /// `scale · Σ_rows ∂(KL + γ·penalty)/∂θ` by parameter name, f32 on the step's device.
    pub grads: BTreeMap<String, Tensor>,
    /// Wall time in seconds per phase of the step (name, seconds), in order of first use; empty
    /// unless [`FusedTrainer::with_phase_times`] is on.
    pub phases: Vec<(&'static str, f64)>,
    /// Positions the network ran over: `N · V'`, `V'` the most units of a row (`N · V` when no
    /// row was grouped).
    pub positions: usize,
}

/// The parameters of a [`FusedTrainer`]'s configuration packed once ([`FusedTrainer::pack`]):
/// one f32 buffer on the device in [`packing_order`], read by every
/// [`FusedTrainer::step_packed`] while the parameters do not change (all micro-batch passes of
/// an optimizer step).
pub struct PackedParameters {
    weights: CudaSlice<f32>,
    /// Names and shapes in packing order.
    shapes: Vec<(String, Vec<usize>)>,
}

impl std::fmt::Debug for PackedParameters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedParameters")
            .field("floats", &self.weights.len())
            .field("parameters", &self.shapes.len())
            .finish()
    }
}

/// Per-phase wall times of a step: with `on`, each [`Phases::mark`] synchronises the device and
/// adds the time since the previous mark to the named phase.
struct Phases {
    on: bool,
    last: Instant,
    times: Vec<(&'static str, f64)>,
}

impl Phases {
    fn new(on: bool) -> Self {
        Self {
            on,
            last: Instant::now(),
            times: Vec::new(),
        }
    }

    /// Ends the current phase, charging it to `name`.
    fn mark(&mut self, cuda: &CudaDevice, name: &'static str) -> Result<()> {
        if !self.on {
            return Ok(());
        }
        cuda.synchronize()?;
        let now = Instant::now();
        let secs = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        match self.times.iter_mut().find(|(n, _)| *n == name) {
            Some((_, t)) => *t += secs,
            None => self.times.push((name, secs)),
        }
        Ok(())
    }
}

/// The fused training step of one SamplingNetwork configuration on one CUDA device.
#[derive(Clone, Debug)]
pub struct FusedTrainer {
    config: SamplingNetworkConfig,
    /// Kernel name suffix `d{D}_h{H}_e{EH}_f{DFF}_s{0|1}`.
    suffix: String,
    cuda: CudaDevice,
    poison: bool,
    phase_times: bool,
    grouping: bool,
    max_unit_weight: usize,
}

/// Widths of one configuration.
#[derive(Clone, Copy, Debug)]
struct Dims {
    d: usize,
    blocks: usize,
    fe: usize,
    ff: usize,
    ft: usize,
    /// Hidden width of the per-row scale and truncation heads.
    fs: usize,
    hw: usize,
    scale: bool,
}

impl Dims {
    fn of(c: &SamplingNetworkConfig) -> Self {
        Self {
            d: c.d_model,
            blocks: c.n_blocks,
            fe: SwiGlu::hidden_width(c.encoder_hidden),
            ff: SwiGlu::hidden_width(c.d_ff),
            ft: SwiGlu::hidden_width(c.d_model),
            fs: SwiGlu::hidden_width(c.d_model / 2),
            hw: c.d_model / c.n_heads,
            scale: c.scale,
        }
    }
    /// Floats of the packed weights before the per-row part: the encoder and the blocks
    /// (common.cuh's `ENC_SIZE + B · BLOCK_SIZE`).
    fn head_offset(&self) -> usize {
        let (d, fe, ff) = (self.d, self.fe, self.ff);
        let encoder = 4 * fe + d * fe + d;
        let block = 4 * d * d + 4 * d + 2 * d + 2 * (ff * d + ff) + d * ff + d + 2 * d;
        encoder + self.blocks * block
    }
    /// Floats of the packed weights from the transform on (common.cuh's `HEAD_SIZE`): the
    /// transform SwiGLU(2D, D, 1), the scale head SwiGLU(D, D/2, 1) if any, the truncation head
    /// SwiGLU(D, D/2, 2).
    fn head_len(&self) -> usize {
        let (d, ft, fs) = (self.d, self.ft, self.fs);
        let transform = 2 * (ft * 2 * d + ft) + ft + 1;
        let scale = if self.scale {
            2 * (fs * d + fs) + fs + 1
        } else {
            0
        };
        transform + scale + 2 * (fs * d + fs) + 2 * fs + 2
    }
    /// Offset of the transform's up weight from the start of the head (`TU_W`).
    fn transform_up(&self) -> usize {
        self.ft * 2 * self.d + self.ft
    }
    /// Floats of one block's forward sums (`S`, `s`) or their backward (`dS`, `ds`).
    fn acc_block(&self) -> usize {
        self.d * self.hw + self.d
    }
    fn acc_row(&self) -> usize {
        self.blocks * self.acc_block() + self.d
    }
    /// Floats per row of the per-row data / gradient: `ctx_g [FT], ctx_u [FT], mult, s, τ`.
    fn row(&self) -> usize {
        3 + 2 * self.ft
    }
    fn pg_block(&self, b: usize) -> usize {
        4 * self.fe + b * 4 * self.d
    }
    fn pg_head(&self) -> usize {
        self.pg_block(self.blocks)
    }
    fn pg_len(&self) -> usize {
        self.pg_head() + self.ft + 1
    }
    /// Floats of one block's weight gradients in the block backward's `wgrad` layout (each
    /// Linear `[out, in + 1]`, the bias last: qkv, out, gate, up, down; the kernels' `WG_*`).
    fn wg_block(&self) -> usize {
        let (d, ff) = (self.d, self.ff);
        4 * d * (d + 1) + 2 * ff * (d + 1) + d * (ff + 1)
    }
    /// Dynamic shared memory (bytes) of the tensor-core kernels — the encoder, the block
    /// forward, the block backward's FFN, attention and qkv kernels (the kernels' `E_SMEM`,
    /// `P_SMEM`, `F_SMEM`, `A_SMEM`, `B_SMEM`): staged matrices in f16 hi and lo, the staged
    /// sums and 4 scale slots, each warp's own sums.
    fn tc_smem(&self) -> [usize; 5] {
        let (d, ff) = (self.d, self.ff);
        let kf = ff.div_ceil(16);
        let (ldd, ldf, na) = (d + 8, 16 * kf + 8, d / 8 + 1);
        let bytes = |halves: usize, private: usize| {
            4 * halves + 4 * (self.acc_block() + 4 + BW_WARPS * private)
        };
        let ffn = bytes(
            2 * d * ldd + 2 * 16 * kf * ldd + d * ldf + 8 * na * ldd,
            2 * ff * (d + 1) + d * (ff + 1) + 4 * d,
        );
        let attn = bytes(3 * d * ldd + 8 * na * ldd, d * (d + 1) + self.acc_block());
        let qkv = bytes(5 * d * ldd, 3 * d * (d + 1));
        let fwd = bytes(
            4 * d * ldd + 2 * 16 * kf * ldd + d * ldf + 8 * na * ldd,
            self.acc_block(),
        );
        let lde = 16 * self.fe.div_ceil(16) + 8;
        let enc = bytes(d * lde + 2 * d * ldd, self.acc_block());
        [enc, fwd, ffn, attn, qkv]
    }
}

impl FusedTrainer {
    /// A trainer for `config` (a `sampling_network` of a shape in
    /// [`crate::gpu::fused::COMPILED_CONFIGS`]) on
    /// `device` (CUDA). Errors name the architecture, shape or device without kernels.
    pub fn new(config: &SamplerConfig, device: &Device) -> Result<Self> {
        config.validate()?;
        let SamplerConfig::SamplingNetwork(c) = config else {
            return Err(NetsError::bad_request(
                "architecture",
                config.architecture(),
                "the fused training kernels implement sampling_network",
            ));
        };
        let suffix = kernel_suffix(c, "fused training kernel")?;
        let Device::Cuda(cuda) = device else {
            return Err(NetsError::bad_request(
                "device",
                format!("{device:?}"),
                "the fused training kernels run on a CUDA device",
            ));
        };
        keep_freed_memory(cuda)?;
        Ok(Self {
            suffix,
            config: c.clone(),
            cuda: cuda.clone(),
            poison: false,
            phase_times: false,
            grouping: true,
            max_unit_weight: DEFAULT_MAX_UNIT_WEIGHT,
        })
    }

    /// Whether `config` has fused training kernels (the trainer's choice of engine).
    pub fn supports(config: &SamplerConfig) -> bool {
        matches!(config, SamplerConfig::SamplingNetwork(c) if is_compiled(c))
    }

    /// With `true`, every activation, output and gradient buffer the kernels and GEMMs write is
    /// filled with NaN first, so a value they fail to write shows as NaN (tests).
    pub fn with_poisoned_buffers(mut self, poison: bool) -> Self {
        self.poison = poison;
        self
    }

    /// With `false`, every row runs token by token, as rows whose logits are not all exact f16
    /// values always do (default `true`: equal f16 logits are grouped into units, see the
    /// module's doc).
    pub fn with_grouping(mut self, on: bool) -> Self {
        self.grouping = on;
        self
    }

    /// The most tokens one unit stands for (default [`DEFAULT_MAX_UNIT_WEIGHT`]; a value held by
    /// more tokens makes several units; 1: every token its own unit, the rows still compacted —
    /// a check of the grouping itself). Errors on 0 or more than `i32::MAX`.
    pub fn with_max_unit_weight(mut self, max: usize) -> Result<Self> {
        if max == 0 || max > i32::MAX as usize {
            return Err(NetsError::config(
                "max_unit_weight",
                max,
                "must be between 1 and 2^31 − 1",
            ));
        }
        self.max_unit_weight = max;
        Ok(self)
    }

    /// With `true`, [`FusedTrainer::step`] synchronises the device between its phases and
    /// reports their wall times in [`FusedStep::phases`] (benchmarks; slower).
    pub fn with_phase_times(mut self, on: bool) -> Self {
        self.phase_times = on;
        self
    }

    /// Number of kernel launches of one step (row statistics ×2, the units ×3, encoder,
    /// blocks, per-row heads, head, loss, head backward, per-row heads' backward, three per
    /// block backward, encoder backward), GEMMs, fills and packing not counted.
    pub fn launches(&self) -> usize {
        4 * self.config.n_blocks + 12
    }

    /// The parameters in `params` (all of the configuration's, by name, f32 or convertible, on
    /// any device) packed into one f32 buffer on this trainer's device, for any number of
    /// [`FusedTrainer::step_packed`] calls while they do not change. Errors name a missing
    /// parameter or a total size that does not fit the configuration.
    pub fn pack(&self, params: &[(String, Tensor)]) -> Result<PackedParameters> {
        let named: HashMap<&str, &Tensor> = params.iter().map(|(k, t)| (k.as_str(), t)).collect();
        let device = Device::Cuda(self.cuda.clone());
        let order = packing_order(&self.config);
        let tensors = ordered_parameters(
            &order,
            &named,
            &device,
            "fused training step",
            "sampling_network",
            |_| vec![],
        )?;
        let dims = Dims::of(&self.config);
        let expected = dims.head_offset() + dims.head_len();
        let total: usize = tensors.iter().map(Tensor::elem_count).sum();
        if total != expected {
            return Err(NetsError::shape(
                "packed sampling_network parameters",
                format!("{expected} floats (the configuration's)"),
                format!("{total} floats"),
            ));
        }
        // One gather launch: a table of the parameters' addresses, lengths and offsets.
        let stream = self.cuda.cuda_stream();
        let mut table = Vec::with_capacity(3 * tensors.len());
        let (mut off, mut longest) = (0usize, 1usize);
        for (name, t) in order.iter().zip(&tensors) {
            let len = t.elem_count();
            table.push(address(
                t,
                &format!("parameter `{name}`"),
                &device,
                &stream,
            )?);
            table.push(len as u64);
            table.push(off as u64);
            off += len;
            longest = longest.max(len);
        }
        let table = stream.clone_htod(&table).w()?;
        // SAFETY: fully written by tr_pack (the parameters' lengths add up to `total`).
        let mut weights = unsafe { self.cuda.alloc::<f32>(total.max(1)) }?;
        let cfg = LaunchConfig {
            grid_dim: (
                longest.div_ceil(PACK_THREADS as usize).min(1024) as u32,
                tensors.len().max(1) as u32,
                1,
            ),
            block_dim: (PACK_THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        if !tensors.is_empty() {
            launch!(self, "tr_pack", cfg; &table, &mut weights);
        }
        let shapes = order
            .into_iter()
            .map(|name| {
                let dims = named.get(name.as_str()).map(|t| t.dims().to_vec());
                (name, dims.unwrap_or_default())
            })
            .collect();
        Ok(PackedParameters { weights, shapes })
    }

    /// One step on raw logits `z: [N, V]` (`-inf` = masked token) and targets `[N, V]` (the
    /// pipeline's output logits, `-inf` at removed tokens), both on this trainer's device or
    /// copied there: `Σ KL`, `Σ penalty` and `scale · Σ_rows ∂(KL + γ·penalty)/∂θ` for every
    /// parameter in `params` (all of the configuration's, by name). [`FusedTrainer::pack`] then
    /// [`FusedTrainer::step_packed`]. Errors on NaN / `+inf` or rows without a finite entry
    /// (naming the row and token), shape mismatches, `N >` [`MAX_ROWS`], a non-finite or
    /// negative `gamma`, a non-finite `scale`.
    pub fn step(
        &self,
        params: &[(String, Tensor)],
        logits: &Tensor,
        target: &Tensor,
        gamma: f64,
        scale: f64,
    ) -> Result<FusedStep> {
        let mut ph = Phases::new(self.phase_times);
        let packed = self.pack(params)?;
        ph.mark(
            &self.cuda,
            "packing the parameters (once per optimizer step)",
        )?;
        self.run(&packed, logits, target, gamma, scale, ph)
    }

    /// [`FusedTrainer::step`] with parameters packed by [`FusedTrainer::pack`] (the trainer
    /// packs once per optimizer step and reuses them for every micro-batch pass). The host waits
    /// for the device twice: for the number of units per row (it sizes the step's buffers) and
    /// at the end, for the loss sums and the row checks.
    pub fn step_packed(
        &self,
        packed: &PackedParameters,
        logits: &Tensor,
        target: &Tensor,
        gamma: f64,
        scale: f64,
    ) -> Result<FusedStep> {
        self.run(
            packed,
            logits,
            target,
            gamma,
            scale,
            Phases::new(self.phase_times),
        )
    }

    /// The step of [`FusedTrainer::step_packed`], its phases timed into `ph`.
    fn run(
        &self,
        packed: &PackedParameters,
        logits: &Tensor,
        target: &Tensor,
        gamma: f64,
        scale: f64,
        mut ph: Phases,
    ) -> Result<FusedStep> {
        if !gamma.is_finite() || gamma < 0.0 {
            return Err(NetsError::config("gamma", gamma, "must be finite and ≥ 0"));
        }
        if !scale.is_finite() {
            return Err(NetsError::config("scale", scale, "must be finite"));
        }
        let (n, v) = logits_dims(logits)?;
        if target.dims() != logits.dims() {
            return Err(NetsError::shape(
                "target",
                format!("{:?} (the logits' shape)", logits.dims()),
                format!("{:?}", target.dims()),
            ));
        }
        if n > MAX_ROWS || n * v > i32::MAX as usize {
            return Err(NetsError::bad_request(
                "logits",
                format!("[{n}, {v}]"),
                format!(
                    "the fused training step takes at most {MAX_ROWS} rows and 2^31 − 1 tokens"
                ),
            ));
        }
        let dims = Dims::of(&self.config);
        if packed.weights.len() != dims.head_offset() + dims.head_len() {
            return Err(NetsError::shape(
                "packed parameters",
                format!("{} floats", dims.head_offset() + dims.head_len()),
                format!(
                    "{} floats (packed for another configuration)",
                    packed.weights.len()
                ),
            ));
        }
        let dev = &self.cuda;
        let device = Device::Cuda(dev.clone());
        let zin = to_slice(logits, &device)?;
        let tgt = to_slice(target, &device)?;
        let w = packed.weights.slice(..);
        let vin = v as i32;
        let blocks = dims.blocks as i32;

        // Row statistics of the input and the target (checked with the loss sums at the end).
        let mut zs = self.buffer(STATS * n)?;
        launch!(self, "tr_row_stats", row_cfg(n); &zin, &vin, &mut zs);
        let mut ts = self.buffer(STATS * n)?;
        launch!(self, "tr_row_stats", row_cfg(n); &tgt, &vin, &mut ts);
        ph.mark(dev, "inputs, row statistics")?;

        // The units (module doc): their number per row, read back to size the buffers, then
        // the units buffer z ([4][N][V']: logit, weight, target mass, target-removed count)
        // and token -> unit. From here on the network's positions are the N·V' units.
        let mut counts = dev.alloc_zeros::<i32>(2 * n)?;
        let grouping = self.grouping && v >= MIN_GROUPED_VOCAB;
        let group = i32::from(grouping);
        let max_weight = self.max_unit_weight as i32;
        let keys_len = if grouping { n * UNIT_KEYS } else { 1 };
        let mut keys = dev.alloc_zeros::<u32>(keys_len)?;
        let mut seen = dev.alloc_zeros::<u32>(keys_len)?;
        launch!(self, "tr_units_count", unit_cfg(n); &zin, &vin, &group, &mut keys, &mut counts);
        launch!(self, "tr_units_assign", unit_cfg(n); &max_weight, &mut keys, &mut counts);
        let counts_host = dev.clone_dtoh(&counts)?;
        // A row's units: its tokens (flag set) or the grouped count.
        let v = (0..n)
            .map(|r| match counts_host[2 * r + 1] {
                0 => counts_host[2 * r].max(0) as usize,
                _ => v,
            })
            .max()
            .unwrap_or(0)
            .max(1);
        let t = n * v;
        let vi = v as i32;
        let mut z = dev.alloc_zeros::<f32>(4 * t)?;
        self.fill(&mut z, 0, t, f32::NEG_INFINITY)?;
        let mut unit_of = dev.alloc_zeros::<i32>(n * vin as usize)?;
        launch!(self, "tr_units_fill", unit_cfg(n); &zin, &tgt, &ts, &vin, &vi, &max_weight, &counts, &keys, &mut seen, &mut z, &mut unit_of);
        ph.mark(dev, "units (grouping equal f16 logits)")?;

        // Forward: x_0 .. x_B (slots of D + 1 channels, the last ones) and the per-row sums.
        let slot = (dims.d + 1) * t;
        let mut xs = self.buffer((dims.blocks + 1) * slot)?;
        for b in 0..=dims.blocks {
            let off = b * slot + dims.d * t;
            self.fill(&mut xs, off, t, 1.0)?;
        }
        let mut acc = dev.alloc_zeros::<f32>(n * dims.acc_row())?;
        let [enc_smem, fwd_smem, ffn_smem, attn_smem, qkv_smem] = dims.tc_smem();
        let sfx = &self.suffix;
        launch_bw!(self, &format!("tr_encode_{sfx}"), enc_smem, n, v; &z, &zs, &w, &mut xs, &mut acc, &vi, &blocks);
        ph.mark(dev, "forward: encoder")?;
        for i in 0..blocks {
            launch_bw!(self, &format!("tr_block_{sfx}"), fwd_smem, n, v; &z, &zs, &w, &mut xs, &mut acc, &vi, &blocks, &i);
        }
        ph.mark(dev, "forward: blocks")?;
        // The per-row heads: c = pool / kept -> ctx_g, ctx_u, mult, s, τ per row.
        let mut rows = self.buffer(n * dims.row())?;
        launch!(self, &format!("tr_rows_{}", self.suffix), row_head_cfg(n); &zs, &w, &acc, &mut rows, &blocks);
        ph.mark(dev, "per-row heads (device)")?;
        let mut out = self.buffer(t)?;
        launch!(self, &format!("tr_head_{}", self.suffix), token_cfg(n, v); &z, &zs, &w, &xs, &rows, &mut out, &vi, &blocks);
        ph.mark(dev, "head")?;
        let mut loss = self.buffer(LOSS * n)?;
        launch!(self, "tr_loss", row_cfg(n); &out, &unit_of, &tgt, &ts, &vin, &vi, &mut loss);
        ph.mark(dev, "loss")?;

        // Backward of the head and the loss.
        let mut dx = self.buffer(dims.d * t)?;
        let mut dgu_t = self.buffer(2 * dims.ft * t)?;
        let mut rowgrad = dev.alloc_zeros::<f32>(n * dims.row())?;
        let mut pgrad = dev.alloc_zeros::<f32>(dims.pg_len())?;
        let (g32, s32) = (gamma as f32, scale as f32);
        launch!(self, &format!("tr_head_bwd_{}", self.suffix), token_cfg(n, v); &z, &zs, &loss, &w, &xs, &rows, &mut dx, &mut dgu_t, &mut rowgrad, &mut pgrad, &vi, &blocks, &g32, &s32);
        ph.mark(dev, "head backward")?;
        // The per-row heads' backward: their parameters' gradients into `hgrad` (the packed
        // layout from the transform on), the pool sum's gradient into `dcu_dev`.
        let mut hgrad = dev.alloc_zeros::<f32>(dims.head_len())?;
        let mut dcu_dev = self.buffer(n * dims.d)?;
        launch!(self, &format!("tr_rows_bwd_{}", self.suffix), row_head_cfg(n); &zs, &w, &acc, &rowgrad, &mut hgrad, &mut dcu_dev, &blocks);
        ph.mark(dev, "per-row heads backward (device)")?;
        // The transform's per-token columns: d(gate | up) · x_Bᵀ into the first D columns of
        // its gate and up weights ([FT, 2D] in hgrad; the kernel above wrote the other D).
        let xb = xs.slice(dims.blocks * slot..dims.blocks * slot + dims.d * t);
        let (ft, d2) = (dims.ft, 2 * dims.d);
        for (k, off) in [(0, 0), (1, dims.transform_up())] {
            let dy = dgu_t.slice(k * ft * t..(k + 1) * ft * t);
            let mut dst = hgrad.slice_mut(off..off + ft * d2);
            self.weight_grad_into(&dy, &xb, ft, dims.d, t, &mut dst, d2)?;
        }
        ph.mark(dev, "weight-gradient GEMMs: transform")?;
        let mut grads = BTreeMap::new();

        // Blocks, last first: dy1 (LN1 input gradient) and dq pass from one launch to the next;
        // the Linear layers' gradients accumulate in `wgrad`.
        let ch = |c: usize| -> Result<CudaSlice<f32>> { self.buffer(c * t) };
        let (mut dy1, mut dq) = (ch(dims.d)?, ch(dims.d)?);
        let mut dacc = dev.alloc_zeros::<f32>(n * dims.acc_block())?;
        let mut wgrad = dev.alloc_zeros::<f32>(dims.blocks * dims.wg_block())?;
        for b in (0..dims.blocks).rev() {
            let bi = b as i32;
            let pool = i32::from(b + 1 == dims.blocks);
            let len = dacc.len();
            self.fill(&mut dacc, 0, len, 0.0)?;
            launch_bw!(self, &format!("tr_bwd_ffn_{sfx}"), ffn_smem, n, v; &z, &zs, &w, &xs, &acc, &dcu_dev, &dx, &mut dy1, &mut wgrad, &mut pgrad, &vi, &blocks, &bi, &pool);
            ph.mark(dev, "block backward: FFN (tr_bwd_ffn)")?;
            launch_bw!(self, &format!("tr_bwd_attn_{sfx}"), attn_smem, n, v; &z, &zs, &w, &xs, &acc, &dy1, &mut dq, &mut dacc, &mut wgrad, &vi, &blocks, &bi);
            ph.mark(dev, "block backward: attention (tr_bwd_attn)")?;
            launch_bw!(self, &format!("tr_bwd_qkv_{sfx}"), qkv_smem, n, v; &z, &zs, &w, &xs, &dacc, &dy1, &dq, &mut dx, &mut wgrad, &vi, &blocks, &bi);
            ph.mark(dev, "block backward: QKV (tr_bwd_qkv)")?;
        }
        let (d, ff) = (dims.d, dims.ff);
        let wg = wrap(wgrad, dev, dims.blocks * dims.wg_block());
        for b in 0..dims.blocks {
            let mut off = b * dims.wg_block();
            for (layer, out, inp) in [
                ("attn.qkv", 3 * d, d),
                ("attn.out", d, d),
                ("ffn.gate", ff, d),
                ("ffn.up", ff, d),
                ("ffn.down", d, ff),
            ] {
                let len = out * (inp + 1);
                let g = wg.narrow(0, off, len)?.reshape((out, inp + 1))?;
                split_linear(&mut grads, &format!("blocks.{b}.{layer}"), g)?;
                off += len;
            }
        }

        ph.mark(dev, "gradient assembly")?;

        // Encoder.
        let mut h_buf = ch(dims.fe + 1)?;
        self.fill(&mut h_buf, dims.fe * t, t, 1.0)?;
        launch!(self, &format!("tr_encode_bwd_{}", self.suffix), token_cfg(n, v); &z, &zs, &w, &dx, &mut h_buf, &mut pgrad, &vi);
        ph.mark(dev, "encoder backward")?;
        let e = self.weight_grad(&dx.slice(..), &h_buf.slice(..), dims.d, dims.fe + 1, t)?;
        split_linear(
            &mut grads,
            "encoder.down",
            wrap(e, dev, (dims.d, dims.fe + 1)),
        )?;

        ph.mark(dev, "weight-gradient GEMMs: encoder")?;
        // In-kernel sums.
        let pg = wrap(pgrad, dev, dims.pg_len());
        let fe = dims.fe;
        for (k, name) in ["gate.weight", "gate.bias", "up.weight", "up.bias"]
            .iter()
            .enumerate()
        {
            let g = pg.narrow(0, k * fe, fe)?;
            let g = if name.ends_with("weight") {
                g.reshape((fe, 1))?
            } else {
                g
            };
            add_grad(&mut grads, &format!("encoder.{name}"), g)?;
        }
        for b in 0..dims.blocks {
            let off = dims.pg_block(b);
            for (k, name) in ["ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias"]
                .iter()
                .enumerate()
            {
                add_grad(
                    &mut grads,
                    &format!("blocks.{b}.{name}"),
                    pg.narrow(0, off + k * dims.d, dims.d)?,
                )?;
            }
        }
        let off = dims.pg_head();
        add_grad(
            &mut grads,
            "transform.down.weight",
            pg.narrow(0, off, dims.ft)?.reshape((1, dims.ft))?,
        )?;
        add_grad(
            &mut grads,
            "transform.down.bias",
            pg.narrow(0, off + dims.ft, 1)?,
        )?;
        // The transform's gate / up and the per-row heads (hgrad, packed from the transform on).
        let hg = wrap(hgrad, dev, dims.head_len());
        let mut off = 0;
        for (name, shape) in &packed.shapes {
            let len = shape.iter().product::<usize>();
            let head = off >= dims.head_offset();
            if head && !name.starts_with("transform.down.") {
                let at = off - dims.head_offset();
                add_grad(
                    &mut grads,
                    name,
                    hg.narrow(0, at, len)?.reshape(shape.as_slice())?,
                )?;
            }
            off += len;
        }

        let mut all = BTreeMap::new();
        for (name, shape) in &packed.shapes {
            let g = grads
                .remove(name)
                .ok_or_else(|| NetsError::MissingParameter {
                    origin: "fused training step".into(),
                    name: name.clone(),
                    expected: shape.clone(),
                    architecture: "sampling_network".into(),
                    hint: "no gradient was formed for it".into(),
                })?;
            all.insert(name.clone(), g.contiguous()?);
        }
        ph.mark(dev, "gradient assembly")?;
        // The step's one wait for the device: the row checks and the loss sums.
        let zs_host = dev.clone_dtoh(&zs)?;
        let ts_host = dev.clone_dtoh(&ts)?;
        check_rows(&zs_host, STATS, logits, "input logits")?;
        check_rows(&ts_host, STATS, target, "target")?;
        let loss_host = dev.clone_dtoh(&loss)?;
        let kl: f64 = (0..n).map(|r| loss_host[LOSS * r + 1] as f64).sum();
        let penalty: f64 = (0..n).map(|r| loss_host[LOSS * r + 2] as f64).sum();
        ph.mark(dev, "row checks, loss sums (the host sync)")?;
        Ok(FusedStep {
            kl,
            penalty,
            grads: all,
            phases: ph.times,
            positions: t,
        })
    }

    /// A fresh f32 buffer of `len` elements (at least one), NaN-filled when poisoning; every
    /// element is written by the kernels or a GEMM before it is read.
    fn buffer(&self, len: usize) -> Result<CudaSlice<f32>> {
        Ok(output_buffer(&self.cuda, len.max(1), self.poison)?)
    }

    /// `buf[off .. off + len] = value`.
    fn fill(&self, buf: &mut CudaSlice<f32>, off: usize, len: usize, value: f32) -> Result<()> {
        fill(&self.cuda, &mut buf.slice_mut(off..off + len), value)?;
        Ok(())
    }

    /// `dW [m, k] = dY [m, T] · X [k, T]ᵀ` (both channel-major over the `T` tokens), by cuBLAS.
    fn weight_grad(
        &self,
        dy: &CudaView<'_, f32>,
        x: &CudaView<'_, f32>,
        m: usize,
        k: usize,
        t: usize,
    ) -> Result<CudaSlice<f32>> {
        let mut out = self.buffer(m * k)?;
        self.weight_grad_into(dy, x, m, k, t, &mut out.slice_mut(..), k)?;
        Ok(out)
    }

    /// [`FusedTrainer::weight_grad`] into `out`, row `i` of `dW` at `out[i · ld ..]` (`ld ≥ k`;
    /// the other `ld − k` floats of each row untouched).
    #[allow(clippy::too_many_arguments)]
    fn weight_grad_into(
        &self,
        dy: &CudaView<'_, f32>,
        x: &CudaView<'_, f32>,
        m: usize,
        k: usize,
        t: usize,
        out: &mut CudaViewMut<'_, f32>,
        ld: usize,
    ) -> Result<()> {
        // Column-major: C (k × m, ldc ld) = Aᵀ (A = X as T × k) · B (B = dY as T × m).
        let cfg = GemmConfig {
            transa: cublasOperation_t::CUBLAS_OP_T,
            transb: cublasOperation_t::CUBLAS_OP_N,
            m: k as i32,
            n: m as i32,
            k: t as i32,
            alpha: 1.0f32,
            lda: t as i32,
            ldb: t as i32,
            beta: 0.0f32,
            ldc: ld as i32,
        };
        // SAFETY: x holds k·T floats, dy m·T, out at least (m − 1)·ld + k, as the
        // configuration says.
        unsafe { self.cuda.cublas_handle().gemm(cfg, x, dy, out) }.w()?;
        Ok(())
    }
}

/// Makes `cuda`'s default memory pool keep the memory freed into it (release threshold:
/// unlimited) instead of returning it to the driver at every synchronisation: a step allocates
/// its buffers (hundreds of MB at V = 49,152) stream-ordered from that pool and frees them at
/// its end, and with the default threshold (0) the next step maps them anew.
fn keep_freed_memory(cuda: &CudaDevice) -> Result<()> {
    use candle_core::cuda_backend::cudarc::driver::{result, sys};
    let stream = cuda.cuda_stream();
    let ctx = stream.context();
    ctx.bind_to_thread().w()?;
    let mut threshold = u64::MAX;
    // SAFETY: the device is the context's; the attribute's value is a u64, as passed.
    unsafe {
        let pool = result::device::get_default_mem_pool(ctx.cu_device()).w()?;
        result::mem_pool::set_attribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            (&mut threshold as *mut u64).cast(),
        )
        .w()?;
    }
    Ok(())
}

/// A contiguous f32 copy of `t` on `device`, as a raw CUDA buffer.
fn to_slice(t: &Tensor, device: &Device) -> Result<CudaSlice<f32>> {
    let t = t.to_device(device)?.to_dtype(DType::F32)?.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cuda(cs) = &*storage else {
        return Err(NetsError::bad_request(
            "device",
            format!("{:?}", t.device()),
            "the fused training kernels run on a CUDA device",
        ));
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        return Err(NetsError::bad_request(
            "tensor layout",
            "strided",
            "must be contiguous",
        ));
    };
    let src = cs.as_cuda_slice::<f32>()?.slice(start..end);
    let dev = cs.device();
    // SAFETY: fully written by the copy below.
    let mut dst = unsafe { dev.alloc::<f32>((end - start).max(1))? };
    dev.memcpy_dtod(&src, &mut dst.slice_mut(..end - start))?;
    Ok(dst)
}

/// A raw CUDA buffer as a tensor of `shape` (no copy).
fn wrap(slice: CudaSlice<f32>, dev: &CudaDevice, shape: impl Into<candle_core::Shape>) -> Tensor {
    Tensor::from_storage(
        Storage::Cuda(CudaStorage::wrap_cuda_slice(slice, dev.clone())),
        shape,
        BackpropOp::none(),
        false,
    )
}

/// Adds `g` to the gradient of `name`.
fn add_grad(grads: &mut BTreeMap<String, Tensor>, name: &str, g: Tensor) -> Result<()> {
    let sum = match grads.remove(name) {
        Some(a) => (a + g)?,
        None => g,
    };
    grads.insert(name.to_string(), sum);
    Ok(())
}

/// A Linear layer's `[out, in + 1]` GEMM result (the last column from the ones channel) as its
/// `weight` and `bias` gradients.
fn split_linear(grads: &mut BTreeMap<String, Tensor>, prefix: &str, g: Tensor) -> Result<()> {
    let (_, k1) = g.dims2()?;
    add_grad(
        grads,
        &format!("{prefix}.weight"),
        g.narrow(1, 0, k1 - 1)?.contiguous()?,
    )?;
    add_grad(
        grads,
        &format!("{prefix}.bias"),
        g.narrow(1, k1 - 1, 1)?.flatten_all()?,
    )
}
