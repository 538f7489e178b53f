//! Checkpoints: a directory
//!
//! ```text
//! <dir>/model.safetensors            weights, named as in crate::sampler (f32 or f64)
//! <dir>/config.json                  CheckpointMeta: format, format_version, config, parameter_count, dtype
//! <dir>/training_state.json          optional: TrainingState (step, epoch, RNG, schedule, AdamW hyper-parameters)
//! <dir>/training_state.safetensors   optional: AdamW moments `m.<param>` and `v.<param>`
//! ```
//!
//! The two training files are present together or not at all.
//!
//! **Atomic writes** ([`adasamp_engine::files::write_dir_atomic`]): everything is written into a
//! fresh hidden directory next to `<dir>` and fsynced, then renamed into place, replacing an
//! existing `<dir>`. On any error the temporary directory is removed, so a failed save never
//! leaves a partial `<dir>` behind (an existing `<dir>` is left untouched unless the final renames
//! themselves fail).
//!
//! **Loading** checks, with errors naming the file / parameter / shapes: missing files, a
//! truncated or corrupt safetensors file, an unsupported format version, weights that do not
//! belong to the configuration (missing, unexpected or wrongly shaped parameters, with a guess of
//! the architecture the weights come from), and, with [`load_expecting`], a configuration other
//! than the caller's.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;

use adasamp_engine::files::{write_atomic, write_dir_atomic};
use candle_core::{DType, Device, Tensor};
use rand_chacha::ChaCha8Rng;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::config::SamplerConfig;
use crate::error::{NetsError, Result};
use crate::params;
use crate::sampler::LearnedSampler;

/// Weights file name.
pub const MODEL_FILE: &str = "model.safetensors";
/// Metadata file name.
pub const CONFIG_FILE: &str = "config.json";
/// Training-state metadata file name.
pub const TRAINING_STATE_JSON: &str = "training_state.json";
/// Optimizer-moments file name.
pub const TRAINING_STATE_FILE: &str = "training_state.safetensors";
/// Value of [`CheckpointMeta::format`].
pub const FORMAT: &str = "adasamp-sampler";
/// Current [`CheckpointMeta::format_version`].
pub const FORMAT_VERSION: u32 = 1;

/// Contents of `config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`] at write time.
    pub format_version: u32,
    /// The architecture.
    pub config: SamplerConfig,
    /// Total scalar parameters (checked against the config on load).
    pub parameter_count: usize,
    /// Dtype of the stored weights: `f32` or `f64`.
    pub dtype: String,
}

/// Exact state of a `ChaCha8Rng` (seed, stream, word position), restorable bit for bit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    /// The 32-byte seed as 64 lowercase hex digits.
    pub seed: String,
    /// The stream number.
    pub stream: u64,
    /// The word position (a u128, as a decimal string).
    pub word_pos: String,
}

impl RngState {
    /// Captures the state of `rng`.
    pub fn capture(rng: &ChaCha8Rng) -> Self {
        Self {
            seed: rng.get_seed().iter().map(|b| format!("{b:02x}")).collect(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    /// Rebuilds the RNG exactly as captured.
    pub fn restore(&self) -> Result<ChaCha8Rng> {
        use rand::SeedableRng;
        let bad = |reason: String| NetsError::bad_request("rng", format!("{self:?}"), reason);
        if self.seed.len() != 64 {
            return Err(bad(format!(
                "seed must be 64 hex digits, got {}",
                self.seed.len()
            )));
        }
        let mut seed = [0u8; 32];
        for (i, byte) in seed.iter_mut().enumerate() {
            let hex = self
                .seed
                .get(2 * i..2 * i + 2)
                .ok_or_else(|| bad("seed is not ASCII hex".into()))?;
            *byte = u8::from_str_radix(hex, 16)
                .map_err(|_| bad(format!("seed digit pair `{hex}` is not hex")))?;
        }
        let word_pos: u128 = self
            .word_pos
            .parse()
            .map_err(|_| bad(format!("word_pos `{}` is not a u128", self.word_pos)))?;
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(word_pos);
        Ok(rng)
    }
}

/// AdamW hyper-parameters and bias-correction step count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamWState {
    /// First-moment decay β₁.
    pub beta1: f64,
    /// Second-moment decay β₂.
    pub beta2: f64,
    /// Denominator ε.
    pub eps: f64,
    /// Decoupled weight decay λ.
    pub weight_decay: f64,
    /// Updates applied so far (the `t` of the bias corrections `1 − βᵗ`).
    pub t: u64,
}

impl Default for AdamWState {
    /// PyTorch's AdamW defaults: β = (0.9, 0.999), ε = 1e-8, λ = 0.01, t = 0.
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            t: 0,
        }
    }
}

/// Learning-rate schedule and its position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrScheduleState {
    /// Schedule name, e.g. `cosine`, `linear`, `constant`.
    pub kind: String,
    /// Peak learning rate.
    pub base_lr: f64,
    /// Final learning rate of a decaying schedule.
    pub min_lr: f64,
    /// Linear warm-up length in optimizer steps.
    pub warmup_steps: u64,
    /// Total optimizer steps of the schedule.
    pub total_steps: u64,
    /// Position in the schedule (optimizer steps taken).
    pub position: u64,
    /// Learning rate of the last update.
    pub current_lr: f64,
}

impl Default for LrScheduleState {
    /// A constant schedule at 1e-3, position 0.
    fn default() -> Self {
        Self {
            kind: "constant".into(),
            base_lr: 1e-3,
            min_lr: 0.0,
            warmup_steps: 0,
            total_steps: 0,
            position: 0,
            current_lr: 1e-3,
        }
    }
}

/// Everything besides weights and moments that a trainer needs to resume exactly
/// (`training_state.json`).
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct TrainingState {
    /// Optimizer steps completed.
    pub step: u64,
    /// Current epoch (0-based).
    pub epoch: u64,
    /// Micro-batches (token batches) already consumed in the current epoch.
    pub batch_in_epoch: u64,
    /// Training rows (positions) seen so far.
    pub rows_seen: u64,
    /// The run's seed (init, shuffling).
    pub seed: u64,
    /// The run's RNG at checkpoint time, if it keeps one.
    pub rng: Option<RngState>,
    /// AdamW hyper-parameters and step count.
    pub optimizer: AdamWState,
    /// Learning-rate schedule.
    pub schedule: LrScheduleState,
    /// Free-form extras (data fingerprint, last losses, …).
    #[serde(default)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// AdamW moments per parameter name (stored as `m.<name>` / `v.<name>`).
#[derive(Clone, Debug, Default)]
pub struct OptimizerMoments {
    /// First moments.
    pub m: BTreeMap<String, Tensor>,
    /// Second moments.
    pub v: BTreeMap<String, Tensor>,
}

/// A loaded checkpoint: the sampler and, if saved, the training state.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// Metadata from `config.json`.
    pub meta: CheckpointMeta,
    /// The (non-trainable) sampler.
    pub sampler: LearnedSampler,
    /// Training state and moments, when the checkpoint has them.
    pub training: Option<(TrainingState, OptimizerMoments)>,
}

fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F64 => "f64",
        _ => "f32",
    }
}

/// Bytes (little-endian) of `t` as f64 when `t` is f64, else as f32.
fn tensor_bytes(t: &Tensor) -> Result<(Dtype, Vec<u8>)> {
    let flat = t.flatten_all()?;
    if t.dtype() == DType::F64 {
        let v = flat.to_vec1::<f64>()?;
        Ok((Dtype::F64, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
    } else {
        let v = flat.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        Ok((Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
    }
}

/// Serialises named tensors to safetensors bytes.
pub(crate) fn serialize(
    tensors: &[(String, Tensor)],
    meta: HashMap<String, String>,
) -> Result<Vec<u8>> {
    let encoded = tensors
        .iter()
        .map(|(n, t)| Ok((n.clone(), tensor_bytes(t)?, t.dims().to_vec())))
        .collect::<Result<Vec<_>>>()?;
    let views = encoded
        .iter()
        .map(|(n, (dt, bytes), shape)| {
            safetensors::tensor::TensorView::new(*dt, shape.clone(), bytes)
                .map(|v| (n.clone(), v))
                .map_err(|e| NetsError::Serialize {
                    what: format!("tensor `{n}`"),
                    reason: e.to_string(),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::tensor::serialize(views, Some(meta)).map_err(|e| NetsError::Serialize {
        what: "safetensors".into(),
        reason: e.to_string(),
    })
}

/// Reads a safetensors file into tensors of `dtype` on `device` (stored f32/f64 only).
pub(crate) fn read_safetensors(
    path: &Path,
    dtype: DType,
    device: &Device,
) -> Result<Vec<(String, Tensor)>> {
    if !path.exists() {
        return Err(NetsError::MissingFile {
            what: "checkpoint file".into(),
            path: path.to_path_buf(),
        });
    }
    let bytes = fs::read(path).map_err(|e| NetsError::io("cannot read", path, e))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| NetsError::CorruptSafetensors {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        let data = view.data();
        let shape = view.shape().to_vec();
        let t = match view.dtype() {
            Dtype::F32 => {
                let v: Vec<f32> = data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                Tensor::from_vec(v, shape, device)?
            }
            Dtype::F64 => {
                let v: Vec<f64> = data
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect();
                Tensor::from_vec(v, shape, device)?
            }
            other => {
                return Err(NetsError::CorruptSafetensors {
                    path: path.to_path_buf(),
                    reason: format!(
                        "tensor `{name}` has unsupported dtype {other:?} (f32/f64 only)"
                    ),
                })
            }
        };
        out.push((name, t.to_dtype(dtype)?));
    }
    Ok(out)
}

/// Checks that `moments` has an `m` and a `v` of the right shape for every parameter and nothing
/// else.
fn check_moments(sampler: &LearnedSampler, moments: &OptimizerMoments, origin: &str) -> Result<()> {
    for (kind, map) in [("m", &moments.m), ("v", &moments.v)] {
        let shapes: BTreeMap<String, Vec<usize>> = map
            .iter()
            .map(|(k, t)| (k.clone(), t.dims().to_vec()))
            .collect();
        params::check_shapes(
            sampler.config(),
            &shapes,
            &format!("{origin} ({kind} moments)"),
        )?;
    }
    Ok(())
}

/// Saves `sampler` (and optionally its training state and AdamW moments) to the checkpoint
/// directory `dir`, atomically, replacing any previous checkpoint there.
pub fn save(
    dir: &Path,
    sampler: &LearnedSampler,
    training: Option<(&TrainingState, &OptimizerMoments)>,
) -> Result<()> {
    if let Some((_, moments)) = training {
        check_moments(sampler, moments, "training state")?;
    }
    let meta = CheckpointMeta {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        config: sampler.config().clone(),
        parameter_count: sampler.parameter_count(),
        dtype: dtype_name(sampler.dtype()).into(),
    };
    let info = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        (
            "architecture".to_string(),
            sampler.config().architecture().to_string(),
        ),
    ]);
    let model_bytes = serialize(&sampler.named_parameters(), info.clone())?;
    let meta_json = serde_json::to_string_pretty(&meta).map_err(|e| NetsError::Serialize {
        what: CONFIG_FILE.into(),
        reason: e.to_string(),
    })?;
    let training_bytes = match training {
        Some((state, moments)) => {
            let mut named = Vec::new();
            for (prefix, map) in [("m", &moments.m), ("v", &moments.v)] {
                for (k, t) in map {
                    named.push((format!("{prefix}.{k}"), t.clone()));
                }
            }
            let json = serde_json::to_string_pretty(state).map_err(|e| NetsError::Serialize {
                what: TRAINING_STATE_JSON.into(),
                reason: e.to_string(),
            })?;
            Some((json, serialize(&named, info)?))
        }
        None => None,
    };
    if !dir
        .parent()
        .is_none_or(|p| p.as_os_str().is_empty() || p.is_dir())
    {
        return Err(NetsError::MissingFile {
            what: "parent directory of the checkpoint".into(),
            path: dir.parent().map(Path::to_path_buf).unwrap_or_default(),
        });
    }
    write_dir_atomic(dir, |tmp| -> Result<()> {
        write_atomic(&tmp.join(MODEL_FILE), &model_bytes)?;
        write_atomic(&tmp.join(CONFIG_FILE), meta_json.as_bytes())?;
        if let Some((json, bytes)) = &training_bytes {
            write_atomic(&tmp.join(TRAINING_STATE_FILE), bytes)?;
            write_atomic(&tmp.join(TRAINING_STATE_JSON), json.as_bytes())?;
        }
        Ok(())
    })
}

/// Reads and checks `config.json` of the checkpoint `dir`.
pub fn read_meta(dir: &Path) -> Result<CheckpointMeta> {
    if !dir.is_dir() {
        return Err(NetsError::MissingFile {
            what: "checkpoint directory".into(),
            path: dir.to_path_buf(),
        });
    }
    let path = dir.join(CONFIG_FILE);
    if !path.exists() {
        return Err(NetsError::MissingFile {
            what: "checkpoint metadata".into(),
            path,
        });
    }
    let text = fs::read_to_string(&path).map_err(|e| NetsError::io("cannot read", &path, e))?;
    let meta: CheckpointMeta = serde_json::from_str(&text).map_err(|e| NetsError::BadMetadata {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if meta.format != FORMAT {
        return Err(NetsError::BadMetadata {
            path,
            reason: format!("format is `{}`, expected `{FORMAT}`", meta.format),
        });
    }
    if meta.format_version != FORMAT_VERSION {
        return Err(NetsError::BadMetadata {
            path,
            reason: format!(
                "format_version {} is not supported (this build reads {FORMAT_VERSION})",
                meta.format_version
            ),
        });
    }
    meta.config.validate().map_err(|e| NetsError::BadMetadata {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let count = params::parameter_count(&meta.config)?;
    if count != meta.parameter_count {
        return Err(NetsError::BadMetadata {
            path,
            reason: format!(
                "parameter_count {} but {} has {count} parameters",
                meta.parameter_count, meta.config
            ),
        });
    }
    Ok(meta)
}

/// Reads the checkpoint's metadata and weights, checked against its config (every parameter
/// present with the right shape, nothing else), as tensors of `dtype` on `device`.
pub fn load_weights(
    dir: &Path,
    dtype: DType,
    device: &Device,
) -> Result<(CheckpointMeta, HashMap<String, Tensor>)> {
    let meta = read_meta(dir)?;
    let path = dir.join(MODEL_FILE);
    let tensors: HashMap<String, Tensor> = read_safetensors(&path, dtype, device)?
        .into_iter()
        .collect();
    let shapes = tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.dims().to_vec()))
        .collect();
    params::check_shapes(&meta.config, &shapes, &path.display().to_string())?;
    Ok((meta, tensors))
}

/// Reads the optional training state of the checkpoint `dir` (`None` when it has none), with the
/// moments checked against `config`.
pub fn load_training_state(
    dir: &Path,
    config: &SamplerConfig,
    dtype: DType,
    device: &Device,
) -> Result<Option<(TrainingState, OptimizerMoments)>> {
    let json_path = dir.join(TRAINING_STATE_JSON);
    let st_path = dir.join(TRAINING_STATE_FILE);
    match (json_path.exists(), st_path.exists()) {
        (false, false) => return Ok(None),
        (true, false) => {
            return Err(NetsError::MissingFile {
                what: format!("optimizer moments (next to {TRAINING_STATE_JSON})"),
                path: st_path,
            })
        }
        (false, true) => {
            return Err(NetsError::MissingFile {
                what: format!("training state (next to {TRAINING_STATE_FILE})"),
                path: json_path,
            })
        }
        (true, true) => {}
    }
    let text =
        fs::read_to_string(&json_path).map_err(|e| NetsError::io("cannot read", &json_path, e))?;
    let state: TrainingState = serde_json::from_str(&text).map_err(|e| NetsError::BadMetadata {
        path: json_path.clone(),
        reason: e.to_string(),
    })?;
    let mut moments = OptimizerMoments::default();
    for (name, t) in read_safetensors(&st_path, dtype, device)? {
        if let Some(p) = name.strip_prefix("m.") {
            moments.m.insert(p.to_string(), t);
        } else if let Some(p) = name.strip_prefix("v.") {
            moments.v.insert(p.to_string(), t);
        } else {
            return Err(NetsError::CorruptSafetensors {
                path: st_path,
                reason: format!("tensor `{name}` is neither `m.<param>` nor `v.<param>`"),
            });
        }
    }
    for (kind, map) in [("m", &moments.m), ("v", &moments.v)] {
        let shapes = map
            .iter()
            .map(|(k, t)| (k.clone(), t.dims().to_vec()))
            .collect();
        params::check_shapes(
            config,
            &shapes,
            &format!("{} ({kind} moments)", st_path.display()),
        )?;
    }
    Ok(Some((state, moments)))
}

/// Loads the checkpoint `dir`: a non-trainable sampler computing in `dtype` on `device`, plus the
/// training state when present.
pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Checkpoint> {
    let (meta, tensors) = load_weights(dir, dtype, device)?;
    let origin = dir.join(MODEL_FILE).display().to_string();
    let sampler = LearnedSampler::from_tensors(&meta.config, tensors, dtype, device, &origin)?;
    let training = load_training_state(dir, &meta.config, dtype, device)?;
    Ok(Checkpoint {
        meta,
        sampler,
        training,
    })
}

/// [`load`], but first checks that the checkpoint's configuration equals `expected`
/// ([`NetsError::ConfigMismatch`] otherwise).
pub fn load_expecting(
    dir: &Path,
    expected: &SamplerConfig,
    dtype: DType,
    device: &Device,
) -> Result<Checkpoint> {
    let meta = read_meta(dir)?;
    if &meta.config != expected {
        return Err(NetsError::ConfigMismatch {
            path: dir.to_path_buf(),
            expected: expected.to_string(),
            found: meta.config.to_string(),
        });
    }
    load(dir, dtype, device)
}

impl LearnedSampler {
    /// Loads the checkpoint directory `dir` ([`load`]) as an inference sampler computing in
    /// `dtype` on `device` (any training state in it is ignored).
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        Ok(load(dir, dtype, device)?.sampler)
    }

    /// Saves the weights and config to the checkpoint directory `dir`, atomically ([`save`]
    /// without training state).
    pub fn save(&self, dir: &Path) -> Result<()> {
        save(dir, self, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_state_round_trip() {
        use rand::{RngCore, SeedableRng};
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        rng.set_stream(3);
        for _ in 0..13 {
            rng.next_u32();
        }
        let state = RngState::capture(&rng);
        let json = serde_json::to_string(&state).unwrap();
        let mut back = serde_json::from_str::<RngState>(&json)
            .unwrap()
            .restore()
            .unwrap();
        for _ in 0..100 {
            assert_eq!(rng.next_u64(), back.next_u64());
        }
        let mut bad = state.clone();
        bad.seed = "zz".repeat(32);
        assert!(bad.restore().is_err());
    }
}
