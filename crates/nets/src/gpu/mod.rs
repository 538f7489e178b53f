//! Learned samplers on an NVIDIA GPU with fused CUDA kernels (the `cuda` feature; the kernels'
//! PTX is built by the crate's build script with nvcc, see docs/gpu.md).
//!
//! - [`fused`]: [`FusedSampler`], the inference forward of the SamplingNetwork (`n_blocks + 4`
//!   kernel launches, matrix products on tensor cores at a [`FusedPrecision`]) and of the
//!   SimpleDistributionAwareTransform (2 launches, f32), equal to
//!   [`crate::LearnedSampler::forward`] up to rounding.
//! - [`bench`]: [`gpu_bench_rows`], the learned-sampler rows of `adasamp bench-gpu` (fused
//!   against plain candle, measured in the same run).

pub mod bench;
pub mod fused;

pub use bench::{gpu_bench_rows, GpuBenchRow};
pub use fused::{FusedPrecision, FusedSampler};
