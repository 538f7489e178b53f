//! Learned samplers (Adaptive Sampling Networks, SPEC §2) on candle: raw logits `[N, V]` in, new
//! logits `[N, V]` out.
//!
//! - [`config`]: [`SamplerConfig`], the YAML architecture description, validated.
//! - [`layers`]: SwiGLU, LayerNorm, linear attention, the soft truncation gate, stable
//!   softplus / logsigmoid.
//! - [`arch`]: the three architectures and the shared `-inf` (masked token) handling.
//! - [`sampler`]: [`LearnedSampler`] (construction from a `VarMap`/`VarBuilder`, seeded init,
//!   forward, named parameters; the naming scheme is documented there).
//! - [`params`]: parameter manifest, seeded initialisation, weight checks, [`describe`].
//! - [`loss`]: [`TruncatedLogitsLoss`] and the plain-slice [`row_divergence`].
//! - [`analysis`]: per-position KL / truncated-mass comparison of a sampler and the identity
//!   with a target pipeline, aggregates, top tokens for plots.
//! - [`fast`]: [`FastSampler`], the allocation-free single-thread CPU inference path, FLOP
//!   counts per token, and [`FastGrad`], the fast CPU forward + loss + backward for training.
//! - `gpu` (feature `cuda`): fused CUDA kernels for the SamplingNetwork's forward and the
//!   GPU benchmark rows (fused against plain candle).
//! - [`learned_stage`]: [`LearnedStage`], a learned sampler as a pipeline stage `learned`
//!   ([`register_learned_stage`]).
//! - [`checkpoint`]: checkpoint directories (safetensors + JSON), atomic save, checked load,
//!   training state for resuming.
//! - [`train`]: training on replayed base-model logits: records, replay, cache, AdamW,
//!   schedules, the training loop with evaluation, checkpoints and exact resume.
//!
//! Every architecture is exactly permutation-equivariant over the vocabulary axis.

#![warn(missing_docs)]

pub mod analysis;
pub mod arch;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod fast;
#[cfg(feature = "cuda")]
pub mod gpu;
pub mod layers;
pub mod learned_stage;
pub mod loss;
pub mod params;
pub mod sampler;
pub mod soft_train;
pub mod train;

pub use checkpoint::{
    AdamWState, Checkpoint, CheckpointMeta, LrScheduleState, OptimizerMoments, RngState,
    TrainingState,
};
pub use config::{DistributionAwareConfig, LocalConfig, SamplerConfig, SamplingNetworkConfig};
pub use error::{NetsError, Result};
pub use fast::{FastGrad, FastSampler, FlopCount};
pub use learned_stage::{register_learned_stage, LearnedStage};
pub use loss::{row_divergence, LossOutput, RowDivergence, TruncatedLogitsLoss};
pub use params::{describe, param_specs, parameter_count, ParamSpec, Summary};
pub use sampler::LearnedSampler;
