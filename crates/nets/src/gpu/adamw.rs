//! [`adamw_step`]: one AdamW update of many f32 tensors on a CUDA device as a single kernel
//! launch (`adamw.cu`), in place, equal to the candle [`crate::train::AdamW::step`] (the same
//! operations, each rounded to f32 as candle's tensor ops round it).
//!
//! For each parameter θ with gradient g, at update `t` with learning rate `lr`:
//! `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
//! `θ ← θ·(1 − lr·λ) − lr·(m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε)`.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{
    CudaStream, DevicePtr, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::WrapErr;
use candle_core::{Device, Storage, Tensor};

use crate::checkpoint::AdamWState;
use crate::error::{NetsError, Result};

/// PTX of `adamw.cu`, compiled by the crate's build script.
const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/adamw.ptx"));
/// Name the PTX module is cached under in candle's CUDA device.
const MODULE: &str = "adasamp_nets_adamw";
/// Threads per block of the kernel.
const THREADS: u32 = 256;
/// Most thread blocks per tensor (they stride over larger tensors).
const MAX_BLOCKS: usize = 1024;
/// 64-bit entries per tensor in the kernel's table (its `ADAMW_ENTRIES`).
const ENTRIES: usize = 5;

/// One parameter of an [`adamw_step`]: the tensors the update reads and writes in place.
#[derive(Clone, Copy, Debug)]
pub struct AdamWTensors<'a> {
    /// The parameter θ (updated in place, as `Var::set` would).
    pub theta: &'a Tensor,
    /// Its gradient (`None`: zero, the moments still decay).
    pub grad: Option<&'a Tensor>,
    /// The first moment (updated in place).
    pub m: &'a Tensor,
    /// The second moment (updated in place).
    pub v: &'a Tensor,
}

/// Applies update `state.t` (already counted) of AdamW with hyper-parameters `state` and
/// learning rate `lr` to every entry of `params`, in place, as one kernel launch on their CUDA
/// device. Every tensor must be f32, contiguous and on that one device, each gradient and moment
/// of its parameter's shape; errors name the parameter and what is wrong.
pub fn adamw_step(params: &[(&str, AdamWTensors<'_>)], state: &AdamWState, lr: f64) -> Result<()> {
    let Some((_, first)) = params.first() else {
        return Ok(());
    };
    let device = first.theta.device().clone();
    let Device::Cuda(cuda) = &device else {
        return Err(NetsError::bad_request(
            "device",
            format!("{device:?}"),
            "the fused AdamW kernel runs on a CUDA device",
        ));
    };
    let stream = cuda.cuda_stream();
    let mut table = Vec::with_capacity(ENTRIES * params.len());
    let mut longest = 1usize;
    for (name, p) in params {
        let len = p.theta.elem_count();
        let entry = |what: &str, t: &Tensor| -> Result<u64> {
            let what = format!("{what} of `{name}`");
            if t.dims() != p.theta.dims() {
                return Err(NetsError::shape(
                    what,
                    format!("{:?} (the parameter's)", p.theta.dims()),
                    format!("{:?}", t.dims()),
                ));
            }
            address(t, &what, &device, &stream)
        };
        table.push(entry("parameter", p.theta)?);
        table.push(match p.grad {
            Some(g) => entry("gradient", g)?,
            None => 0,
        });
        table.push(entry("first moment", p.m)?);
        table.push(entry("second moment", p.v)?);
        table.push(len as u64);
        longest = longest.max(len);
    }
    let table = stream.clone_htod(&table).w()?;
    let t = i32::try_from(state.t).unwrap_or(i32::MAX);
    let (b1, b2) = (state.beta1, state.beta2);
    let f = |x: f64| x as f32;
    let (b1f, omb1, b2f, omb2) = (f(b1), f(1.0 - b1), f(b2), f(1.0 - b2));
    let inv_bc1 = f(1.0 / (1.0 - b1.powi(t)));
    let inv_bc2 = f(1.0 / (1.0 - b2.powi(t)));
    let (eps, decay, lrf) = (f(state.eps), f(1.0 - lr * state.weight_decay), f(lr));
    let blocks = longest.div_ceil(THREADS as usize).min(MAX_BLOCKS) as u32;
    let cfg = LaunchConfig {
        grid_dim: (blocks, params.len() as u32, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let func = cuda.get_or_load_custom_func("adamw_step", MODULE, PTX)?;
    let mut b = func.builder();
    b.arg(&table);
    for x in [
        &b1f, &omb1, &b2f, &omb2, &inv_bc1, &inv_bc2, &eps, &decay, &lrf,
    ] {
        b.arg(x);
    }
    // SAFETY: the table holds, per tensor, the addresses of its parameter, gradient (or 0) and
    // moments, all f32, contiguous, of the element count that follows them, on this device; the
    // kernel reads and writes element i < count of each, all on the device's one stream.
    unsafe { b.launch(cfg) }.w()?;
    Ok(())
}

/// The device address of the first element of `t` (f32, contiguous, on `device`), `what` naming
/// it in errors.
pub(crate) fn address(t: &Tensor, what: &str, device: &Device, stream: &CudaStream) -> Result<u64> {
    if !t.device().same_device(device) {
        return Err(NetsError::bad_request(
            what,
            format!("{:?}", t.device()),
            format!("must be on the parameters' device {device:?}"),
        ));
    }
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cuda(cs) = &*storage else {
        return Err(NetsError::bad_request(
            what,
            format!("{:?}", t.device()),
            "must be on a CUDA device",
        ));
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        return Err(NetsError::bad_request(
            what,
            "strided",
            "must be contiguous",
        ));
    };
    let slice = cs
        .as_cuda_slice::<f32>()
        .map_err(|_| NetsError::bad_request(what, format!("{:?}", cs.dtype()), "must be f32"))?;
    let view = slice.slice(start..end);
    let (ptr, _record) = view.device_ptr(stream);
    Ok(ptr)
}
