//! The flat `SamplingConfig` (temperature/top-k/top-p/min-p/repetition penalty) and its presets,
//! mapped onto a pipeline in llama.cpp's default order.

use serde::{Deserialize, Serialize};

use crate::error::{Result, SamplingError};
use crate::pipeline::Pipeline;
use crate::spec::{PipelineSpec, StageSpec};

/// A flat sampling configuration. Maps to `repetition_penalty → top_k → top_p → min_p →
/// temperature → sample` (greedy when `do_sample` is false or `temperature` is 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingConfig {
    /// Temperature ≥ 0 (0 = greedy).
    pub temperature: f64,
    /// Top-k (0 = off).
    pub top_k: usize,
    /// Top-p in (0, 1] (1 = off).
    pub top_p: f64,
    /// Min-p in [0, 1] (0 = off).
    pub min_p: f64,
    /// Repetition penalty > 0 (1 = off).
    pub repetition_penalty: f64,
    /// Sample (true) or take the arg-max (false).
    pub do_sample: bool,
    /// Seed for the sampler's RNG.
    pub seed: Option<u64>,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            do_sample: true,
            seed: None,
        }
    }
}

/// Names of the presets.
pub const PRESETS: &[&str] = &["creative", "precise", "balanced", "deterministic"];

impl SamplingConfig {
    /// A preset: creative (T 1.2, top_p 0.95, top_k 100, rep 1.1), precise (T 0.3, top_p 0.9,
    /// top_k 20, rep 1.05), balanced (T 0.7, top_p 0.9, top_k 50), deterministic (greedy).
    pub fn preset(name: &str) -> Result<Self> {
        let d = Self::default();
        Ok(match name {
            "creative" => Self {
                temperature: 1.2,
                top_p: 0.95,
                top_k: 100,
                repetition_penalty: 1.1,
                ..d
            },
            "precise" => Self {
                temperature: 0.3,
                top_p: 0.9,
                top_k: 20,
                repetition_penalty: 1.05,
                ..d
            },
            "balanced" => Self {
                temperature: 0.7,
                top_p: 0.9,
                top_k: 50,
                ..d
            },
            "deterministic" => Self {
                temperature: 0.0,
                do_sample: false,
                ..d
            },
            other => return Err(SamplingError::UnknownPreset(other.to_string())),
        })
    }

    /// Checks every field's range.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, value: f64, reason: &str| {
            Err(SamplingError::InvalidConfig {
                field: field.into(),
                value: value.to_string(),
                reason: reason.into(),
            })
        };
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad(
                "temperature",
                self.temperature,
                "must be ≥ 0 and finite (0 = greedy)",
            );
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p", self.top_p, "must be in (0, 1]");
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad("min_p", self.min_p, "must be in [0, 1]");
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad(
                "repetition_penalty",
                self.repetition_penalty,
                "must be > 0 and finite",
            );
        }
        Ok(())
    }

    /// Whether this configuration decodes greedily.
    pub fn is_greedy(&self) -> bool {
        !self.do_sample || self.temperature == 0.0
    }

    /// The equivalent pipeline spec (stages that are off are left out).
    pub fn to_spec(&self, name: &str) -> Result<PipelineSpec> {
        self.validate()?;
        let mut s = Vec::new();
        if self.repetition_penalty != 1.0 {
            s.push(StageSpec::new(
                "repetition_penalty",
                &[("penalty", self.repetition_penalty)],
            ));
        }
        if self.is_greedy() {
            s.push(StageSpec::new("greedy", &[]));
        } else {
            if self.top_k > 0 {
                s.push(StageSpec::new("top_k", &[("top_k", self.top_k as f64)]));
            }
            if self.top_p < 1.0 {
                s.push(StageSpec::new("top_p", &[("top_p", self.top_p)]));
            }
            if self.min_p > 0.0 {
                s.push(StageSpec::new("min_p", &[("min_p", self.min_p)]));
            }
            if self.temperature != 1.0 {
                s.push(StageSpec::new(
                    "temperature",
                    &[("temperature", self.temperature)],
                ));
            }
        }
        Ok(PipelineSpec {
            name: name.to_string(),
            weight: 1.0,
            processors: s,
        })
    }

    /// The equivalent pipeline.
    pub fn to_pipeline(&self, name: &str) -> Result<Pipeline> {
        Pipeline::from_spec(self.to_spec(name)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_map_to_llama_cpp_order() {
        let names: Vec<String> = SamplingConfig::preset("creative")
            .unwrap()
            .to_spec("c")
            .unwrap()
            .processors
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(
            names,
            ["repetition_penalty", "top_k", "top_p", "temperature"]
        );
        let g = SamplingConfig::preset("deterministic")
            .unwrap()
            .to_spec("d")
            .unwrap();
        assert_eq!(g.processors[0].name, "greedy");
        assert!(SamplingConfig::preset("wild").is_err());
        for p in PRESETS {
            SamplingConfig::preset(p).unwrap().to_pipeline(p).unwrap();
        }
    }

    #[test]
    fn bad_fields_are_named() {
        let c = SamplingConfig {
            top_p: 1.5,
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("top_p"));
        let c = SamplingConfig {
            temperature: -1.0,
            ..Default::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("temperature"));
    }
}
