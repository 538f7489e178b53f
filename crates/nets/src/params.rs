//! The parameter manifest of a configuration (names, shapes, init rules, in construction order),
//! seeded initialisation, weight-set validation against a configuration, and the per-module
//! parameter summary.
//!
//! The manifest is obtained by building the network once against a recording [`VarBuilder`]
//! backend, so it cannot drift from what the modules actually read.
//!
//! Seeded initialisation (reproducible across platforms and rand versions): one
//! `ChaCha8Rng::seed_from_u64(seed)` stream, consumed parameter by parameter in manifest order and
//! element by element in row-major order; a uniform draw is `u = (next_u64() >> 11) · 2⁻⁵³ ∈ [0, 1)`
//! mapped to `lo + (up − lo)·u`, computed in f64 and cast to the model dtype. Linear weights and
//! biases: `U(−1/√in, 1/√in)` (PyTorch default); LayerNorm: weight 1, bias 0; gate scalars:
//! their fixed initial values (no draw).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::arch::Net;
use crate::config::SamplerConfig;
use crate::error::{NetsError, Result};

/// One parameter of a configuration: its full dotted name, shape and init rule.
#[derive(Clone, Debug)]
pub struct ParamSpec {
    /// Full dotted name, e.g. `blocks.0.attn.qkv.weight`.
    pub name: String,
    /// Shape (candle/PyTorch layout: Linear weights `[out, in]`).
    pub shape: Vec<usize>,
    /// Initialisation rule (`Init::Uniform` or `Init::Const`).
    pub init: Init,
}

impl ParamSpec {
    /// Number of scalars: the product of the shape.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<ParamSpec>>>);

impl SimpleBackend for Recorder {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut specs = self
            .0
            .lock()
            .map_err(|_| candle_core::Error::Msg("parameter recorder poisoned".into()))?;
        specs.push(ParamSpec {
            name: name.to_string(),
            shape: s.dims().to_vec(),
            init: h,
        });
        Tensor::zeros(s, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        Err(candle_core::Error::Msg(format!(
            "parameter recorder: unchecked access to `{name}`"
        )))
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        true
    }
}

/// The parameter manifest of `config`, in construction order (validates `config` first).
pub fn param_specs(config: &SamplerConfig) -> Result<Vec<ParamSpec>> {
    config.validate()?;
    let recorder = Recorder::default();
    let vb = VarBuilder::from_backend(Box::new(recorder.clone()), DType::F32, Device::Cpu);
    Net::new(config, vb)?;
    let specs = recorder
        .0
        .lock()
        .map_err(|_| NetsError::Poisoned {
            what: "the parameter recorder".into(),
        })?
        .clone();
    Ok(specs)
}

/// Total number of scalar parameters of `config`.
pub fn parameter_count(config: &SamplerConfig) -> Result<usize> {
    Ok(param_specs(config)?.iter().map(ParamSpec::numel).sum())
}

/// One uniform draw in `[0, 1)` from the top 53 bits of `next_u64`.
fn uniform01(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Seeded initial values for every parameter of `specs` (see the module doc for the exact
/// stream); tensors are created in `dtype` on `device`.
pub fn seeded_tensors(
    specs: &[ParamSpec],
    seed: u64,
    dtype: DType,
    device: &Device,
) -> Result<Vec<(String, Tensor)>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    specs
        .iter()
        .map(|spec| {
            let n = spec.numel();
            let values: Vec<f64> = match spec.init {
                Init::Const(c) => vec![c; n],
                Init::Uniform { lo, up } => (0..n)
                    .map(|_| lo + (up - lo) * uniform01(&mut rng))
                    .collect(),
                ref other => {
                    return Err(NetsError::bad_request(
                        format!("init rule of parameter `{}`", spec.name),
                        format!("{other:?}"),
                        "only uniform and constant initialisation are supported",
                    ))
                }
            };
            let t = Tensor::from_vec(values, spec.shape.clone(), device)?.to_dtype(dtype)?;
            Ok((spec.name.clone(), t))
        })
        .collect()
}

/// Guesses which architecture a set of parameter names belongs to (for error hints).
pub fn guess_architecture<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<&'static str> {
    let names: Vec<&str> = names.into_iter().collect();
    let has = |n: &str| names.contains(&n);
    if names
        .iter()
        .any(|n| n.starts_with("blocks.") || n.starts_with("encoder."))
    {
        Some("sampling_network")
    } else if has("local.weight") {
        if has("truncation.weight") {
            Some("simple_distribution_aware_transform (dynamic_truncation: true)")
        } else {
            Some("simple_distribution_aware_transform (dynamic_truncation: false)")
        }
    } else if has("truncation.scale") || has("truncation.threshold") {
        Some("local_probability_transform")
    } else {
        None
    }
}

/// Checks that `found` (name → shape) holds exactly the parameters of `config` with the right
/// shapes. `origin` names the weights in errors (e.g. the safetensors path). The first problem
/// found is reported: a missing parameter, then an unexpected one, then a shape mismatch; missing
/// and unexpected errors carry a guess of the architecture the weights belong to.
pub fn check_shapes(
    config: &SamplerConfig,
    found: &BTreeMap<String, Vec<usize>>,
    origin: &str,
) -> Result<()> {
    let specs = param_specs(config)?;
    let hint = || match guess_architecture(found.keys().map(String::as_str)) {
        Some(g) => format!("; the weights look like a {g} checkpoint"),
        None => String::new(),
    };
    let expected: HashMap<&str, &ParamSpec> = specs.iter().map(|s| (s.name.as_str(), s)).collect();
    for spec in &specs {
        if !found.contains_key(&spec.name) {
            return Err(NetsError::MissingParameter {
                origin: origin.to_string(),
                name: spec.name.clone(),
                expected: spec.shape.clone(),
                architecture: config.to_string(),
                hint: hint(),
            });
        }
    }
    for (name, shape) in found {
        if !expected.contains_key(name.as_str()) {
            return Err(NetsError::UnexpectedParameter {
                origin: origin.to_string(),
                name: name.clone(),
                found: shape.clone(),
                architecture: config.to_string(),
                hint: hint(),
            });
        }
    }
    for spec in &specs {
        let shape = &found[&spec.name];
        if shape != &spec.shape {
            return Err(NetsError::ShapeMismatch {
                origin: origin.to_string(),
                name: spec.name.clone(),
                expected: spec.shape.clone(),
                found: shape.clone(),
                architecture: config.to_string(),
            });
        }
    }
    Ok(())
}

/// Parameter counts of a configuration, per module. `sampler info` prints its `Display`.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// The configuration described.
    pub config: SamplerConfig,
    /// Total scalar parameters.
    pub total: usize,
    /// Counts per top-level module (`encoder`, `blocks.0`, …, `transform`, `scale`,
    /// `truncation`; `mlp`, `local`, …), in construction order.
    pub modules: Vec<(String, usize)>,
    /// Counts per layer (the name without its last component, e.g. `blocks.0.attn.qkv`).
    pub layers: Vec<(String, usize)>,
    /// Every parameter with its shape, in construction order.
    pub parameters: Vec<(String, Vec<usize>)>,
}

/// Builds the [`Summary`] of `config`.
pub fn describe(config: &SamplerConfig) -> Result<Summary> {
    let specs = param_specs(config)?;
    fn group(specs: &[ParamSpec], key: impl Fn(&str) -> String) -> Vec<(String, usize)> {
        let mut out: Vec<(String, usize)> = Vec::new();
        for s in specs {
            let k = key(&s.name);
            match out.iter_mut().find(|(name, _)| *name == k) {
                Some((_, n)) => *n += s.numel(),
                None => out.push((k, s.numel())),
            }
        }
        out
    }
    let module_key = |name: &str| {
        let parts: Vec<&str> = name.split('.').collect();
        if parts[0] == "blocks" && parts.len() > 1 {
            format!("blocks.{}", parts[1])
        } else {
            parts[0].to_string()
        }
    };
    let layer_key = |name: &str| match name.rsplit_once('.') {
        Some((layer, _)) => layer.to_string(),
        None => name.to_string(),
    };
    Ok(Summary {
        config: config.clone(),
        total: specs.iter().map(ParamSpec::numel).sum(),
        modules: group(&specs, module_key),
        layers: group(&specs, layer_key),
        parameters: specs
            .iter()
            .map(|s| (s.name.clone(), s.shape.clone()))
            .collect(),
    })
}

impl fmt::Display for Summary {
    /// The configuration line, the total, then one line per module and per layer.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.config)?;
        writeln!(f, "parameters: {}", self.total)?;
        writeln!(f, "modules:")?;
        for (name, n) in &self.modules {
            writeln!(f, "  {name:<24} {n:>9}")?;
        }
        writeln!(f, "layers:")?;
        for (name, n) in &self.layers {
            writeln!(f, "  {name:<24} {n:>9}")?;
        }
        Ok(())
    }
}
