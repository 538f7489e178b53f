//! [`FusedSampler`]: a learned sampler's inference forward (SPEC §2) as fused CUDA kernels; the
//! result equals [`crate::LearnedSampler::forward`] up to rounding.
//!
//! - SamplingNetwork (formulas in [`crate::arch::sampling_network`],
//!   `sampling_network_tc.cu`): the per-token matrix products on tensor cores (f16 inputs, f32
//!   accumulation; [`FusedPrecision`] says how the f32 values are split into f16), the rest f32;
//!   `n_blocks + 4` launches — the per-row log-sum-exp, the encoder and block 0's attention sums,
//!   one per block (its attention, LayerNorms and FFN, plus the next block's sums or the mean
//!   pool), the per-row head context, the output head and gate.
//! - SimpleDistributionAwareTransform ([`crate::arch::distribution_aware`],
//!   `fused_samplers.cu`, f32): 2 launches — the per-row log-sum-exp with the entropy, then
//!   everything per token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::sys::{CUdevice_attribute, CUfunction_attribute};
use candle_core::cuda_backend::cudarc::driver::{
    CudaFunction, CudaSlice, CudaView, CudaViewMut, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::{CudaDevice, WrapErr};
use candle_core::{
    CpuStorage, CudaStorage, CustomOp1, CustomOp3, DType, Device, Layout, Shape, Tensor,
};

use crate::arch::{logits_dims, validate_logits};
use crate::config::{DistributionAwareConfig, SamplerConfig, SamplingNetworkConfig};
use crate::error::{NetsError, Result};
use crate::sampler::LearnedSampler;

/// PTX of `fused_samplers.cu`, compiled by the crate's build script.
const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/fused_samplers.ptx"));
/// Name the PTX module is cached under in candle's CUDA device.
const MODULE: &str = "adasamp_nets_fused_samplers";
/// PTX of `sampling_network_tc.cu` (the SamplingNetwork's tensor-core kernels).
const PTX_TC: &str = include_str!(concat!(env!("OUT_DIR"), "/sampling_network_tc.ptx"));
/// Name the tensor-core PTX module is cached under.
const MODULE_TC: &str = "adasamp_nets_sampling_network_tc";
/// Threads per block of the SamplingNetwork's per-token kernels (the `.cu`'s `TC_THREADS`).
const TC_THREADS: u32 = 256;
/// Dynamic shared memory of the pass kernels (the `.cu`'s `TC_SMEM_BYTES`).
const TC_SMEM_BYTES: u32 = 65_536;
/// Threads per block of the per-row head-context kernel.
const TC_CTX_THREADS: u32 = 128;
/// Floats per row of the row-statistics kernel's output (its `STATS`).
const STATS: usize = 5;
/// Threads per block of the per-token kernels (the kernels' `THREADS`).
const THREADS: u32 = 128;
/// Threads per block of the per-row kernels (row statistics, loss; one block per row).
pub(crate) const ROW_THREADS: u32 = 1024;
/// Largest number of rows in one call (forward or training step): the per-token kernels put
/// rows on the grid's y axis.
pub const MAX_ROWS: usize = 65_535;

/// The SamplingNetwork shapes `(d_model, n_heads, encoder_hidden, d_ff)` that have compiled fused
/// kernels, forward and training (each with and without the scale head): the reference
/// configuration and the tiny one (`configs/samplers/sampling_network{,_tiny}.yaml`). Mirrors
/// `SN_COMPILED_SHAPES` in `common.cuh`.
pub const COMPILED_CONFIGS: [(usize, usize, usize, usize); 2] = [(32, 4, 32, 64), (16, 2, 32, 32)];

/// The SimpleDistributionAwareTransform hidden widths that have compiled fused kernels (each with
/// dynamic and static truncation); 64 is `configs/samplers/simple_{dynamic,static}.yaml`.
/// Mirrors the `SDAT_CONFIG` lines of `fused_samplers.cu`.
pub const COMPILED_SIMPLE_HIDDEN: [usize; 3] = [64, 32, 16];

/// How the SamplingNetwork's tensor-core products round their f32 operands to f16 (the
/// accumulation is f32 either way; the SimpleDistributionAwareTransform is f32 throughout).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FusedPrecision {
    /// Each operand split into two f16 parts, `a = a_hi + a_lo`, and `a·w ≈ a_hi·w_hi +
    /// a_lo·w_hi + a_hi·w_lo` (three products): about f32 accuracy (~22 bits).
    #[default]
    SplitF16,
    /// One f16 product (activations and weights rounded to f16, ~11 bits): the fastest.
    F16,
}

impl FusedPrecision {
    /// The kernel name suffix (`_p2` / `_p0`, the `.cu`'s precision parameter).
    fn suffix(self) -> &'static str {
        match self {
            Self::SplitF16 => "p2",
            Self::F16 => "p0",
        }
    }
}

/// Which kernels a [`FusedSampler`] runs, with the sizes they need at launch.
#[derive(Clone, Debug)]
enum Kind {
    SamplingNetwork {
        d_model: usize,
        n_blocks: usize,
        /// Kernel name suffix `d{D}_h{H}_e{EH}_f{DFF}_s{0|1}`.
        suffix: String,
    },
    Simple {
        /// Kernel name `sdat_forward_h{HID}_{dyn|static}`.
        kernel: String,
    },
}

/// A learned sampler's weights packed for the fused CUDA kernels, on one CUDA device.
#[derive(Clone, Debug)]
pub struct FusedSampler {
    weights: Tensor,
    kind: Kind,
    device: Device,
    poison: bool,
    precision: FusedPrecision,
    scratch: Scratch,
}

/// The parameter names of a SamplingNetwork in the order the kernels read the packed buffer:
/// the encoder, each block (`attn.qkv`, `attn.out`, `ln1`, `ffn`, `ln2`), `transform`, `scale`
/// (if any), `truncation`; every Linear as weight then bias, every SwiGLU as gate, up, down.
pub fn packing_order(config: &SamplingNetworkConfig) -> Vec<String> {
    fn linear(names: &mut Vec<String>, prefix: &str) {
        names.push(format!("{prefix}.weight"));
        names.push(format!("{prefix}.bias"));
    }
    fn swiglu(names: &mut Vec<String>, prefix: &str) {
        for part in ["gate", "up", "down"] {
            linear(names, &format!("{prefix}.{part}"));
        }
    }
    let mut names = Vec::new();
    swiglu(&mut names, "encoder");
    for i in 0..config.n_blocks {
        for part in ["attn.qkv", "attn.out", "ln1"] {
            linear(&mut names, &format!("blocks.{i}.{part}"));
        }
        swiglu(&mut names, &format!("blocks.{i}.ffn"));
        linear(&mut names, &format!("blocks.{i}.ln2"));
    }
    swiglu(&mut names, "transform");
    if config.scale {
        swiglu(&mut names, "scale");
    }
    swiglu(&mut names, "truncation");
    names
}

/// The parameter names of a SimpleDistributionAwareTransform in the kernel's order: `local`,
/// `mlp` (gate, up, down), then `truncation.{weight, bias}` (dynamic) or
/// `truncation.{scale_raw, threshold_raw}` (static).
pub fn simple_packing_order(config: &DistributionAwareConfig) -> Vec<String> {
    let mut names = vec!["local.weight".to_string(), "local.bias".to_string()];
    for part in ["gate", "up", "down"] {
        names.push(format!("mlp.{part}.weight"));
        names.push(format!("mlp.{part}.bias"));
    }
    let truncation = if config.dynamic_truncation {
        ["weight", "bias"]
    } else {
        ["scale_raw", "threshold_raw"]
    };
    names.extend(truncation.iter().map(|p| format!("truncation.{p}")));
    names
}

/// Whether `config`'s shape is one of [`COMPILED_CONFIGS`].
pub(crate) fn is_compiled(config: &SamplingNetworkConfig) -> bool {
    COMPILED_CONFIGS.contains(&(
        config.d_model,
        config.n_heads,
        config.encoder_hidden,
        config.d_ff,
    ))
}

/// The kernel name suffix `d{D}_h{H}_e{EH}_f{DFF}_s{0|1}` of `config`, or an error naming its
/// shape when it is not in [`COMPILED_CONFIGS`] (`kernels`: which kernels, for the message).
pub(crate) fn kernel_suffix(config: &SamplingNetworkConfig, kernels: &str) -> Result<String> {
    let c = config;
    if !is_compiled(c) {
        return Err(NetsError::bad_request(
            "sampling_network shape",
            format!(
                "d_model {}, n_heads {}, encoder_hidden {}, d_ff {}",
                c.d_model, c.n_heads, c.encoder_hidden, c.d_ff
            ),
            format!("no {kernels} is compiled for it (compiled: {COMPILED_CONFIGS:?})"),
        ));
    }
    Ok(format!(
        "d{}_h{}_e{}_f{}_s{}",
        c.d_model,
        c.n_heads,
        c.encoder_hidden,
        c.d_ff,
        u8::from(c.scale)
    ))
}

/// The parameters named in `order`, in that order, each as a contiguous f32 tensor on `device`.
/// A missing name is a [`NetsError::MissingParameter`] with `origin`, `architecture` and the
/// shape `expected` gives for it.
pub(crate) fn ordered_parameters(
    order: &[String],
    params: &HashMap<&str, &Tensor>,
    device: &Device,
    origin: &str,
    architecture: &str,
    expected: impl Fn(&str) -> Vec<usize>,
) -> Result<Vec<Tensor>> {
    order
        .iter()
        .map(|name| {
            let t = params
                .get(name.as_str())
                .ok_or_else(|| NetsError::MissingParameter {
                    origin: origin.into(),
                    name: name.clone(),
                    expected: expected(name),
                    architecture: architecture.into(),
                    hint: String::new(),
                })?;
            Ok(t.to_device(device)?.to_dtype(DType::F32)?.contiguous()?)
        })
        .collect()
}

/// The kernels and packing order for `config`, or an error naming what has no fused kernel.
fn kind_of(config: &SamplerConfig) -> Result<(Kind, Vec<String>)> {
    match config {
        SamplerConfig::SamplingNetwork(c) => {
            let suffix = kernel_suffix(c, "fused kernel")?;
            let kind = Kind::SamplingNetwork {
                d_model: c.d_model,
                n_blocks: c.n_blocks,
                suffix,
            };
            Ok((kind, packing_order(c)))
        }
        SamplerConfig::SimpleDistributionAwareTransform(c) => {
            if !COMPILED_SIMPLE_HIDDEN.contains(&c.hidden) {
                return Err(NetsError::bad_request(
                    "simple_distribution_aware_transform hidden",
                    c.hidden,
                    format!(
                        "no fused kernel is compiled for it (compiled: {COMPILED_SIMPLE_HIDDEN:?})"
                    ),
                ));
            }
            let mode = if c.dynamic_truncation {
                "dyn"
            } else {
                "static"
            };
            let kernel = format!("sdat_forward_h{}_{mode}", c.hidden);
            Ok((Kind::Simple { kernel }, simple_packing_order(c)))
        }
        SamplerConfig::LocalProbabilityTransform(_) => Err(NetsError::bad_request(
            "architecture",
            config.architecture(),
            "the fused CUDA kernels implement sampling_network and \
             simple_distribution_aware_transform",
        )),
    }
}

impl FusedSampler {
    /// Packs the weights of `sampler` (a `sampling_network` of a shape in [`COMPILED_CONFIGS`]
    /// or a `simple_distribution_aware_transform` of a width in [`COMPILED_SIMPLE_HIDDEN`], on a
    /// CUDA device) into one f32 buffer on its device. Errors name the architecture, device or
    /// shape that has no fused kernel.
    pub fn new(sampler: &LearnedSampler) -> Result<Self> {
        let (kind, order) = kind_of(sampler.config())?;
        let device = sampler.device().clone();
        if !device.is_cuda() {
            return Err(NetsError::bad_request(
                "device",
                format!("{device:?}"),
                "the fused kernels run on a CUDA device",
            ));
        }
        let named = sampler.named_parameters();
        let params: HashMap<&str, &Tensor> = named.iter().map(|(k, t)| (k.as_str(), t)).collect();
        let shapes: HashMap<String, Vec<usize>> = sampler
            .param_specs()?
            .into_iter()
            .map(|spec| (spec.name, spec.shape))
            .collect();
        // The parameters in packing order, concatenated into one flat buffer.
        let flat = ordered_parameters(
            &order,
            &params,
            &device,
            "fused kernel packing",
            sampler.config().architecture(),
            |name| shapes.get(name).cloned().unwrap_or_default(),
        )?
        .iter()
        .map(Tensor::flatten_all)
        .collect::<candle_core::Result<Vec<_>>>()?;
        let weights = Tensor::cat(&flat, 0)?.contiguous()?;
        Ok(Self {
            weights,
            kind,
            device,
            poison: false,
            precision: FusedPrecision::default(),
            scratch: Scratch::default(),
        })
    }

    /// The SamplingNetwork's tensor-core rounding (default [`FusedPrecision::SplitF16`]); no
    /// effect on the SimpleDistributionAwareTransform.
    pub fn with_precision(mut self, precision: FusedPrecision) -> Self {
        self.precision = precision;
        self
    }

    /// With `true`, every buffer the kernels write (row statistics, activations, output) is
    /// filled with NaN before they run, so a value a kernel fails to write shows as NaN (tests).
    pub fn with_poisoned_outputs(mut self, poison: bool) -> Self {
        self.poison = poison;
        self
    }

    /// Raw logits `z: [N, V]` (any float dtype, any device; `-inf` = masked token) → new logits
    /// `[N, V]` in the dtype of `z`, on this network's device; the same contract and errors as
    /// [`crate::LearnedSampler::forward`] (a row with NaN / `+inf` or no finite entry is
    /// reported with its row and token), plus `N ≤` [`MAX_ROWS`].
    pub fn forward(&self, logits: &Tensor) -> Result<Tensor> {
        let (n, v) = logits_dims(logits)?;
        if n > MAX_ROWS || v > i32::MAX as usize {
            return Err(NetsError::bad_request(
                "logits",
                format!("[{n}, {v}]"),
                format!(
                    "the fused kernels take at most {MAX_ROWS} rows of at most 2^31 − 1 tokens"
                ),
            ));
        }
        let z = logits
            .to_device(&self.device)?
            .to_dtype(DType::F32)?
            .contiguous()?;
        let stats = z.apply_op1_no_bwd(&RowStats {
            poison: self.poison,
        })?;
        // Every launch is queued before the statistics come back to the host (one wait, after
        // the kernels, instead of one between the statistics and the rest); a bad row's output
        // is then dropped. [max z, L, #NaN or +inf, #finite, H] per row.
        let out = z.apply_op3_no_bwd(&stats, &self.weights, &Forward { net: self })?;
        check_rows(
            &stats.flatten_all()?.to_vec1::<f32>()?,
            STATS,
            &z,
            "input logits",
        )?;
        Ok(out.to_dtype(logits.dtype())?)
    }

    /// Number of kernel launches of one forward (SamplingNetwork: row statistics, encoder, one
    /// per block, head context, head; SimpleDistributionAwareTransform: row statistics,
    /// per-token pass).
    pub fn launches(&self) -> usize {
        match &self.kind {
            Kind::SamplingNetwork { n_blocks, .. } => n_blocks + 4,
            Kind::Simple { .. } => 2,
        }
    }
}

/// The contiguous f32 view of a custom op's input.
fn f32_view<'a>(
    storage: &'a CudaStorage,
    layout: &Layout,
    what: &str,
) -> candle_core::Result<CudaView<'a, f32>> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("fused sampler: {what} must be contiguous");
    };
    Ok(storage.as_cuda_slice::<f32>()?.slice(start..end))
}

/// The kind of the SamplingNetwork's pass `p` of `blocks` (the `K` of its kernel name
/// `snt_pass{K}_…`, `sampling_network_tc.cu`'s `SNT_*` bits): 1 = the encoder makes the
/// activations, 2 = block `p − 1` runs on them, 4 = block `p`'s attention sums follow (else the
/// mean pool).
fn pass_kind(p: i32, blocks: i32) -> u32 {
    u32::from(p <= 1) | (u32::from(p >= 1) << 1) | (u32::from(p < blocks) << 2)
}

/// Thread blocks per row for the SamplingNetwork's per-token kernels (`threads` per block, one
/// 16-token tile per warp at a time, `smem` bytes of dynamic shared memory): as many as fill the
/// device once (multiprocessors × resident blocks of `func`) shared by the `rows` rows, at least
/// one, at most one per warp-sized group of the row's 16-token tiles.
pub(crate) fn blocks_per_row(
    dev: &CudaDevice,
    func: &CudaFunction,
    rows: usize,
    vocab: usize,
    threads: u32,
    smem: u32,
) -> candle_core::Result<u32> {
    let sms = dev
        .cuda_stream()
        .context()
        .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
        .w()?;
    let resident = func
        .occupancy_max_active_blocks_per_multiprocessor(threads, smem as usize, None)
        .w()?;
    let slots = (sms.max(1) as usize) * (resident.max(1) as usize);
    let tiles = vocab.div_ceil(16).div_ceil((threads as usize / 32).max(1));
    Ok((slots / rows.max(1)).clamp(1, tiles.max(1)) as u32)
}

/// Errors for a row whose statistics (`width` floats per row, starting `[max, lse, #NaN/+inf,
/// #finite]`) show NaN / `+inf` or no finite entry, naming the row and token of `x` (`what`:
/// input logits or target).
pub(crate) fn check_rows(stats: &[f32], width: usize, x: &Tensor, what: &str) -> Result<()> {
    let bad = stats.chunks(width).position(|s| s[2] > 0.0 || s[3] == 0.0);
    let Some(r) = bad else { return Ok(()) };
    validate_logits(x).map_err(|e| match e {
        NetsError::InvalidLogits { source, .. } => NetsError::logits(what, *source),
        other => other,
    })?;
    Err(NetsError::bad_request(
        what,
        format!("row {r}"),
        "holds NaN / +inf or no finite entry",
    ))
}

/// A fresh f32 buffer of `len` elements, NaN-filled when `poison`.
pub(crate) fn output_buffer(
    dev: &CudaDevice,
    len: usize,
    poison: bool,
) -> candle_core::Result<CudaSlice<f32>> {
    // SAFETY: every element is written by the kernels (or by the NaN fill) before it is read.
    let mut buf = unsafe { dev.alloc::<f32>(len)? };
    if poison {
        fill_nan(dev, &mut buf)?;
    }
    Ok(buf)
}

/// Fills all of `buf` with NaN (on the device's stream).
fn fill_nan(dev: &CudaDevice, buf: &mut CudaSlice<f32>) -> candle_core::Result<()> {
    fill(dev, &mut buf.slice_mut(..), f32::NAN)
}

/// Sets every element of `view` to `value` (the `sn_fill` kernel, on the device's stream); the
/// fused forward's NaN poisoning and the training step's fills.
pub(crate) fn fill(
    dev: &CudaDevice,
    view: &mut CudaViewMut<'_, f32>,
    value: f32,
) -> candle_core::Result<()> {
    let func = dev.get_or_load_custom_func("sn_fill", MODULE, PTX)?;
    let mut b = func.builder();
    let count = view.len() as u64;
    b.arg(view);
    b.arg(&count);
    b.arg(&value);
    let cfg = LaunchConfig {
        grid_dim: (1024, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: the kernel writes `count` floats of `view`.
    unsafe { b.launch(cfg) }.w()?;
    Ok(())
}

/// The SamplingNetwork's activation buffer (`[N, V, d]` f32), kept between forwards so a call
/// does not allocate (and the driver map) up to a gigabyte afresh: grown when a call needs more.
/// The lock is held while a forward queues its kernels, so two forwards' kernels never
/// interleave on the stream.
#[derive(Clone, Default)]
struct Scratch(Arc<Mutex<Option<CudaSlice<f32>>>>);

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scratch")
    }
}

/// `[N, V]` logits → `[N, 5]` per row: max z, `L = log Σ exp(z − max)`, #NaN or `+inf`,
/// #finite, entropy `H = −Σ p·lp`.
struct RowStats {
    poison: bool,
}

impl CustomOp1 for RowStats {
    fn name(&self) -> &'static str {
        "adasamp-fused-row-stats"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        candle_core::bail!("the fused sampler kernels run on CUDA only")
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> candle_core::Result<(CudaStorage, Shape)> {
        let (n, v) = l.shape().dims2()?;
        let dev = s.device();
        let z = f32_view(s, l, "logits")?;
        let mut stats = output_buffer(dev, STATS * n, self.poison)?;
        let func = dev.get_or_load_custom_func("sn_row_stats", MODULE, PTX)?;
        let mut b = func.builder();
        let vi = v as i32;
        b.arg(&z);
        b.arg(&vi);
        b.arg(&mut stats);
        let cfg = LaunchConfig {
            grid_dim: (n as u32, 1, 1),
            block_dim: (ROW_THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: one block per row reads its V logits and writes its 4 statistics.
        unsafe { b.launch(cfg) }.w()?;
        Ok((
            CudaStorage::wrap_cuda_slice(stats, dev.clone()),
            Shape::from((n, STATS)),
        ))
    }
}

/// `(z [N, V], row stats [N, 4], packed weights)` → new logits `[N, V]`.
struct Forward<'a> {
    net: &'a FusedSampler,
}

impl CustomOp3 for Forward<'_> {
    fn name(&self) -> &'static str {
        "adasamp-fused-sampler"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        candle_core::bail!("the fused sampler kernels run on CUDA only")
    }

    fn cuda_fwd(
        &self,
        zs: &CudaStorage,
        zl: &Layout,
        ss: &CudaStorage,
        sl: &Layout,
        ws: &CudaStorage,
        wl: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let (n, v) = zl.shape().dims2()?;
        let dev = zs.device();
        let z = f32_view(zs, zl, "logits")?;
        let stats = f32_view(ss, sl, "row statistics")?;
        let w = f32_view(ws, wl, "weights")?;
        let mut out = output_buffer(dev, n * v, self.net.poison)?;
        let cfg = LaunchConfig {
            grid_dim: ((v as u32).div_ceil(THREADS), n as u32, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        let vi = v as i32;
        match &self.net.kind {
            Kind::Simple { kernel } => {
                let func = dev.get_or_load_custom_func(kernel, MODULE, PTX)?;
                let mut b = func.builder();
                b.arg(&z);
                b.arg(&stats);
                b.arg(&w);
                b.arg(&mut out);
                b.arg(&vi);
                // SAFETY: each thread writes its token's output logit.
                unsafe { b.launch(cfg) }.w()?;
            }
            Kind::SamplingNetwork {
                d_model,
                n_blocks,
                suffix,
            } => {
                let d = *d_model;
                // per block S [d][8] + s [d], then the pool [d] (heads of width 8)
                let acc_row = n_blocks * (d * 8 + d) + d;
                let mut acc = dev.alloc_zeros::<f32>(n * acc_row)?;
                let mut scratch = self.net.scratch.0.lock().map_err(|_| {
                    candle_core::Error::Msg("fused sampler: scratch lock poisoned".into())
                })?;
                let need = n * v * d;
                let xs = match scratch.take() {
                    Some(mut buf) if buf.len() >= need => {
                        if self.net.poison {
                            fill_nan(dev, &mut buf)?;
                        }
                        buf
                    }
                    _ => output_buffer(dev, need, self.net.poison)?,
                };
                let xs = scratch.insert(xs);
                let ctx_len = 2 * (2 * d / 3) + 3;
                let mut ctx = output_buffer(dev, n * ctx_len, self.net.poison)?;
                let blocks = *n_blocks as i32;
                let precision = self.net.precision.suffix();
                // thread blocks per row of the last pass, the head's too
                let mut per_row = 1;
                for p in 0..=blocks {
                    let pass = dev.get_or_load_custom_func(
                        &format!("snt_pass{}_{suffix}_{precision}", pass_kind(p, blocks)),
                        MODULE_TC,
                        PTX_TC,
                    )?;
                    pass.set_attribute(
                        CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                        TC_SMEM_BYTES as i32,
                    )
                    .w()?;
                    per_row = blocks_per_row(dev, &pass, n, v, TC_THREADS, TC_SMEM_BYTES)?;
                    let cfg = LaunchConfig {
                        grid_dim: (per_row, n as u32, 1),
                        block_dim: (TC_THREADS, 1, 1),
                        shared_mem_bytes: TC_SMEM_BYTES,
                    };
                    let mut b = pass.builder();
                    b.arg(&z);
                    b.arg(&stats);
                    b.arg(&w);
                    b.arg(&mut *xs);
                    b.arg(&mut acc);
                    b.arg(&vi);
                    b.arg(&blocks);
                    b.arg(&p);
                    // SAFETY: each warp reads and writes its own tokens' activations and adds to
                    // its row's sums; the buffers have the sizes the kernel indexes.
                    unsafe { b.launch(cfg) }.w()?;
                }
                let head_ctx = dev.get_or_load_custom_func(
                    &format!("snt_head_ctx_{suffix}"),
                    MODULE_TC,
                    PTX_TC,
                )?;
                let mut b = head_ctx.builder();
                b.arg(&stats);
                b.arg(&w);
                b.arg(&acc);
                b.arg(&mut ctx);
                b.arg(&blocks);
                let row_cfg = LaunchConfig {
                    grid_dim: (n as u32, 1, 1),
                    block_dim: (TC_CTX_THREADS, 1, 1),
                    shared_mem_bytes: 0,
                };
                // SAFETY: one block per row writes that row's context.
                unsafe { b.launch(row_cfg) }.w()?;
                let head = dev.get_or_load_custom_func(
                    &format!("snt_head_{suffix}_{precision}"),
                    MODULE_TC,
                    PTX_TC,
                )?;
                let mut b = head.builder();
                b.arg(&z);
                b.arg(&stats);
                b.arg(&w);
                b.arg(&*xs);
                b.arg(&ctx);
                b.arg(&mut out);
                b.arg(&vi);
                b.arg(&blocks);
                let head_cfg = LaunchConfig {
                    grid_dim: (per_row, n as u32, 1),
                    block_dim: (TC_THREADS, 1, 1),
                    shared_mem_bytes: 0,
                };
                // SAFETY: each warp writes its own tokens' output logits.
                unsafe { b.launch(head_cfg) }.w()?;
            }
        }
        Ok((
            CudaStorage::wrap_cuda_slice(out, dev.clone()),
            Shape::from((n, v)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::{pass_kind, COMPILED_CONFIGS, PTX_TC};

    #[test]
    fn pass_kinds_follow_the_blocks() {
        let kinds = |blocks| {
            (0..=blocks)
                .map(|p| pass_kind(p, blocks))
                .collect::<Vec<_>>()
        };
        assert_eq!(kinds(4), [5, 7, 6, 6, 2]);
        assert_eq!(kinds(2), [5, 7, 2]);
        assert_eq!(kinds(1), [5, 3]);
    }

    #[test]
    fn every_pass_kind_has_a_compiled_kernel() {
        for (d, h, e, f) in COMPILED_CONFIGS {
            for scale in [0, 1] {
                for blocks in 1..=4 {
                    for p in 0..=blocks {
                        for precision in ["p0", "p2"] {
                            let name = format!(
                                "snt_pass{}_d{d}_h{h}_e{e}_f{f}_s{scale}_{precision}",
                                pass_kind(p, blocks)
                            );
                            assert!(
                                PTX_TC.contains(&format!(".entry {name}(")),
                                "no kernel {name}"
                            );
                        }
                    }
                }
            }
        }
    }
}
