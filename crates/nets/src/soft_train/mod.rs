//! Soft-sampling training of the LM head (SPEC 3): the objective of [`objective`] under the
//! guidance-α schedule ([`adasamp_sampling::soft::AlphaSchedule`]), AdamW on a trainable copy of
//! the head (the model's other weights, input embeddings included, frozen), atomic checkpoints
//! and exact resume.
//!
//! Step `s` (0-based) of `steps` trains on batch `s` of the data order (a seeded permutation per
//! epoch) with `α = schedule.alpha(s, steps)`; at α = 1 the batch is fed teacher-forced in one
//! forward (the same loss as the one-position-per-step loop, which the tests check). Everything a
//! step depends on — head, AdamW moments and step count — is in the checkpoint, so a run killed
//! at any point and started again continues exactly where its last checkpoint left it.

pub mod bptt;
pub mod data;
pub mod objective;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use adasamp_engine::files::{write_atomic, write_dir_atomic};
use adasamp_engine::LanguageModel;
use adasamp_sampling::soft::AlphaSchedule;
use adasamp_sampling::{Pipeline, PipelineSpec};
use candle_core::{DType, Device, Tensor, Var};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{read_safetensors, serialize, AdamWState, OptimizerMoments};
use crate::error::{NetsError, Result};
use crate::train::optim::AdamW;
pub use bptt::FrozenTransformer;
pub use data::{load_train_model, read_sequences, TrainModel};
pub use objective::{FinalNorm, HeadInputs, TrainSequence};

/// The head checkpoint file (`head`, and the AdamW moments `m.head`, `v.head`).
pub const HEAD_FILE: &str = "head.safetensors";
/// The training-state file.
pub const STATE_FILE: &str = "soft_train.json";
const HEAD: &str = "head";

/// Hyper-parameters of a soft-sampling training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoftTrainConfig {
    /// Optimizer steps.
    pub steps: usize,
    /// Sequences per step.
    pub batch_size: usize,
    /// AdamW learning rate (constant).
    pub lr: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// The guidance-α schedule.
    pub schedule: AlphaSchedule,
    /// The pipeline whose distribution weighs the soft inputs.
    pub soft_pipeline: PipelineSpec,
    /// Seed of the data order.
    pub seed: u64,
    /// Checkpoint every this many steps (and at the end).
    pub checkpoint_every: usize,
}

impl SoftTrainConfig {
    /// Checks every field (steps, batch size, checkpoint interval ≥ 1; a finite positive
    /// learning rate; a non-negative weight decay; the schedule; a pipeline that builds).
    pub fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("steps", self.steps),
            ("batch_size", self.batch_size),
            ("checkpoint_every", self.checkpoint_every),
        ] {
            if v == 0 {
                return Err(NetsError::config(field, v, "must be at least 1"));
            }
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(NetsError::config("lr", self.lr, "must be finite and > 0"));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(NetsError::config(
                "weight_decay",
                self.weight_decay,
                "must be finite and ≥ 0",
            ));
        }
        self.schedule.validate().map_err(|e| {
            NetsError::config("schedule", format!("{:?}", self.schedule), e.to_string())
        })?;
        Pipeline::from_spec(self.soft_pipeline.clone()).map_err(|e| {
            NetsError::config("soft_pipeline", &self.soft_pipeline.name, e.to_string())
        })?;
        Ok(())
    }
}

/// One logged step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepLog {
    /// 0-based step.
    pub step: usize,
    /// Guidance α of the step.
    pub alpha: f64,
    /// Mean cross-entropy over the batch's predicted positions (before the update).
    pub loss: f64,
    /// Predicted positions in the batch.
    pub positions: usize,
}

/// The training state saved with the head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoftTrainState {
    /// The run's hyper-parameters.
    pub config: SoftTrainConfig,
    /// Steps done.
    pub step: usize,
    /// AdamW hyper-parameters and update count.
    pub adamw: AdamWState,
    /// A fingerprint of the training data (sequence count and token total) checked at resume.
    pub data: DataFingerprint,
    /// Every step so far.
    pub log: Vec<StepLog>,
}

/// What identifies a training set for resuming.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFingerprint {
    /// Sequences.
    pub sequences: usize,
    /// Tokens over all sequences.
    pub tokens: usize,
    /// A 64-bit FNV-1a hash of every token id and sequence boundary.
    pub hash: u64,
}

impl DataFingerprint {
    /// The fingerprint of `data`.
    pub fn of(data: &[TrainSequence]) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut mix = |x: u64| {
            h ^= x;
            h = h.wrapping_mul(0x0100_0000_01b3);
        };
        for s in data {
            mix(s.prompt_len as u64 | 1 << 40);
            for &t in &s.tokens {
                mix(t as u64);
            }
            mix(u64::MAX);
        }
        Self {
            sequences: data.len(),
            tokens: data.iter().map(|s| s.tokens.len()).sum(),
            hash: h,
        }
    }
}

/// The frozen model and what the trainer needs of it.
pub struct SoftTrainModel<'m> {
    /// The model (an f32 copy, candle), fed tokens and embeddings.
    pub model: &'m mut dyn LanguageModel,
    /// Its final norm.
    pub norm: FinalNorm,
    /// The same frozen transformer as differentiable operations (the α < 1 loss and its
    /// back-propagation through the fed mixtures).
    pub frozen: FrozenTransformer,
    /// Its LM head as loaded, `[V, hidden]` (the start of training; for a tied model a copy of
    /// the input embeddings).
    pub initial_head: Tensor,
}

/// Batch `step` of the data order: epoch `e` is a permutation of the sequences seeded by
/// `(seed, e)`; steps take consecutive `batch_size` slices of the concatenated epochs.
pub fn batch_indices(n: usize, batch_size: usize, seed: u64, step: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(batch_size);
    let mut pos = step * batch_size;
    let mut perm: Option<(usize, Vec<usize>)> = None;
    while out.len() < batch_size.min(n) {
        let (epoch, i) = (pos / n, pos % n);
        if perm.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let mut p: Vec<usize> = (0..n).collect();
            p.shuffle(&mut ChaCha8Rng::seed_from_u64(
                seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ));
            perm = Some((epoch, p));
        }
        if let Some((_, p)) = &perm {
            out.push(p[i]);
        }
        pos += 1;
    }
    out
}

/// The loss of one batch at guidance `alpha`, as a tensor differentiable in `head`, and its
/// number of positions. At α = 1 the batch is fed teacher-forced in one forward; at α < 1 the
/// loss is built by [`bptt::soft_logits`], so its gradient flows through every fed mixture
/// `p_tᵀW_E` back to the head (the exact gradient of the seed's objective).
pub fn batch_loss(
    m: &mut SoftTrainModel<'_>,
    head: &Tensor,
    soft: &Pipeline,
    batch: &[TrainSequence],
    alpha: f64,
) -> Result<(Tensor, usize)> {
    if alpha >= 1.0 {
        let inputs = objective::teacher_forced_inputs(m.model, &m.norm, batch)?;
        let n = inputs.targets.len();
        return Ok((objective::head_loss(head, &inputs)?, n));
    }
    objective::check_batch(batch, m.model.info().vocab_size)?;
    adasamp_sampling::soft::check_alpha("alpha", alpha)
        .map_err(|e| NetsError::bad_request("alpha", alpha, e.to_string()))?;
    let temperature = bptt::pipeline_temperature(soft.spec())?;
    let (logits, targets) =
        bptt::soft_logits(&m.frozen, &m.norm, head, soft, temperature, batch, alpha)?;
    let n = targets.len();
    let targets = Tensor::from_vec(targets, n, &Device::Cpu)?;
    Ok((candle_nn::loss::cross_entropy(&logits, &targets)?, n))
}

/// Writes the checkpoint `dir` (head, moments, state) atomically.
fn save(
    dir: &Path,
    head: &Tensor,
    moments: &OptimizerMoments,
    state: &SoftTrainState,
) -> Result<()> {
    let mut named = vec![(HEAD.to_string(), head.clone())];
    for (prefix, map) in [("m", &moments.m), ("v", &moments.v)] {
        for (k, t) in map {
            named.push((format!("{prefix}.{k}"), t.clone()));
        }
    }
    let bytes = serialize(
        &named,
        HashMap::from([("format".to_string(), "adasamp-soft-head".to_string())]),
    )?;
    let json = serde_json::to_string_pretty(state).map_err(|e| NetsError::Serialize {
        what: STATE_FILE.into(),
        reason: e.to_string(),
    })?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| NetsError::io("create", parent, e))?;
    }
    write_dir_atomic(dir, |tmp| -> Result<()> {
        write_atomic(&tmp.join(HEAD_FILE), &bytes)?;
        write_atomic(&tmp.join(STATE_FILE), json.as_bytes())?;
        Ok(())
    })
}

/// A checkpoint read back: head, moments, state.
struct Saved {
    head: Tensor,
    moments: OptimizerMoments,
    state: SoftTrainState,
}

fn read_state(dir: &Path) -> Result<SoftTrainState> {
    let p = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&p).map_err(|e| NetsError::io("read", &p, e))?;
    serde_json::from_str(&text).map_err(|e| NetsError::Resume {
        dir: dir.to_path_buf(),
        reason: format!("{STATE_FILE}: {e}"),
    })
}

fn load_saved(dir: &Path) -> Result<Saved> {
    let state = read_state(dir)?;
    let mut head = None;
    let mut moments = OptimizerMoments::default();
    for (name, t) in read_safetensors(&dir.join(HEAD_FILE), DType::F32, &Device::Cpu)? {
        match name.split_once('.') {
            Some(("m", k)) => {
                moments.m.insert(k.to_string(), t);
            }
            Some(("v", k)) => {
                moments.v.insert(k.to_string(), t);
            }
            _ if name == HEAD => head = Some(t),
            _ => {
                return Err(NetsError::Resume {
                    dir: dir.to_path_buf(),
                    reason: format!("{HEAD_FILE}: unexpected tensor `{name}`"),
                })
            }
        }
    }
    let head = head.ok_or_else(|| NetsError::Resume {
        dir: dir.to_path_buf(),
        reason: format!("{HEAD_FILE} holds no `{HEAD}` tensor"),
    })?;
    Ok(Saved {
        head,
        moments,
        state,
    })
}

/// Reads the trained head (`[V, hidden]`, f32) of the checkpoint `dir`.
pub fn load_head(dir: &Path) -> Result<Tensor> {
    Ok(load_saved(dir)?.head)
}

/// What a training run did.
#[derive(Debug, Clone)]
pub struct SoftTrainOutcome {
    /// The state at the end (its log holds every step of the run, resumed ones included).
    pub state: SoftTrainState,
    /// Steps this call ran (the rest came from the checkpoint).
    pub ran: usize,
    /// Whether the run resumed from a checkpoint.
    pub resumed: bool,
}

/// Trains the head on `data` into the checkpoint directory `dir` (resuming from it when it holds
/// a checkpoint of the same configuration and data), until `config.steps` or, when given, only
/// up to `stop_after` steps in total. `on_step` sees every step as it is done.
pub fn train(
    m: &mut SoftTrainModel<'_>,
    data: &[TrainSequence],
    config: &SoftTrainConfig,
    dir: &Path,
    stop_after: Option<usize>,
    on_step: &mut dyn FnMut(&StepLog),
) -> Result<SoftTrainOutcome> {
    config.validate()?;
    if data.is_empty() {
        return Err(NetsError::NoData {
            what: "training sequences".into(),
        });
    }
    let (v, d) = (m.model.info().vocab_size, m.model.info().hidden_size);
    if m.initial_head.dims() != [v, d] {
        return Err(NetsError::shape(
            "initial head",
            format!("[{v}, {d}]"),
            format!("{:?}", m.initial_head.dims()),
        ));
    }
    let fingerprint = DataFingerprint::of(data);
    let soft = Pipeline::from_spec(config.soft_pipeline.clone()).map_err(|e| {
        NetsError::config("soft_pipeline", &config.soft_pipeline.name, e.to_string())
    })?;
    let resumable = dir.join(STATE_FILE).exists();
    let (head, mut opt, mut state) = if resumable {
        let s = load_saved(dir)?;
        let mismatch = |what: &str| NetsError::Resume {
            dir: dir.to_path_buf(),
            reason: format!("the checkpoint was made with a different {what}"),
        };
        if s.state.config != *config {
            return Err(mismatch("configuration"));
        }
        if s.state.data != fingerprint {
            return Err(mismatch("training data"));
        }
        if s.head.dims() != [v, d] {
            return Err(mismatch("model (head shape)"));
        }
        let opt = AdamW::from_saved(s.state.adamw.clone(), s.moments);
        (Var::from_tensor(&s.head)?, opt, s.state)
    } else {
        let adamw = AdamWState {
            weight_decay: config.weight_decay,
            ..AdamWState::default()
        };
        let state = SoftTrainState {
            config: config.clone(),
            step: 0,
            adamw: adamw.clone(),
            data: fingerprint,
            log: Vec::new(),
        };
        let head = m
            .initial_head
            .to_dtype(DType::F32)?
            .to_device(&Device::Cpu)?;
        (Var::from_tensor(&head)?, AdamW::new(adamw), state)
    };
    let vars = BTreeMap::from([(HEAD.to_string(), head.clone())]);
    let end = stop_after.map_or(config.steps, |s| s.min(config.steps));
    let start = state.step;
    while state.step < end {
        let s = state.step;
        let alpha = config.schedule.alpha(s, config.steps);
        let batch: Vec<TrainSequence> =
            batch_indices(data.len(), config.batch_size, config.seed, s)
                .into_iter()
                .map(|i| data[i].clone())
                .collect();
        let (loss, positions) = batch_loss(m, head.as_tensor(), &soft, &batch, alpha)?;
        let value = loss.to_scalar::<f32>()? as f64;
        if !value.is_finite() {
            return Err(NetsError::bad_request(
                "loss",
                value,
                format!("step {s}: not finite (try a lower learning rate)"),
            ));
        }
        let grads = loss.backward()?;
        let g = grads
            .get(head.as_tensor())
            .ok_or_else(|| NetsError::shape("head gradient", "a gradient", "none"))?
            .clone();
        opt.step(&vars, &BTreeMap::from([(HEAD.to_string(), g)]), config.lr)?;
        let log = StepLog {
            step: s,
            alpha,
            loss: value,
            positions,
        };
        on_step(&log);
        state.log.push(log);
        state.step += 1;
        state.adamw = opt.state().clone();
        if state.step % config.checkpoint_every == 0 || state.step == end {
            save(dir, head.as_tensor(), opt.moments(), &state)?;
        }
    }
    Ok(SoftTrainOutcome {
        ran: state.step - start,
        resumed: resumable,
        state,
    })
}
