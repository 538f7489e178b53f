//! A pipeline as the sampling fields of a chat-completion request — or why a server cannot
//! run it exactly.
//!
//! * A generic OpenAI-compatible server (vLLM, SGLang) has the standard flat fields only,
//!   applied temperature first ([`FieldOrder::TemperatureFirst`]): a pipeline must be exactly
//!   what [`SamplingConfig::from_spec`] reads in that order, with at most one of top_k, top_p
//!   and min_p (vLLM and SGLang combine several differently). Frequency and presence penalties
//!   are not sent: theirs count generated tokens only, adasamp's stages a window of the whole
//!   history.
//! * An adasamp server runs any installed sampler by name (`sampler`): a pipeline installed
//!   there under its name — with the same stages and parameters when the server shows them — is
//!   sent by name; any other must be what its flat fields express, in llama.cpp's order
//!   ([`FieldOrder::LlamaCpp`], the order of `adasamp serve`'s fields).
//!
//! Every other sampling field is sent at its neutral value, so a server's own defaults (a
//! model's generation config) never change the sampling.

use std::collections::BTreeMap;

use adasamp_sampling::{FieldOrder, PipelineSpec, SamplingConfig, SamplingError};
use serde_json::{json, Map, Value};

use crate::candidates::same_pipeline::same_pipeline;

/// A sampler installed on an adasamp server, as `GET /v1/samplers` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct InstalledSampler {
    /// Its stage names, in order.
    pub stages: Vec<String>,
    /// Its stages with their parameters, when the server shows them.
    pub config: Option<PipelineSpec>,
}

/// What kind of server an endpoint is.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerKind {
    /// A generic OpenAI-compatible server (vLLM, SGLang, …): standard fields only.
    Generic,
    /// An adasamp server and the samplers installed on it, by name.
    Adasamp(BTreeMap<String, InstalledSampler>),
}

/// Why a pipeline cannot be sent: the stage at fault (if one is) and the reason.
pub type NotExpressible = crate::candidates::same_pipeline::Difference;

/// The sampling fields of a request that runs `spec` exactly on a server of `kind`.
pub fn request_fields(
    spec: &PipelineSpec,
    kind: &ServerKind,
) -> Result<Map<String, Value>, NotExpressible> {
    match kind {
        ServerKind::Generic => {
            let c = flat(spec, FieldOrder::TemperatureFirst).map_err(|(stage, why)| {
                (
                    stage,
                    format!(
                        "a generic OpenAI-compatible server (vLLM, SGLang) has the standard fields only, applied as {}: {why}",
                        FieldOrder::TemperatureFirst.describe()
                    ),
                )
            })?;
            let truncations: Vec<&str> = spec
                .processors
                .iter()
                .map(|s| s.name.as_str())
                .filter(|&n| {
                    (n == "top_k" && c.top_k > 0)
                        || (n == "top_p" && c.top_p < 1.0)
                        || (n == "min_p" && c.min_p > 0.0)
                })
                .collect();
            if let [_, second, ..] = truncations[..] {
                return Err((
                    Some(second.to_string()),
                    format!(
                        "combines {}; vLLM and SGLang combine top_k, top_p and min_p \
                         differently, so a generic server runs one of them exactly, not several",
                        truncations.join(" and ")
                    ),
                ));
            }
            Ok(flat_fields(&c, None))
        }
        ServerKind::Adasamp(installed) => {
            if let Some(inst) = installed.get(&spec.name) {
                return same_pipeline(spec, &inst.stages, inst.config.as_ref())
                    .map(|()| flat_fields(&SamplingConfig::default(), Some(&spec.name)))
                    .map_err(|(stage, why)| {
                        (
                            stage,
                            format!(
                                "the server's installed sampler `{}` is another pipeline: {why}",
                                spec.name
                            ),
                        )
                    });
            }
            let c = flat(spec, FieldOrder::LlamaCpp).map_err(|(stage, why)| {
                (
                    stage,
                    format!(
                        "not installed on the server (GET /v1/samplers; install it with `adasamp \
                         serve --samplers DIR`), and its flat fields, applied as {}, cannot \
                         express it: {why}",
                        FieldOrder::LlamaCpp.describe()
                    ),
                )
            })?;
            Ok(flat_fields(&c, None))
        }
    }
}

/// The flat configuration of `spec` in `order`, or the stage at fault and why.
fn flat(spec: &PipelineSpec, order: FieldOrder) -> Result<SamplingConfig, NotExpressible> {
    SamplingConfig::from_spec(spec, order).map_err(|e| match e {
        SamplingError::NotFlat { stage, reason, .. } => (Some(stage), reason),
        other => (None, other.to_string()),
    })
}

/// Request fields for `c` (every standard field, neutral ones included), plus `sampler` when
/// a named sampler runs instead.
fn flat_fields(c: &SamplingConfig, sampler: Option<&str>) -> Map<String, Value> {
    let mut m = Map::new();
    let temperature = if c.is_greedy() { 0.0 } else { c.temperature };
    m.insert("temperature".into(), json!(temperature));
    m.insert("top_p".into(), json!(c.top_p));
    m.insert(
        "top_k".into(),
        json!(if c.top_k == 0 { -1 } else { c.top_k as i64 }),
    );
    m.insert("min_p".into(), json!(c.min_p));
    m.insert("repetition_penalty".into(), json!(c.repetition_penalty));
    m.insert("presence_penalty".into(), json!(0.0));
    m.insert("frequency_penalty".into(), json!(0.0));
    if let Some(name) = sampler {
        m.insert("sampler".into(), json!(name));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, processors: &str) -> PipelineSpec {
        adasamp_sampling::PipelineFile::from_yaml(
            &format!("pipelines:\n  - name: {name}\n    processors: {processors}\n"),
            None,
        )
        .unwrap()
        .pipelines
        .remove(0)
    }

    const T_TOP_P: &str =
        "[{name: temperature, params: {temperature: 0.7}}, {name: top_p, params: {top_p: 0.9}}]";

    #[test]
    fn generic_servers_get_standard_fields_temperature_first() {
        let f = request_fields(&spec("a", T_TOP_P), &ServerKind::Generic).unwrap();
        assert_eq!(f["temperature"], 0.7);
        assert_eq!(f["top_p"], 0.9);
        assert_eq!(f["top_k"], -1);
        assert_eq!(f["min_p"], 0.0);
        assert_eq!(f["repetition_penalty"], 1.0);
        assert!(!f.contains_key("sampler"));
        let greedy = request_fields(&spec("g", "[{name: greedy}]"), &ServerKind::Generic).unwrap();
        assert_eq!(greedy["temperature"], 0.0);
    }

    #[test]
    fn generic_servers_refuse_what_they_cannot_run_exactly() {
        for (processors, stage, why) in [
            (
                "[{name: top_p, params: {top_p: 0.9}}, {name: temperature, params: {temperature: 0.7}}]",
                "top_p",
                "out of order",
            ),
            ("[{name: temperature, params: {temperature: 0.7}}, {name: epsilon, params: {epsilon: 0.001}}]", "epsilon", "no flat"),
            (
                "[{name: temperature, params: {temperature: 0.7}}, {name: top_k, params: {top_k: 20}}, {name: top_p, params: {top_p: 0.8}}]",
                "top_p",
                "differently",
            ),
            ("[{name: presence_penalty, params: {penalty: 0.5}}]", "presence_penalty", "no flat"),
        ] {
            let (s, reason) = request_fields(&spec("x", processors), &ServerKind::Generic).unwrap_err();
            assert_eq!(s.as_deref(), Some(stage), "{processors}: {reason}");
            assert!(reason.contains(why) && reason.contains("vLLM"), "{reason}");
        }
    }

    #[test]
    fn adasamp_servers_run_installed_samplers_by_name() {
        let mine = spec("a", T_TOP_P);
        let mut installed = BTreeMap::new();
        installed.insert(
            "a".to_string(),
            InstalledSampler {
                stages: vec!["temperature".into(), "top_p".into()],
                config: Some(spec(
                    "a",
                    "[{name: temperature, params: {temperature: 0.7}}, {name: top_p, params: {top_p: 0.90}}]",
                )),
            },
        );
        let kind = ServerKind::Adasamp(installed.clone());
        let f = request_fields(&mine, &kind).unwrap();
        assert_eq!(f["sampler"], "a");
        assert_eq!(f["temperature"], 1.0, "the other fields stay neutral");
        // the same name with other parameters is refused, naming the stage
        installed.get_mut("a").unwrap().config = Some(spec(
            "a",
            "[{name: temperature, params: {temperature: 0.7}}, {name: top_p, params: {top_p: 0.95}}]",
        ));
        let (stage, why) =
            request_fields(&mine, &ServerKind::Adasamp(installed.clone())).unwrap_err();
        assert_eq!(stage.as_deref(), Some("top_p"));
        assert!(
            why.contains("another pipeline") && why.contains("0.95"),
            "{why}"
        );
        // … or other stages
        installed.get_mut("a").unwrap().stages = vec!["temperature".into(), "min_p".into()];
        let (stage, _) = request_fields(&mine, &ServerKind::Adasamp(installed)).unwrap_err();
        assert_eq!(stage.as_deref(), Some("top_p"));
    }

    #[test]
    fn adasamp_servers_take_flat_fields_in_llama_cpp_order() {
        let kind = ServerKind::Adasamp(BTreeMap::new());
        let f = request_fields(
            &spec("b", "[{name: top_k, params: {top_k: 20}}, {name: top_p, params: {top_p: 0.8}}, {name: temperature, params: {temperature: 0.6}}]"),
            &kind,
        )
        .unwrap();
        assert_eq!(
            (f["top_k"].clone(), f["temperature"].clone()),
            (json!(20), json!(0.6))
        );
        let (stage, why) = request_fields(&spec("a", T_TOP_P), &kind).unwrap_err();
        assert_eq!(stage.as_deref(), Some("temperature"));
        assert!(
            why.contains("not installed") && why.contains("out of order"),
            "{why}"
        );
    }
}
