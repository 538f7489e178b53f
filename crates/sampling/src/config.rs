//! The flat `SamplingConfig` (temperature/top-k/top-p/min-p/repetition penalty) and its presets,
//! mapped onto a pipeline in llama.cpp's default order — or in the temperature-first order of
//! vLLM, SGLang and HF transformers ([`FieldOrder`]) — and back ([`SamplingConfig::from_spec`]:
//! which pipelines an OpenAI-compatible server's flat fields express exactly).

use serde::{Deserialize, Serialize};

use crate::error::{Result, SamplingError};
use crate::pipeline::Pipeline;
use crate::spec::{ParamReader, PipelineSpec, StageSpec};

/// The order in which a server applies the flat sampling fields (its stage order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOrder {
    /// llama.cpp's default order, also `adasamp serve`'s: `repetition_penalty → top_k → top_p →
    /// min_p → temperature` (greedy when temperature is 0).
    LlamaCpp,
    /// vLLM's, SGLang's and HF transformers': `repetition_penalty → temperature → top_k → top_p →
    /// min_p` (greedy when temperature is 0).
    TemperatureFirst,
}

impl FieldOrder {
    /// The stages in this order, as written in messages.
    pub fn describe(self) -> &'static str {
        match self {
            FieldOrder::LlamaCpp => "repetition_penalty → top_k → top_p → min_p → temperature",
            FieldOrder::TemperatureFirst => {
                "repetition_penalty → temperature → top_k → top_p → min_p"
            }
        }
    }
}

/// The stages a flat configuration has fields for.
const FLAT_STAGES: &str = "temperature, top_k, top_p, min_p, repetition_penalty, greedy";

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

    /// The equivalent pipeline spec in llama.cpp's order (stages that are off are left out).
    pub fn to_spec(&self, name: &str) -> Result<PipelineSpec> {
        self.to_spec_in(name, FieldOrder::LlamaCpp)
    }

    /// The equivalent pipeline spec with the stages in `order` (stages that are off are left
    /// out; greedy replaces every stage after the penalty).
    pub fn to_spec_in(&self, name: &str, order: FieldOrder) -> Result<PipelineSpec> {
        self.validate()?;
        let mut s = Vec::new();
        if self.repetition_penalty != 1.0 {
            s.push(StageSpec::new(
                "repetition_penalty",
                &[("penalty", self.repetition_penalty)],
            ));
        }
        let temperature = (self.temperature != 1.0)
            .then(|| StageSpec::new("temperature", &[("temperature", self.temperature)]));
        if self.is_greedy() {
            s.push(StageSpec::new("greedy", &[]));
        } else {
            if order == FieldOrder::TemperatureFirst {
                s.extend(temperature.clone());
            }
            if self.top_k > 0 {
                s.push(StageSpec::new("top_k", &[("top_k", self.top_k as f64)]));
            }
            if self.top_p < 1.0 {
                s.push(StageSpec::new("top_p", &[("top_p", self.top_p)]));
            }
            if self.min_p > 0.0 {
                s.push(StageSpec::new("min_p", &[("min_p", self.min_p)]));
            }
            if order == FieldOrder::LlamaCpp {
                s.extend(temperature);
            }
        }
        Ok(PipelineSpec {
            name: name.to_string(),
            weight: 1.0,
            processors: s,
        })
    }

    /// The flat configuration whose pipeline in `order` ([`SamplingConfig::to_spec_in`]) is
    /// exactly `spec` — stages at their neutral value (temperature 1, top_k 0, top_p 1,
    /// min_p 0, repetition penalty 1), which change nothing, may appear anywhere. Errors: an
    /// invalid spec; [`SamplingError::NotFlat`] naming the first stage no flat field expresses
    /// (another stage kind, a parameter besides the field's own, a repeated stage, a
    /// repetition penalty over a window rather than the whole history, or a stage out of
    /// `order`).
    pub fn from_spec(spec: &PipelineSpec, order: FieldOrder) -> Result<Self> {
        // Ranges and parameter types are the stages' own checks.
        Pipeline::from_spec(spec.clone())?;
        let not_flat = |index: usize, reason: String| SamplingError::NotFlat {
            pipeline: spec.name.clone(),
            stage: spec.processors[index].name.clone(),
            index,
            reason,
        };
        let mut c = Self::default();
        let mut effective = Vec::new();
        for (i, st) in spec.processors.iter().enumerate() {
            if spec.processors[..i].iter().any(|p| p.name == st.name) {
                return Err(not_flat(
                    i,
                    "appears twice; each flat field is set once".into(),
                ));
            }
            let mut p = ParamReader::new(&spec.name, &st.name, &st.params);
            let neutral = match st.name.as_str() {
                "temperature" => {
                    c.temperature = p.f64_req("temperature")?;
                    c.temperature == 1.0
                }
                "top_k" => {
                    c.top_k = p.int_checked("top_k", None, |k| k >= 0, "must be ≥ 0")? as usize;
                    c.top_k == 0
                }
                "top_p" => {
                    c.top_p = p.f64_req("top_p")?;
                    c.top_p == 1.0
                }
                "min_p" => {
                    c.min_p = p.f64_req("min_p")?;
                    c.min_p == 0.0
                }
                "repetition_penalty" => {
                    c.repetition_penalty = p.f64_req("penalty")?;
                    if p.last_n(-1)?.is_some() {
                        return Err(not_flat(
                            i,
                            "penalises a window of the history (`last_n`); the flat field \
                             penalises the whole history"
                                .into(),
                        ));
                    }
                    c.repetition_penalty == 1.0
                }
                "greedy" => {
                    c.do_sample = false;
                    false
                }
                other => {
                    return Err(not_flat(
                        i,
                        format!("`{other}` has no flat sampling field (those are: {FLAT_STAGES})"),
                    ))
                }
            };
            if matches!(st.name.as_str(), "top_k" | "top_p" | "min_p") && p.min_keep()? != 1 {
                return Err(not_flat(
                    i,
                    "keeps more than one token at least (`min_tokens_to_keep`), which no flat \
                     field sets"
                        .into(),
                ));
            }
            p.finish().map_err(|e| not_flat(i, e.to_string()))?;
            if !neutral {
                effective.push(i);
            }
        }
        let back = c.to_spec_in(&spec.name, order)?;
        let got: Vec<&str> = effective
            .iter()
            .map(|&i| spec.processors[i].name.as_str())
            .collect();
        let want: Vec<&str> = back.processors.iter().map(|s| s.name.as_str()).collect();
        if got != want {
            let k = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
            let index = effective.get(k).or(effective.last()).copied().unwrap_or(0);
            let reason = if c.is_greedy() && effective.len() > 1 {
                "a flat configuration that decodes greedily has no other stage but the \
                 repetition penalty"
                    .to_string()
            } else {
                format!("out of order: a server applies {}", order.describe())
            };
            return Err(not_flat(index, reason));
        }
        Ok(c)
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

    fn names(spec: &PipelineSpec) -> Vec<&str> {
        spec.processors.iter().map(|s| s.name.as_str()).collect()
    }

    fn spec(yaml: &str) -> PipelineSpec {
        crate::spec::PipelineFile::from_yaml(
            &format!("pipelines:\n  - name: p\n    processors: {yaml}\n"),
            None,
        )
        .unwrap()
        .pipelines
        .remove(0)
    }

    #[test]
    fn temperature_first_order() {
        let c = SamplingConfig::preset("creative").unwrap();
        let s = c.to_spec_in("c", FieldOrder::TemperatureFirst).unwrap();
        assert_eq!(
            names(&s),
            ["repetition_penalty", "temperature", "top_k", "top_p"]
        );
        assert_eq!(
            c.to_spec("c").unwrap(),
            c.to_spec_in("c", FieldOrder::LlamaCpp).unwrap()
        );
    }

    #[test]
    fn grid_pipelines_are_flat_in_the_temperature_first_order_only() {
        let grid = crate::grid::full_grid(crate::grid::Family::Gemma);
        let mut flat = 0;
        for p in &grid.pipelines {
            let first = SamplingConfig::from_spec(p, FieldOrder::TemperatureFirst);
            // gemma's default is top_p then top_k: a temperature-first server applies top_k first
            let expect_flat = matches!(names(p)[..], [_] | [_, "top_p" | "top_k" | "min_p"]);
            match first {
                Ok(c) => {
                    assert!(expect_flat, "{}", p.name);
                    flat += 1;
                    // the flat fields give back the same stages
                    let back = c.to_spec_in(&p.name, FieldOrder::TemperatureFirst).unwrap();
                    let t1 = p.processors[0].params["temperature"].as_f64() == Some(1.0);
                    let want: Vec<&str> = names(p).into_iter().skip(usize::from(t1)).collect();
                    assert_eq!(names(&back), want, "{}", p.name);
                }
                Err(e) => {
                    assert!(!expect_flat, "{}: {e}", p.name);
                    let e = e.to_string();
                    let stage = &p.processors[1].name;
                    assert!(
                        e.contains(&format!("`{stage}`")) && e.contains(&p.name),
                        "{e}"
                    );
                }
            }
            // llama.cpp applies temperature last: only temperature alone, temperature 1, or
            // temperature with top_k (as a flat config: top_k then temperature) differ
            if let Ok(c) = SamplingConfig::from_spec(p, FieldOrder::LlamaCpp) {
                let t1 = p.processors[0].params["temperature"].as_f64() == Some(1.0);
                assert!(t1 || p.processors.len() == 1, "{}: {c:?}", p.name);
            }
        }
        // 12 temperatures × (alone + top_p 5 + top_k 5 + min_p 4)
        assert_eq!(flat, 12 * 15);
    }

    #[test]
    fn what_is_not_flat_is_named() {
        let cases = [
            ("[{name: xtc, params: {probability: 0.5}}]", "`xtc` has no flat"),
            (
                "[{name: temperature, params: {temperature: 0.5}}, {name: temperature, params: {temperature: 0.5}}]",
                "appears twice",
            ),
            ("[{name: repetition_penalty, params: {penalty: 1.1, last_n: 64}}]", "window"),
            ("[{name: top_p, params: {top_p: 0.9, min_tokens_to_keep: 2}}]", "min_tokens_to_keep"),
            (
                "[{name: top_p, params: {top_p: 0.9}}, {name: temperature, params: {temperature: 0.5}}]",
                "out of order",
            ),
            (
                "[{name: temperature, params: {temperature: 0.5}}, {name: greedy}]",
                "greedily",
            ),
        ];
        for (yaml, want) in cases {
            let e =
                SamplingConfig::from_spec(&spec(yaml), FieldOrder::TemperatureFirst).unwrap_err();
            assert!(matches!(e, SamplingError::NotFlat { .. }), "{yaml}: {e}");
            let e = e.to_string();
            assert!(
                e.contains(want) && e.contains("pipeline `p`"),
                "{yaml}: {e}"
            );
        }
        // an invalid stage is the stage's own error
        let e = SamplingConfig::from_spec(
            &spec("[{name: top_p, params: {top_p: 7}}]"),
            FieldOrder::LlamaCpp,
        )
        .unwrap_err();
        assert!(matches!(e, SamplingError::InvalidParam { .. }), "{e}");
        // neutral stages are allowed anywhere; the penalty over the whole history is flat
        let c = SamplingConfig::from_spec(
            &spec("[{name: top_p, params: {top_p: 1.0}}, {name: repetition_penalty, params: {penalty: 1.1, last_n: -1}}, {name: temperature, params: {temperature: 0.7}}, {name: greedy}]"),
            FieldOrder::LlamaCpp,
        );
        assert!(c.is_err(), "greedy after temperature: {c:?}");
        let c = SamplingConfig::from_spec(
            &spec("[{name: top_p, params: {top_p: 1.0}}, {name: repetition_penalty, params: {penalty: 1.1, last_n: -1}}, {name: greedy}]"),
            FieldOrder::LlamaCpp,
        )
        .unwrap();
        assert!(c.is_greedy() && c.repetition_penalty == 1.1);
    }

    proptest::proptest! {
        #[test]
        fn flat_configs_round_trip(
            t in proptest::sample::select(vec![0.0, 0.3, 1.0, 1.7]),
            k in proptest::sample::select(vec![0usize, 1, 40]),
            p in proptest::sample::select(vec![0.5, 0.95, 1.0]),
            m in proptest::sample::select(vec![0.0, 0.05]),
            r in proptest::sample::select(vec![1.0, 1.1]),
            first in proptest::bool::ANY,
        ) {
            let order = if first { FieldOrder::TemperatureFirst } else { FieldOrder::LlamaCpp };
            let c = SamplingConfig { temperature: t, top_k: k, top_p: p, min_p: m, repetition_penalty: r, do_sample: true, seed: None };
            let s = c.to_spec_in("x", order).unwrap();
            let back = SamplingConfig::from_spec(&s, order).unwrap();
            proptest::prop_assert_eq!(back.to_spec_in("x", order).unwrap(), s);
            proptest::prop_assert_eq!(back.is_greedy(), c.is_greedy());
        }
    }
}
