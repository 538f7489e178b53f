//! How closely a learned sampler imitates the pipeline it was trained on, measured where it
//! generated: for every position of its eval generations, the base model's raw row (a
//! teacher-forced replay of prompt + generation, `adasamp_nets::train::replay`), the imitated
//! pipeline's target row (the pipeline applied with the real token history,
//! `adasamp_nets::train::Dataset`) and the learned sampler's output; then (SPEC 2 "Analysis",
//! `adasamp_nets::train::evaluate_fast`)
//!
//! ```text
//! KL(target ‖ learned) = Σ_{kept v} p_t(v) · (log p_t(v) − log p_l(v))     (nats)
//! truncated mass       = Σ_{v truncated by the target} p_l(v)
//! ```
//!
//! averaged over positions, beside the same two numbers for the raw rows (the identity).
//!
//! What a checkpoint imitates: a training run records the SHA-256 of its data file
//! (`training_state.json`, `extra.data`); the training file among those given whose content has
//! that hash is its data, and each of its records' `sampler_info.config` is the target of that
//! record. When all its records share one pipeline, that pipeline is the one imitated and the
//! sampler is measured where it generated (above). When they hold several (score-selected data:
//! each record's target is the pipeline that won it), no single pipeline applies to the eval
//! generations; the sampler is then measured on the training records the trainer held out
//! (its `eval_fraction` and seed, recorded in the training state, split the replayed data
//! exactly as training did), each position against its own record's pipeline — the numbers
//! `adasamp train` reports for its held-out rows. Without a training state, a matching file or
//! held-out records the values are absent, with the reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use adasamp_curate::candidates::same_pipeline::same_spec;
use adasamp_engine::files::{content_sha256, write_atomic};
use adasamp_engine::record::{read_jsonl, NumberedRecord};
use adasamp_engine::LoadedModel;
use adasamp_nets::checkpoint::{TrainingState, TRAINING_STATE_JSON};
use adasamp_nets::train::{
    evaluate_fast, replay, replayed_dataset, Dataset, EvalMetrics, ReplaySettings, RowPrecision,
};
use adasamp_nets::LearnedSampler;
use adasamp_sampling::PipelineSpec;
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

/// The imitation file of a run directory.
pub const IMITATION: &str = "imitation.json";

/// What a learned sampler is measured against (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The one pipeline of all its training records: measured on its eval generations.
    Pipeline(PipelineSpec),
    /// Several pipelines: measured on the training records held out from its training, each
    /// against its own pipeline.
    HeldOutRecords {
        /// The training data file.
        data: PathBuf,
        /// The distinct target pipelines' names, in order of first appearance.
        pipelines: Vec<String>,
        /// The training run's held-out fraction of records.
        eval_fraction: f64,
        /// The training run's seed (it seeds the split).
        seed: u64,
    },
}

impl Target {
    /// What the sampler is measured against, as a phrase for the report.
    pub fn describe(&self) -> String {
        match self {
            Target::Pipeline(spec) => format!("the pipeline {}", describe(spec)),
            Target::HeldOutRecords {
                data,
                pipelines,
                eval_fraction,
                seed,
            } => format!(
                "the {} target pipelines of its training data {} ({}), each on its own records \
                 among those training held out (fraction {eval_fraction}, seed {seed})",
                pipelines.len(),
                data.display(),
                pipelines
                    .iter()
                    .take(6)
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// What a checkpoint imitates, or why it cannot be known.
pub type Imitated = std::result::Result<Target, String>;

/// What a checkpoint imitates, from its training data among `train_files` (see the module
/// doc). Only I/O and malformed files are errors; an unknown target is `Ok(Err(why))`.
pub fn imitated_pipeline(checkpoint: &Path, train_files: &[PathBuf]) -> Result<Imitated> {
    let state_path = checkpoint.join(TRAINING_STATE_JSON);
    if !state_path.is_file() {
        return Ok(Err(format!(
            "the checkpoint has no {TRAINING_STATE_JSON}, so its training data is not recorded"
        )));
    }
    let text = std::fs::read_to_string(&state_path).map_err(EvalError::io(&state_path))?;
    let state: TrainingState = serde_json::from_str(&text).map_err(|e| EvalError::BadLine {
        path: state_path.clone(),
        line: e.line(),
        message: e.to_string(),
    })?;
    let Some(data) = state.extra.get("data").and_then(|v| v.as_str()) else {
        return Ok(Err(format!(
            "{} records no training data hash (`extra.data`)",
            state_path.display()
        )));
    };
    let mut file = None;
    for f in train_files {
        if content_sha256(f)? == data {
            file = Some(f);
            break;
        }
    }
    let Some(file) = file else {
        return Ok(Err(format!(
            "none of the training files given is its training data (SHA-256 {}…)",
            &data[..data.len().min(12)]
        )));
    };
    let records = read_jsonl(file).map_err(adasamp_curate::CurateError::from)?;
    let mut pipelines: Vec<PipelineSpec> = Vec::new();
    for r in &records {
        let spec = &r.record.sampler_info.config;
        if !pipelines.iter().any(|p| same_spec(p, spec).is_ok()) {
            pipelines.push(spec.clone());
        }
    }
    let eval_fraction = state
        .extra
        .get("eval_fraction")
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0);
    match pipelines.len() {
        0 => Ok(Err(format!(
            "its training data {} holds no record",
            file.display()
        ))),
        1 => Ok(Ok(Target::Pipeline(pipelines.remove(0)))),
        n if eval_fraction <= 0.0 => Ok(Err(format!(
            "its training data {} has {n} target pipelines ({}) and its training held out no \
             records (eval_fraction {eval_fraction}): no single pipeline for its eval \
             generations, no held-out record to compare on",
            file.display(),
            pipelines
                .iter()
                .take(6)
                .map(|p| p.name.clone())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        _ => Ok(Ok(Target::HeldOutRecords {
            data: file.clone(),
            pipelines: pipelines.into_iter().map(|p| p.name).collect(),
            eval_fraction,
            seed: state.seed,
        })),
    }
}

/// KL and truncated mass of one learned contender, or why they are absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Imitation {
    /// The checkpoint directory.
    pub checkpoint: String,
    /// The imitated pipeline (its name and stages), when known.
    pub imitated: Option<String>,
    /// Why the values are absent.
    pub absent: Option<String>,
    /// Positions measured.
    pub positions: usize,
    /// Mean KL(target ‖ learned), nats.
    pub kl: Option<f64>,
    /// Mean learned mass on target-truncated tokens.
    pub truncated_mass: Option<f64>,
    /// Mean KL(target ‖ raw), nats: the identity's, for scale.
    pub identity_kl: Option<f64>,
    /// Mean raw mass on target-truncated tokens.
    pub identity_truncated_mass: Option<f64>,
}

/// A pipeline as one line: `name [stage(param=value, …), …]`.
pub fn describe(spec: &PipelineSpec) -> String {
    let stages: Vec<String> = spec
        .processors
        .iter()
        .map(|s| {
            let params: Vec<String> = s
                .params
                .iter()
                .map(|(k, v)| {
                    let v = serde_json::to_string(v).unwrap_or_else(|_| format!("{v:?}"));
                    format!("{k}={}", v.trim_matches('"'))
                })
                .collect();
            format!("{}({})", s.name, params.join(", "))
        })
        .collect();
    format!("`{}` [{}]", spec.name, stages.join(", "))
}

impl Imitation {
    /// The values of `m`, measured against `target`.
    pub fn measured(checkpoint: &Path, target: &Target, m: &EvalMetrics) -> Self {
        Self {
            checkpoint: checkpoint.display().to_string(),
            imitated: Some(target.describe()),
            absent: None,
            positions: m.rows,
            kl: Some(m.kl),
            truncated_mass: Some(m.truncated_mass),
            identity_kl: Some(m.identity_kl),
            identity_truncated_mass: Some(m.identity_truncated_mass),
        }
    }

    /// The values absent for `why`.
    pub fn absent(checkpoint: &Path, why: String) -> Self {
        Self {
            checkpoint: checkpoint.display().to_string(),
            imitated: None,
            absent: Some(why),
            positions: 0,
            kl: None,
            truncated_mass: None,
            identity_kl: None,
            identity_truncated_mass: None,
        }
    }
}

/// Measures the learned sampler of `checkpoint` against `imitated` on `records` (its own eval
/// generations), replayed through `lm` with at most `max_seq_len` tokens each.
pub fn measure(
    lm: &mut LoadedModel,
    checkpoint: &Path,
    imitated: &PipelineSpec,
    records: &[NumberedRecord],
    max_seq_len: usize,
) -> Result<Imitation> {
    let sampler = LearnedSampler::load(
        checkpoint,
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )?;
    let mut ds: Option<Dataset> = None;
    for rec in records {
        let Some(r) = replay::replay_record(lm, rec, max_seq_len)? else {
            continue;
        };
        let ds = ds.get_or_insert_with(|| Dataset::new(r.vocab, RowPrecision::F32));
        ds.add_record(
            &rec.id(),
            &r.prompt_tokens,
            &r.generation_tokens,
            &r.rows,
            imitated,
        )?;
    }
    let Some(ds) = ds.filter(|d| d.num_rows() > 0) else {
        return Ok(Imitation::absent(
            checkpoint,
            "its generations have no token to measure".into(),
        ));
    };
    let rows: Vec<usize> = (0..ds.num_rows()).collect();
    let m = evaluate_fast(&sampler, &ds, &rows, 1, 0)?;
    Ok(Imitation::measured(
        checkpoint,
        &Target::Pipeline(imitated.clone()),
        &m,
    ))
}

/// Measures the learned sampler of `checkpoint` on the records of its training data that
/// training held out (`target` a [`Target::HeldOutRecords`]), each position against its own
/// record's pipeline: the data replayed with `settings` (the replay cache's rows, as training
/// read them), split with the training run's fraction and seed.
pub fn measure_held_out(
    checkpoint: &Path,
    target: &Target,
    settings: &ReplaySettings,
    log: &mut dyn FnMut(&str),
) -> Result<Imitation> {
    let Target::HeldOutRecords {
        data,
        eval_fraction,
        seed,
        ..
    } = target
    else {
        return Err(EvalError::bad_parameter(
            "imitation target",
            target.describe(),
            "not a set of held-out training records",
        ));
    };
    let sampler = LearnedSampler::load(
        checkpoint,
        candle_core::DType::F32,
        &candle_core::Device::Cpu,
    )?;
    let replayed = replayed_dataset(data, settings, log, &mut |_, _| {})?;
    let ds = &replayed.dataset;
    let (_, rows) = ds.split(*eval_fraction, *seed)?;
    if rows.is_empty() {
        return Ok(Imitation::absent(
            checkpoint,
            "its held-out training records have no token to measure".into(),
        ));
    }
    let m = evaluate_fast(&sampler, ds, &rows, 1, 0)?;
    Ok(Imitation::measured(checkpoint, target, &m))
}

/// The measurements already in `path` (by contender name); a missing file has none.
pub fn read_results(path: &Path) -> Result<BTreeMap<String, Imitation>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| EvalError::BadLine {
            path: path.to_path_buf(),
            line: e.line(),
            message: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(EvalError::io(path)(e)),
    }
}

/// Writes the measurements to `path`, atomically.
pub fn write_results(path: &Path, results: &BTreeMap<String, Imitation>) -> Result<()> {
    let json = serde_json::to_string_pretty(results).map_err(|e| {
        EvalError::bad_parameter(
            "imitation",
            path.display(),
            format!("not serialisable: {e}"),
        )
    })?;
    write_atomic(path, format!("{json}\n").as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(pipeline: &str, temperature: f64) -> String {
        format!(
            r#"{{"id":"p/{pipeline}/s0","prompt":"q","generation":"g","sampler_info":{{"name":"{pipeline}","config":{{"name":"{pipeline}","processors":[{{"name":"temperature","params":{{"temperature":{temperature}}}}}]}}}},"seed":0,"prompt_id":"p"}}"#
        )
    }

    fn checkpoint_with_data(dir: &Path, data: &Path) -> PathBuf {
        let ck = dir.join("ck");
        std::fs::create_dir_all(&ck).unwrap();
        let mut state = TrainingState::default();
        state.extra.insert(
            "data".into(),
            serde_json::Value::String(content_sha256(data).unwrap()),
        );
        std::fs::write(
            ck.join(TRAINING_STATE_JSON),
            serde_json::to_string(&state).unwrap(),
        )
        .unwrap();
        ck
    }

    #[test]
    fn the_imitated_pipeline_comes_from_the_training_data_with_the_recorded_hash() {
        let dir = tempfile::tempdir().unwrap();
        let single = dir.path().join("single.jsonl");
        std::fs::write(
            &single,
            format!("{}\n{}\n", record("t07", 0.7), record("t07", 0.70)),
        )
        .unwrap();
        let mixed = dir.path().join("mixed.jsonl");
        std::fs::write(
            &mixed,
            format!("{}\n{}\n", record("t07", 0.7), record("t10", 1.0)),
        )
        .unwrap();
        let prompts = dir.path().join("prompts.jsonl");
        std::fs::write(&prompts, "{\"id\": \"p\", \"prompt\": \"q\"}\n").unwrap();

        let ck = checkpoint_with_data(dir.path(), &single);
        let got = imitated_pipeline(&ck, &[prompts.clone(), single.clone()]).unwrap();
        let Ok(Target::Pipeline(spec)) = got else {
            panic!("one pipeline expected: {got:?}")
        };
        assert_eq!(spec.name, "t07");
        assert_eq!(describe(&spec), "`t07` [temperature(temperature=0.7)]");

        let why = imitated_pipeline(&ck, &[prompts.clone(), mixed.clone()])
            .unwrap()
            .unwrap_err();
        assert!(why.contains("none of the training files"), "{why}");

        let ck2 = checkpoint_with_data(&dir.path().join("b"), &mixed);
        let why = imitated_pipeline(&ck2, std::slice::from_ref(&mixed))
            .unwrap()
            .unwrap_err();
        assert!(why.contains("2 target pipelines (t07, t10)"), "{why}");
        assert!(why.contains("held out no records"), "{why}");

        // Several pipelines and records held out: each held-out record against its own.
        let ck3 = checkpoint_with_data(&dir.path().join("c"), &mixed);
        let state_path = ck3.join(TRAINING_STATE_JSON);
        let mut state: TrainingState =
            serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
        state.seed = 7;
        state
            .extra
            .insert("eval_fraction".into(), serde_json::json!(0.25));
        std::fs::write(&state_path, serde_json::to_string(&state).unwrap()).unwrap();
        let got = imitated_pipeline(&ck3, std::slice::from_ref(&mixed)).unwrap();
        assert_eq!(
            got,
            Ok(Target::HeldOutRecords {
                data: mixed.clone(),
                pipelines: vec!["t07".into(), "t10".into()],
                eval_fraction: 0.25,
                seed: 7,
            })
        );
        let text = got.unwrap().describe();
        assert!(
            text.contains("2 target pipelines") && text.contains("`t07`, `t10`"),
            "{text}"
        );

        let bare = dir.path().join("bare");
        std::fs::create_dir_all(&bare).unwrap();
        let why = imitated_pipeline(&bare, &[single]).unwrap().unwrap_err();
        assert!(why.contains("training_state.json"), "{why}");
    }

    #[test]
    fn results_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(IMITATION);
        assert!(read_results(&p).unwrap().is_empty());
        let mut m = BTreeMap::new();
        m.insert(
            "x".to_string(),
            Imitation::absent(Path::new("ck"), "why".into()),
        );
        write_results(&p, &m).unwrap();
        assert_eq!(read_results(&p).unwrap(), m);
    }
}
