//! Learned samplers on an NVIDIA GPU with fused CUDA kernels (the `cuda` feature; the kernels'
//! PTX is built by the crate's build script with nvcc, see docs/gpu.md).
//!
//! - [`fused`]: [`FusedSampler`], the inference forward of the SamplingNetwork (`n_blocks + 4`
//!   kernel launches, matrix products on tensor cores at a [`FusedPrecision`]) and of the
//!   SimpleDistributionAwareTransform (2 launches, f32), equal to
//!   [`crate::LearnedSampler::forward`] up to rounding.
//! - [`fused_training`]: [`FusedTrainer`], a SamplingNetwork's training step (forward, loss,
//!   backward: the loss sums and every parameter's gradient) as fused kernels plus one cuBLAS
//!   GEMM per Linear layer, equal to candle's autograd up to f32 rounding.
//! - [`adamw`]: [`adamw_step`], the AdamW update of every parameter as one kernel launch, equal
//!   to [`crate::train::AdamW::step`] (the trainer's optimizer with the fused engine).
//! - [`bench`]: [`gpu_bench_rows`], the learned-sampler rows of `adasamp bench-gpu` (fused
//!   against plain candle, measured in the same run).

pub mod adamw;
pub mod bench;
pub mod fused;
pub mod fused_training;

pub use adamw::{adamw_step, AdamWTensors};
pub use bench::{gpu_bench_rows, GpuBenchRow};
pub use fused::{FusedPrecision, FusedSampler};
pub use fused_training::{FusedStep, FusedTrainer, PackedParameters};
