//! [`LearnedSampler`]: a configured architecture with its weights; raw logits `[N, V]` in, new
//! logits `[N, V]` out.
//!
//! # Parameter naming scheme
//!
//! Names are dotted paths; candle/PyTorch layout (a Linear's `weight` is `[out, in]`, `bias`
//! `[out]`; `y = x·Wᵀ + b`). A `SwiGLU(in, h, out)` named `P` has `P.gate`, `P.up` (`in → f`) and
//! `P.down` (`f → out`) Linear layers, `f = floor(2h/3)`. Scalars are stored as shape `[1]`.
//!
//! | architecture | parameters |
//! |---|---|
//! | `local_probability_transform` | `mlp.{gate,up,down}.{weight,bias}` = SwiGLU(1,h,1); `truncation.scale`, `truncation.threshold` (s, τ used as they are) |
//! | `simple_distribution_aware_transform` | `local.{weight,bias}` = Linear(1→h); `mlp.*` = SwiGLU(h+2,h,1) (input order: the h features, then max lp, then H); dynamic: `truncation.{weight,bias}` = Linear(2→2) (output 0 → s, 1 → τ, both through softplus); static: `truncation.scale_raw`, `truncation.threshold_raw` (through softplus) |
//! | `sampling_network` | `encoder.*` = SwiGLU(1,32,d); per block `i`: `blocks.i.attn.qkv.{weight,bias}` = Linear(d→3d) (rows `0..d` → q, `d..2d` → k, `2d..3d` → v; head `h` owns channels `h·d/H..(h+1)·d/H` of each), `blocks.i.attn.out.*` = Linear(d→d), `blocks.i.ln1.{weight,bias}`, `blocks.i.ffn.*` = SwiGLU(d,d_ff,d), `blocks.i.ln2.*`; `transform.*` = SwiGLU(2d,d,1) on `[x, c]` (x first); `scale.*` = SwiGLU(d,d/2,1) (only with `scale: true`); `truncation.*` = SwiGLU(d,d/2,2) (output 0 → s, 1 → τ, through softplus) |
//!
//! See [`crate::arch`] for the forward formulas and the handling of `-inf` inputs;
//! [`crate::checkpoint`] adds `LearnedSampler::load` and `LearnedSampler::save`.

use std::collections::{BTreeMap, HashMap};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};

use crate::arch::{prepare, Net};
use crate::config::SamplerConfig;
use crate::error::{NetsError, Result};
use crate::params::{self, param_specs, seeded_tensors, ParamSpec, Summary};

/// A learned sampler: configuration + weights + forward pass.
#[derive(Clone, Debug)]
pub struct LearnedSampler {
    config: SamplerConfig,
    net: Net,
    params: Vec<(String, Tensor)>,
    dtype: DType,
    device: Device,
}

impl LearnedSampler {
    /// Builds the sampler reading every parameter by name from `vb` (any candle backend:
    /// a [`VarMap`] for training — missing variables are created with candle's own, unseeded
    /// init, so prefer [`LearnedSampler::init`] — or a tensor map / safetensors for inference).
    pub fn new(config: &SamplerConfig, vb: VarBuilder) -> Result<Self> {
        let specs = param_specs(config)?;
        let net = Net::new(config, vb.clone())?;
        let params = specs
            .iter()
            .map(|s| {
                Ok((
                    s.name.clone(),
                    vb.get_with_hints(s.shape.clone(), &s.name, s.init)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config: config.clone(),
            net,
            params,
            dtype: vb.dtype(),
            device: vb.device().clone(),
        })
    }

    /// Fresh trainable sampler: creates every parameter as a [`Var`] in `varmap` with the seeded
    /// PyTorch-default initialisation of [`crate::params`] (same seed ⇒ bitwise the same weights),
    /// then builds the model on those variables. Existing variables of the same name are
    /// overwritten (their shape must match).
    pub fn init(
        config: &SamplerConfig,
        varmap: &VarMap,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let specs = param_specs(config)?;
        let tensors = seeded_tensors(&specs, seed, dtype, device)?;
        Self::trainable_from(config, tensors, varmap, dtype, device)
    }

    /// Inference (non-trainable) sampler with the same seeded initial weights as
    /// [`LearnedSampler::init`] — for tests, benchmarks and untrained baselines.
    pub fn seeded(
        config: &SamplerConfig,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let specs = param_specs(config)?;
        let tensors = seeded_tensors(&specs, seed, dtype, device)?;
        Self::from_tensors(
            config,
            tensors.into_iter().collect(),
            dtype,
            device,
            "seeded initial weights",
        )
    }

    /// Trainable sampler whose variables in `varmap` start from `tensors` (e.g. a checkpoint's
    /// weights when resuming). `tensors` must hold exactly the parameters of `config`.
    pub fn trainable_from(
        config: &SamplerConfig,
        tensors: impl IntoIterator<Item = (String, Tensor)>,
        varmap: &VarMap,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let tensors: BTreeMap<String, Tensor> = tensors.into_iter().collect();
        let shapes = tensors
            .iter()
            .map(|(k, t)| (k.clone(), t.dims().to_vec()))
            .collect();
        params::check_shapes(config, &shapes, "initial weights")?;
        {
            let mut data = varmap.data().lock().map_err(|_| NetsError::Poisoned {
                what: "the VarMap lock".into(),
            })?;
            for (name, t) in tensors {
                let t = t.to_dtype(dtype)?.to_device(device)?;
                match data.get(&name) {
                    Some(var) if var.dims() == t.dims() && var.dtype() == dtype => var.set(&t)?,
                    _ => {
                        data.insert(name, Var::from_tensor(&t)?);
                    }
                }
            }
        }
        Self::new(config, VarBuilder::from_varmap(varmap, dtype, device))
    }

    /// Inference sampler over plain (non-trainable) tensors. `tensors` must hold exactly the
    /// parameters of `config` with the right shapes; `origin` names their source in errors.
    pub fn from_tensors(
        config: &SamplerConfig,
        tensors: HashMap<String, Tensor>,
        dtype: DType,
        device: &Device,
        origin: &str,
    ) -> Result<Self> {
        let shapes = tensors
            .iter()
            .map(|(k, t)| (k.clone(), t.dims().to_vec()))
            .collect();
        params::check_shapes(config, &shapes, origin)?;
        let tensors = tensors
            .into_iter()
            .map(|(k, t)| Ok((k, t.to_dtype(dtype)?.to_device(device)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        Self::new(config, VarBuilder::from_tensors(tensors, dtype, device))
    }

    /// Raw logits `z: [N, V]` (any float dtype; `-inf` = masked token) → new logits `[N, V]` in
    /// the dtype of `z`: `-inf` exactly at the masked tokens, finite elsewhere. Errors on a
    /// non-matrix input, NaN / `+inf` entries or a row with no finite entry.
    pub fn forward(&self, logits: &Tensor) -> Result<Tensor> {
        let in_dtype = logits.dtype();
        let z = logits.to_device(&self.device)?.to_dtype(self.dtype)?;
        let prepared = prepare(&z)?;
        let out = self.net.forward(&prepared)?;
        Ok(out.to_dtype(in_dtype)?)
    }

    /// Total number of scalar parameters.
    pub fn parameter_count(&self) -> usize {
        self.params.iter().map(|(_, t)| t.elem_count()).sum()
    }

    /// The configuration.
    pub fn config(&self) -> &SamplerConfig {
        &self.config
    }

    /// The dtype the model computes in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Every parameter with its name (see the module doc), in construction order. The tensors
    /// share storage with the model (for a trainable sampler, with the [`VarMap`]'s variables).
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        self.params.clone()
    }

    /// The parameter manifest (names, shapes, init rules) of this sampler's configuration.
    pub fn param_specs(&self) -> Result<Vec<ParamSpec>> {
        param_specs(&self.config)
    }

    /// Per-module parameter counts ([`crate::params::describe`]).
    pub fn describe(&self) -> Result<Summary> {
        params::describe(&self.config)
    }
}
