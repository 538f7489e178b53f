//! A request's sampling fields → an adasamp pipeline.
//!
//! Fields (OpenAI's, plus the extra ones llama.cpp's and vLLM's servers accept) map onto
//! stages in llama.cpp's order:
//! `logit_bias → min_tokens → repetition/frequency/presence penalties → dry → top_n_sigma →
//! top_k → typical → top_p → min_p → xtc → temperature` then, with `mirostat`, `mirostat_v1/v2`
//! (which replaces the truncation stages: combining them is refused), and `greedy` when
//! `temperature` is 0. A field at its neutral value adds no stage.
//!
//! With `sampler` (an installed pipeline or learned sampler), the request's *constraints* —
//! `logit_bias` and `min_tokens` — are applied first, then the named pipeline as installed.
//! Every other sampling field must then be absent or at its neutral value (temperature 1,
//! top_p 1, top_k 0/-1, min_p 0, typical_p 1, penalties 0 / repetition 1, top_n_sigma -1,
//! xtc_probability 0, dry_multiplier 0, mirostat 0): a request that sets one is refused with a
//! 400 naming it, rather than silently running a different sampler than the one named.

use adasamp_engine::tokenizer::TextTokenizer;
use adasamp_sampling::spec::{number_value, Mapping, Value as YamlValue};
use adasamp_sampling::{Pipeline, PipelineSpec, StageSpec};
use serde_json::Value;

use crate::error::ApiError;
use crate::fields::{describe, Fields};
use crate::samplers::InstalledSampler;

/// Most `logit_bias` entries a request may give.
pub const MAX_LOGIT_BIAS: usize = 1024;
/// Most DRY sequence breakers a request may give.
pub const MAX_BREAKERS: usize = 64;
/// llama.cpp's default DRY sequence breakers.
pub const DEFAULT_BREAKERS: &[&str] = &["\n", ":", "\"", "*"];

/// The sampling fields of a request, range-checked (absent = neutral).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SamplingFields {
    /// ≥ 0; 0 = greedy; default 1.
    pub temperature: Option<f64>,
    /// (0, 1].
    pub top_p: Option<f64>,
    /// ≥ 0 or -1 (0 and -1 = off).
    pub top_k: Option<i64>,
    /// [0, 1].
    pub min_p: Option<f64>,
    /// (0, 1].
    pub typical_p: Option<f64>,
    /// > 0.
    pub repetition_penalty: Option<f64>,
    /// [-2, 2].
    pub presence_penalty: Option<f64>,
    /// [-2, 2].
    pub frequency_penalty: Option<f64>,
    /// > 0 or -1 (off).
    pub top_n_sigma: Option<f64>,
    /// [0, 1].
    pub xtc_probability: Option<f64>,
    /// [0, 1].
    pub xtc_threshold: Option<f64>,
    /// ≥ 0.
    pub dry_multiplier: Option<f64>,
    /// ≥ 1.
    pub dry_base: Option<f64>,
    /// ≥ 0.
    pub dry_allowed_length: Option<i64>,
    /// ≥ -1 (-1 = whole history).
    pub dry_penalty_last_n: Option<i64>,
    /// Strings, tokenized.
    pub dry_sequence_breakers: Option<Vec<String>>,
    /// 0, 1 or 2.
    pub mirostat: Option<i64>,
    /// ≥ 0.
    pub mirostat_tau: Option<f64>,
    /// ≥ 0.
    pub mirostat_eta: Option<f64>,
    /// ≥ 0.
    pub min_tokens: Option<i64>,
    /// `(token id, bias)`, bias in [-100, 100].
    pub logit_bias: Vec<(u32, f64)>,
}

impl SamplingFields {
    /// Reads and range-checks the sampling fields of a request.
    pub fn parse(f: &mut Fields<'_>) -> Result<Self, ApiError> {
        let unit = |v: f64| (0.0..=1.0).contains(&v);
        let open_unit = |v: f64| v > 0.0 && v <= 1.0;
        let pen = |v: f64| (-2.0..=2.0).contains(&v);
        Ok(Self {
            temperature: f.f64_in("temperature", |v| v >= 0.0, "must be ≥ 0 (0 = greedy)")?,
            top_p: f.f64_in("top_p", open_unit, "must be in (0, 1]")?,
            top_k: f.i64_in("top_k", |v| v >= -1, "must be ≥ 0 (0 or -1 = off)")?,
            min_p: f.f64_in("min_p", unit, "must be in [0, 1]")?,
            typical_p: f.f64_in("typical_p", open_unit, "must be in (0, 1]")?,
            repetition_penalty: f.f64_in("repetition_penalty", |v| v > 0.0, "must be > 0")?,
            presence_penalty: f.f64_in("presence_penalty", pen, "must be in [-2, 2]")?,
            frequency_penalty: f.f64_in("frequency_penalty", pen, "must be in [-2, 2]")?,
            top_n_sigma: f.f64_in(
                "top_n_sigma",
                |v| v > 0.0 || v == -1.0,
                "must be > 0 (or -1 = off)",
            )?,
            xtc_probability: f.f64_in("xtc_probability", unit, "must be in [0, 1]")?,
            xtc_threshold: f.f64_in("xtc_threshold", unit, "must be in [0, 1]")?,
            dry_multiplier: f.f64_in("dry_multiplier", |v| v >= 0.0, "must be ≥ 0")?,
            dry_base: f.f64_in("dry_base", |v| v >= 1.0, "must be ≥ 1")?,
            dry_allowed_length: f.i64_in("dry_allowed_length", |v| v >= 0, "must be ≥ 0")?,
            dry_penalty_last_n: f.i64_in(
                "dry_penalty_last_n",
                |v| v >= -1,
                "must be ≥ -1 (-1 = whole history)",
            )?,
            dry_sequence_breakers: match f.raw("dry_sequence_breakers") {
                None => None,
                Some(_) => Some(f.strings("dry_sequence_breakers", MAX_BREAKERS)?),
            },
            mirostat: f.i64_in("mirostat", |v| (0..=2).contains(&v), "must be 0, 1 or 2")?,
            mirostat_tau: f.f64_in("mirostat_tau", |v| v >= 0.0, "must be ≥ 0")?,
            mirostat_eta: f.f64_in("mirostat_eta", |v| v >= 0.0, "must be ≥ 0")?,
            min_tokens: f.i64_in("min_tokens", |v| v >= 0, "must be ≥ 0")?,
            logit_bias: logit_bias(f.raw("logit_bias"))?,
        })
    }

    /// The shaping fields set to a non-neutral value, by name (what a named sampler refuses).
    pub fn shaping_fields_set(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut off = |name: &'static str, set: bool| {
            if set {
                out.push(name);
            }
        };
        off("temperature", self.temperature.is_some_and(|v| v != 1.0));
        off("top_p", self.top_p.is_some_and(|v| v != 1.0));
        off("top_k", self.top_k.is_some_and(|v| v > 0));
        off("min_p", self.min_p.is_some_and(|v| v != 0.0));
        off("typical_p", self.typical_p.is_some_and(|v| v != 1.0));
        off(
            "repetition_penalty",
            self.repetition_penalty.is_some_and(|v| v != 1.0),
        );
        off(
            "presence_penalty",
            self.presence_penalty.is_some_and(|v| v != 0.0),
        );
        off(
            "frequency_penalty",
            self.frequency_penalty.is_some_and(|v| v != 0.0),
        );
        off("top_n_sigma", self.top_n_sigma.is_some_and(|v| v > 0.0));
        off(
            "xtc_probability",
            self.xtc_probability.is_some_and(|v| v > 0.0),
        );
        off(
            "dry_multiplier",
            self.dry_multiplier.is_some_and(|v| v > 0.0),
        );
        off("mirostat", self.mirostat.is_some_and(|v| v > 0));
        out
    }

    /// The pipeline for one choice sampled with `seed` (the `xtc` stage's own RNG is seeded
    /// from it too): the fields' stages, or the constraints followed by `sampler` (see the
    /// module doc). `tok` tokenizes DRY breakers and gives the EOS ids `min_tokens` holds back.
    pub fn pipeline(
        &self,
        sampler: Option<(&str, &InstalledSampler)>,
        seed: u64,
        tok: &TextTokenizer,
    ) -> Result<Pipeline, ApiError> {
        let mut constraints = Vec::new();
        if !self.logit_bias.is_empty() {
            let vocab = tok.vocab_size();
            if let Some((id, _)) = self.logit_bias.iter().find(|(id, _)| *id as usize >= vocab) {
                return Err(ApiError::invalid(
                    "logit_bias",
                    format!("token {id} is outside the vocabulary of {vocab}"),
                ));
            }
            let mut m = Mapping::new();
            for &(id, b) in &self.logit_bias {
                m.insert(YamlValue::Number((id as u64).into()), number_value(b));
            }
            constraints.push(StageSpec::new("logit_bias", &[]).with("bias", YamlValue::Mapping(m)));
        }
        if let Some(k) = self.min_tokens.filter(|&k| k > 0) {
            let eos = tok
                .eos_ids()
                .iter()
                .map(|&i| YamlValue::Number((i as u64).into()))
                .collect();
            constraints.push(
                StageSpec::new("min_tokens", &[("min_tokens", k as f64)])
                    .with("eos_ids", YamlValue::Sequence(eos)),
            );
        }
        if let Some((name, installed)) = sampler {
            if let Some(field) = self.shaping_fields_set().first() {
                return Err(ApiError::invalid(
                    field,
                    format!(
                        "cannot be combined with sampler `{name}`, which fixes the sampling \
                         (only logit_bias, min_tokens and seed apply with a named sampler)"
                    ),
                ));
            }
            let first = build(constraints, "request")?;
            return Ok(Pipeline::chain(name, first, installed.pipeline.clone()));
        }
        let mut s = constraints;
        self.shaping_stages(&mut s, seed, tok)?;
        build(s, "request")
    }

    /// The stages of the shaping fields, appended to `s`.
    fn shaping_stages(
        &self,
        s: &mut Vec<StageSpec>,
        seed: u64,
        tok: &TextTokenizer,
    ) -> Result<(), ApiError> {
        if let Some(p) = self.repetition_penalty.filter(|&p| p != 1.0) {
            s.push(StageSpec::new("repetition_penalty", &[("penalty", p)]));
        }
        if let Some(p) = self.frequency_penalty.filter(|&p| p != 0.0) {
            s.push(StageSpec::new("frequency_penalty", &[("penalty", p)]));
        }
        if let Some(p) = self.presence_penalty.filter(|&p| p != 0.0) {
            s.push(StageSpec::new("presence_penalty", &[("penalty", p)]));
        }
        if let Some(m) = self.dry_multiplier.filter(|&m| m > 0.0) {
            let breakers: Vec<String> = match &self.dry_sequence_breakers {
                Some(b) => b.clone(),
                None => DEFAULT_BREAKERS.iter().map(|s| s.to_string()).collect(),
            };
            let mut seqs = Vec::new();
            for b in &breakers {
                let ids = tok.encode(b, false).map_err(|e| {
                    ApiError::invalid("dry_sequence_breakers", format!("{b:?}: {e}"))
                })?;
                if ids.is_empty() {
                    return Err(ApiError::invalid(
                        "dry_sequence_breakers",
                        format!("{b:?} has no tokens"),
                    ));
                }
                seqs.push(YamlValue::Sequence(
                    ids.into_iter()
                        .map(|i| YamlValue::Number((i as u64).into()))
                        .collect(),
                ));
            }
            s.push(
                StageSpec::new(
                    "dry",
                    &[
                        ("multiplier", m),
                        ("base", self.dry_base.unwrap_or(1.75)),
                        (
                            "allowed_length",
                            self.dry_allowed_length.unwrap_or(2) as f64,
                        ),
                        ("last_n", self.dry_penalty_last_n.unwrap_or(-1) as f64),
                    ],
                )
                .with("sequence_breakers", YamlValue::Sequence(seqs)),
            );
        }
        let mirostat = self.mirostat.unwrap_or(0);
        let truncation: Vec<&str> = self
            .shaping_fields_set()
            .into_iter()
            .filter(|f| {
                matches!(
                    *f,
                    "top_n_sigma" | "top_k" | "typical_p" | "top_p" | "min_p" | "xtc_probability"
                )
            })
            .collect();
        if mirostat > 0 {
            if let Some(f) = truncation.first() {
                return Err(ApiError::invalid(
                    f,
                    "cannot be combined with mirostat, which replaces the truncation samplers",
                ));
            }
        }
        if let Some(n) = self.top_n_sigma.filter(|&n| n > 0.0) {
            s.push(StageSpec::new("top_n_sigma", &[("n", n)]));
        }
        if let Some(k) = self.top_k.filter(|&k| k > 0) {
            s.push(StageSpec::new("top_k", &[("top_k", k as f64)]));
        }
        if let Some(p) = self.typical_p.filter(|&p| p < 1.0) {
            s.push(StageSpec::new("typical", &[("mass", p)]));
        }
        if let Some(p) = self.top_p.filter(|&p| p < 1.0) {
            s.push(StageSpec::new("top_p", &[("top_p", p)]));
        }
        if let Some(p) = self.min_p.filter(|&p| p > 0.0) {
            s.push(StageSpec::new("min_p", &[("min_p", p)]));
        }
        if let Some(p) = self.xtc_probability.filter(|&p| p > 0.0) {
            s.push(
                StageSpec::new(
                    "xtc",
                    &[
                        ("probability", p),
                        ("threshold", self.xtc_threshold.unwrap_or(0.1)),
                    ],
                )
                .with("seed", YamlValue::Number(seed.into())),
            );
        }
        let temperature = self.temperature.unwrap_or(1.0);
        if temperature > 0.0 && temperature != 1.0 {
            s.push(StageSpec::new(
                "temperature",
                &[("temperature", temperature)],
            ));
        }
        if mirostat > 0 {
            let tau = self.mirostat_tau.unwrap_or(5.0);
            let eta = self.mirostat_eta.unwrap_or(0.1);
            let name = if mirostat == 1 {
                "mirostat_v1"
            } else {
                "mirostat_v2"
            };
            s.push(StageSpec::new(name, &[("tau", tau), ("eta", eta)]));
        }
        if temperature == 0.0 {
            s.push(StageSpec::new("greedy", &[]));
        }
        Ok(())
    }
}

/// Builds a pipeline of `stages`; a stage that refuses its parameters is a 400 (the checks
/// above should have caught it first).
fn build(stages: Vec<StageSpec>, name: &str) -> Result<Pipeline, ApiError> {
    Pipeline::from_spec(PipelineSpec {
        name: name.to_string(),
        weight: 1.0,
        processors: stages,
    })
    .map_err(|e| ApiError::bad_request("invalid_sampling", e.to_string()))
}

/// `logit_bias`: `{"token id": bias}` with bias in [-100, 100].
fn logit_bias(v: Option<&Value>) -> Result<Vec<(u32, f64)>, ApiError> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    let Value::Object(m) = v else {
        return Err(ApiError::invalid(
            "logit_bias",
            format!(
                "expected an object {{\"token id\": bias}}, got {}",
                describe(v)
            ),
        ));
    };
    if m.len() > MAX_LOGIT_BIAS {
        return Err(ApiError::invalid(
            "logit_bias",
            format!("{} entries; at most {MAX_LOGIT_BIAS}", m.len()),
        ));
    }
    m.iter()
        .map(|(k, b)| {
            let id: u32 = k.parse().map_err(|_| {
                ApiError::invalid("logit_bias", format!("key {k:?} is not a token id"))
            })?;
            let b = b
                .as_f64()
                .filter(|b| (-100.0..=100.0).contains(b))
                .ok_or_else(|| {
                    ApiError::invalid(
                        "logit_bias",
                        format!(
                            "bias of token {id}: {} is not a number in [-100, 100]",
                            describe(b)
                        ),
                    )
                })?;
            Ok((id, b))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Result<SamplingFields, ApiError> {
        let mut f = Fields::of(&v).unwrap();
        let s = SamplingFields::parse(&mut f)?;
        f.finish()?;
        Ok(s)
    }

    #[test]
    fn ranges_are_checked_and_named() {
        for (body, field) in [
            (json!({"temperature": -0.1}), "temperature"),
            (json!({"top_p": 7}), "top_p"),
            (json!({"top_p": 0}), "top_p"),
            (json!({"top_k": -2}), "top_k"),
            (json!({"min_p": 1.5}), "min_p"),
            (json!({"presence_penalty": 3}), "presence_penalty"),
            (json!({"repetition_penalty": 0}), "repetition_penalty"),
            (json!({"top_n_sigma": 0}), "top_n_sigma"),
            (json!({"mirostat": 3}), "mirostat"),
            (json!({"dry_base": 0.5}), "dry_base"),
            (json!({"logit_bias": {"x": 1}}), "logit_bias"),
            (json!({"logit_bias": {"5": 101}}), "logit_bias"),
            (json!({"temperature": "hot"}), "temperature"),
        ] {
            let e = fields(body.clone()).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(field), "{body}: {e}");
        }
    }

    #[test]
    fn neutral_values_are_not_shaping() {
        let s = fields(
            json!({"temperature": 1, "top_p": 1, "top_k": -1, "min_p": 0,
            "presence_penalty": 0, "mirostat": 0, "top_n_sigma": -1}),
        )
        .unwrap();
        assert!(s.shaping_fields_set().is_empty());
        let s = fields(json!({"temperature": 0.7, "top_k": 40})).unwrap();
        assert_eq!(s.shaping_fields_set(), ["temperature", "top_k"]);
    }
}
