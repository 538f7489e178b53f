//! The pipeline file format (the ASN YAML format) and typed reading of stage parameters.
//!
//! ```yaml
//! pipelines:
//!   - name: temp0.7_min_p0.05
//!     weight: 1.0
//!     processors:
//!       - {name: temperature, params: {temperature: 0.7}}
//!       - {name: min_p, params: {min_p: 0.05}}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
pub use serde_yaml_ng::{Mapping, Value};

use crate::error::{Result, SamplingError};

/// One stage of a pipeline as written in the file: its name and parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    /// Stage name, e.g. `top_p`.
    pub name: String,
    /// Stage parameters by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, Value>,
}

impl StageSpec {
    /// A stage spec from a name and `(param, number)` pairs.
    pub fn new(name: &str, params: &[(&str, f64)]) -> Self {
        let params = params
            .iter()
            .map(|(k, v)| (k.to_string(), number_value(*v)))
            .collect();
        Self {
            name: name.to_string(),
            params,
        }
    }

    /// Adds or replaces one parameter.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.params.insert(key.to_string(), value);
        self
    }
}

/// A YAML number for `v`: an integer when `v` is integral and small, else a float.
pub fn number_value(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        Value::Number((v as i64).into())
    } else {
        Value::Number(v.into())
    }
}

fn default_weight() -> f64 {
    1.0
}

/// A named pipeline: stages applied in order, and a weight for weighted random choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// Unique name within its file.
    pub name: String,
    /// Relative weight when a pipeline is picked at random from a file.
    #[serde(default = "default_weight")]
    pub weight: f64,
    /// Stages, applied in list order.
    #[serde(default)]
    pub processors: Vec<StageSpec>,
}

/// A pipeline file: a list of pipelines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    /// The pipelines of the file.
    pub pipelines: Vec<PipelineSpec>,
}

impl PipelineFile {
    /// Parses the YAML text of a pipeline file (structure only; stages are checked when built).
    pub fn from_yaml(text: &str, source_name: Option<&str>) -> Result<Self> {
        serde_yaml_ng::from_str(text).map_err(|e| SamplingError::PipelineFile {
            source_name: source_name.map(str::to_string),
            message: e.to_string(),
        })
    }

    /// Serialises back to the same YAML format.
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).expect("pipeline specs always serialise")
    }
}

/// Typed, checked access to one stage's parameters; [`ParamReader::finish`] rejects any parameter
/// the stage did not ask for.
///
/// A reader made with [`ParamReader::new`] fails at the first required parameter that is absent.
/// The readers the built-in stages get defer that error: the read returns a placeholder (never
/// range-checked) and [`ParamReader::finish`] reports the absent parameter together with any
/// unknown one — often its misspelling.
pub struct ParamReader<'a> {
    pipeline: &'a str,
    stage: &'a str,
    params: &'a BTreeMap<String, Value>,
    accepted: Vec<&'static str>,
    /// Index of the stage in its pipeline.
    pub(crate) index: usize,
    /// How many pipelines enclose the stage's pipeline.
    pub(crate) depth: usize,
    defer_missing: bool,
    missing: Vec<&'static str>,
}

/// A float type a parameter is read as.
trait Float: Copy {
    /// `v` rounded to this type.
    fn from_f64(v: f64) -> Self;
}

impl Float for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
}

impl Float for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

/// `v` as written (`0.7`), or in exponent form when that would be long (`1e-300`).
fn short_number(v: f64) -> String {
    let plain = v.to_string();
    if plain.len() <= 24 {
        plain
    } else {
        format!("{v:e}")
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => serde_yaml_ng::to_string(other)
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| format!("{other:?}")),
    }
}

impl<'a> ParamReader<'a> {
    /// A reader over `params` of stage `stage` in pipeline `pipeline`.
    pub fn new(pipeline: &'a str, stage: &'a str, params: &'a BTreeMap<String, Value>) -> Self {
        Self {
            pipeline,
            stage,
            params,
            accepted: Vec::new(),
            index: 0,
            depth: 0,
            defer_missing: false,
            missing: Vec::new(),
        }
    }

    /// A reader for a built-in stage: absent required parameters are reported by `finish`.
    pub(crate) fn deferring(
        pipeline: &'a str,
        stage: &'a str,
        params: &'a BTreeMap<String, Value>,
        index: usize,
        depth: usize,
    ) -> Self {
        Self {
            index,
            depth,
            defer_missing: true,
            ..Self::new(pipeline, stage, params)
        }
    }

    /// The name of the pipeline the stage belongs to.
    pub fn pipeline(&self) -> &'a str {
        self.pipeline
    }

    /// Records that required parameter `key` is absent: an error now, or (deferring) at `finish`.
    fn absent(&mut self, key: &'static str) -> Result<()> {
        if self.defer_missing {
            self.missing.push(key);
            return Ok(());
        }
        Err(SamplingError::MissingParam {
            pipeline: self.pipeline.to_string(),
            stage: self.stage.to_string(),
            param: key.to_string(),
        })
    }

    /// The error for parameter `param` holding `value`, with the reason it is wrong.
    pub fn invalid(
        &self,
        param: &str,
        value: impl std::fmt::Display,
        reason: &str,
    ) -> SamplingError {
        SamplingError::InvalidParam {
            pipeline: self.pipeline.to_string(),
            stage: self.stage.to_string(),
            param: param.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }

    fn raw(&mut self, key: &'static str) -> Option<&'a Value> {
        self.accepted.push(key);
        self.params.get(key)
    }

    /// An optional number.
    pub fn f64_opt(&mut self, key: &'static str) -> Result<Option<f64>> {
        match self.raw(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(v) => Err(self.invalid(key, describe(v), "expected a number")),
        }
    }

    /// The number under `key`, else `default`; `None` when it is absent, required and deferred.
    fn number(&mut self, key: &'static str, default: Option<f64>) -> Result<Option<f64>> {
        match (self.f64_opt(key)?, default) {
            (Some(v), _) => Ok(Some(v)),
            (None, Some(d)) => Ok(Some(d)),
            (None, None) => self.absent(key).map(|()| None),
        }
    }

    /// A required number (NaN as the placeholder when absent and deferring).
    pub fn f64_req(&mut self, key: &'static str) -> Result<f64> {
        Ok(self.number(key, None)?.unwrap_or(f64::NAN))
    }

    /// A number with a default.
    pub fn f64_or(&mut self, key: &'static str, default: f64) -> Result<f64> {
        Ok(self.f64_opt(key)?.unwrap_or(default))
    }

    /// A number that must satisfy `ok`, else an error with `reason`.
    pub fn f64_checked(
        &mut self,
        key: &'static str,
        default: Option<f64>,
        ok: impl Fn(f64) -> bool,
        reason: &str,
    ) -> Result<f64> {
        self.checked_as(key, default, ok, reason)
    }

    /// A number used as `f32` that must satisfy `ok` *as an `f32`* (so `1e-300` is not a positive
    /// temperature: it rounds to 0), else an error with `reason` naming the value given.
    pub fn f32_checked(
        &mut self,
        key: &'static str,
        default: Option<f64>,
        ok: impl Fn(f32) -> bool,
        reason: &str,
    ) -> Result<f32> {
        self.checked_as(key, default, ok, reason)
    }

    /// A number converted to `T` (`f64` or `f32`) that must satisfy `ok` as a `T`; the NaN
    /// placeholder when absent and deferring.
    fn checked_as<T: Float>(
        &mut self,
        key: &'static str,
        default: Option<f64>,
        ok: impl Fn(T) -> bool,
        reason: &str,
    ) -> Result<T> {
        let Some(v) = self.number(key, default)? else {
            return Ok(T::from_f64(f64::NAN));
        };
        let t = T::from_f64(v);
        if !ok(t) {
            return Err(self.invalid(key, short_number(v), reason));
        }
        Ok(t)
    }

    /// An optional integer (a float with no fractional part is accepted).
    pub fn int_opt(&mut self, key: &'static str) -> Result<Option<i64>> {
        match self.raw(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => Ok(Some(i)),
                (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9e15 => Ok(Some(f as i64)),
                _ => Err(self.invalid(key, n, "expected an integer")),
            },
            Some(v) => Err(self.invalid(key, describe(v), "expected an integer")),
        }
    }

    /// An integer that must satisfy `ok`, with an optional default.
    pub fn int_checked(
        &mut self,
        key: &'static str,
        default: Option<i64>,
        ok: impl Fn(i64) -> bool,
        reason: &str,
    ) -> Result<i64> {
        let v = match (self.int_opt(key)?, default) {
            (Some(v), _) => v,
            (None, Some(d)) => d,
            (None, None) => return self.absent(key).map(|()| 0),
        };
        if !ok(v) {
            return Err(self.invalid(key, v, reason));
        }
        Ok(v)
    }

    /// `min_tokens_to_keep` (default 1, must be ≥ 1).
    pub fn min_keep(&mut self) -> Result<usize> {
        Ok(self.int_checked(
            "min_tokens_to_keep",
            Some(1),
            |v| v >= 1,
            "must be an integer ≥ 1",
        )? as usize)
    }

    /// A window length `last_n`: -1 = whole history, 0 = off, n > 0 = last n tokens.
    pub fn last_n(&mut self, default: i64) -> Result<Option<usize>> {
        let v = self.int_checked(
            "last_n",
            Some(default),
            |v| v >= -1,
            "must be -1 (whole history), 0 (off) or a positive window",
        )?;
        Ok(if v < 0 { None } else { Some(v as usize) })
    }

    /// An optional unsigned 64-bit integer (seeds).
    pub fn u64_or(&mut self, key: &'static str, default: u64) -> Result<u64> {
        match self.raw(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Number(n)) => n
                .as_u64()
                .ok_or_else(|| self.invalid(key, n, "expected a non-negative integer")),
            Some(v) => Err(self.invalid(key, describe(v), "expected a non-negative integer")),
        }
    }

    fn token_id(&self, key: &str, v: &Value) -> Result<u32> {
        match v {
            Value::Number(n) => n
                .as_u64()
                .and_then(|x| u32::try_from(x).ok())
                .ok_or_else(|| self.invalid(key, n, "token ids must be integers in [0, 2^32)")),
            Value::String(s) => s.trim().parse::<u32>().map_err(|_| {
                self.invalid(
                    key,
                    format!("{s:?}"),
                    "token ids must be integers in [0, 2^32)",
                )
            }),
            other => Err(self.invalid(key, describe(other), "expected a token id")),
        }
    }

    /// A list of token ids (default empty).
    pub fn ids(&mut self, key: &'static str) -> Result<Vec<u32>> {
        match self.raw(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Sequence(s)) => s.iter().map(|v| self.token_id(key, v)).collect(),
            Some(v) => Ok(vec![self.token_id(key, v)?]),
        }
    }

    /// A list of token sequences: each element an id or a list of ids (default empty).
    pub fn id_sequences(&mut self, key: &'static str) -> Result<Vec<Vec<u32>>> {
        match self.raw(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Sequence(s)) => s
                .iter()
                .map(|v| match v {
                    Value::Sequence(inner) if inner.is_empty() => Err(self.invalid(
                        key,
                        "[]",
                        "a sequence breaker must hold at least one token",
                    )),
                    Value::Sequence(inner) => inner.iter().map(|x| self.token_id(key, x)).collect(),
                    other => Ok(vec![self.token_id(key, other)?]),
                })
                .collect(),
            Some(v) => Err(self.invalid(
                key,
                describe(v),
                "expected a list of token ids or of token-id lists",
            )),
        }
    }

    /// A list of stage specs (a nested pipeline's `processors`; default empty).
    pub fn stage_specs(&mut self, key: &'static str) -> Result<Vec<StageSpec>> {
        match self.raw(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(v @ Value::Sequence(_)) => serde_yaml_ng::from_value(v.clone())
                .map_err(|e| self.invalid(key, describe(v), &e.to_string())),
            Some(v) => Err(self.invalid(
                key,
                describe(v),
                "expected a list of stages ({name, params})",
            )),
        }
    }

    /// A map from token id to number.
    pub fn id_map(&mut self, key: &'static str) -> Result<Vec<(u32, f64)>> {
        match self.raw(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Mapping(m)) => m
                .iter()
                .map(|(k, v)| {
                    let id = self.token_id(key, k)?;
                    let x = v.as_f64().ok_or_else(|| {
                        self.invalid(key, describe(v), "bias values must be numbers")
                    })?;
                    Ok((id, x))
                })
                .collect(),
            Some(v) => Err(self.invalid(key, describe(v), "expected a mapping {token_id: bias}")),
        }
    }

    /// Rejects parameters the stage did not read, and reports a required parameter found absent
    /// by a deferring reader — both in one error when both happen.
    pub fn finish(self) -> Result<()> {
        let unknown = self
            .params
            .keys()
            .find(|k| !self.accepted.iter().any(|a| a == k));
        let accepted = || {
            if self.accepted.is_empty() {
                "none".to_string()
            } else {
                self.accepted.join(", ")
            }
        };
        let (pipeline, stage) = (self.pipeline.to_string(), self.stage.to_string());
        match (unknown, self.missing.first()) {
            (None, None) => Ok(()),
            (Some(u), None) => Err(SamplingError::UnknownParam {
                pipeline,
                stage,
                param: u.clone(),
                accepted: accepted(),
            }),
            (None, Some(m)) => Err(SamplingError::MissingParam {
                pipeline,
                stage,
                param: m.to_string(),
            }),
            (Some(u), Some(m)) => Err(SamplingError::UnknownAndMissingParams {
                unknown: Box::new(SamplingError::UnknownParam {
                    pipeline,
                    stage,
                    param: u.clone(),
                    accepted: accepted(),
                }),
                missing: m.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_round_trip() {
        let text = "pipelines:\n  - name: a\n    weight: 2.0\n    processors:\n      - {name: temperature, params: {temperature: 0.7}}\n      - {name: min_p, params: {min_p: 0.05}}\n  - name: b\n    processors: []\n";
        let f = PipelineFile::from_yaml(text, None).unwrap();
        assert_eq!(f.pipelines.len(), 2);
        assert_eq!(f.pipelines[1].weight, 1.0);
        let again = PipelineFile::from_yaml(&f.to_yaml(), None).unwrap();
        assert_eq!(f, again);
    }

    #[test]
    fn malformed_yaml_is_an_error() {
        let e = PipelineFile::from_yaml(
            "pipelines: [ {name: a, processors: [ {nam: x} ] } ]",
            Some("f.yaml"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("f.yaml"), "{e}");
        assert!(PipelineFile::from_yaml(": : :", None).is_err());
    }
}
