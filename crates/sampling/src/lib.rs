//! adasamp's sampling core: logits in, distribution and token out.
//!
//! Every well-known sampling heuristic as a [`Stage`], chained into [`Pipeline`]s loaded from the
//! ASN YAML format or a flat [`SamplingConfig`], seeded portable sampling, heuristic grids, and
//! distribution statistics. No ML framework.

pub mod bench;
pub mod config;
pub mod error;
pub mod gof;
pub mod grid;
pub mod math;
pub mod optimal;
pub mod pipeline;
pub mod reference;
pub mod rng;
pub mod row;
pub mod sample;
pub mod select;
pub mod soft;
pub mod spec;
pub mod speculative;
pub mod stage;
pub mod stages;
pub mod stats;
pub mod synth;

pub use config::{FieldOrder, SamplingConfig, PRESETS};
pub use error::{Result, SamplingError};
pub use pipeline::{Pipeline, PipelineSet};
pub use row::{validate_logits, Row};
pub use sample::{
    draw, sample_batch, Distribution, Sample, SamplerState, SequenceSampler, TokenProb,
};
pub use spec::{PipelineFile, PipelineSpec, StageSpec};
pub use stage::{Context, Stage, StageState};
