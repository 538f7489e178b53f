//! Training learned samplers on replayed base-model logits (SPEC §2, issue 4).
//!
//! - [`records`]: candidate records (the JSONL `generate` writes), checked line by line.
//! - [`replay`]: teacher-forced replay of a record through the frozen base LM.
//! - [`data`]: the in-memory training set: raw rows (f16/f32) and pipeline targets per record.
//! - [`cache`]: replayed rows on disk (safetensors shards, keyed by model + data hash).
//! - [`optim`]: AdamW with exactly restorable moments; [`schedule`]: warm-up + cosine/linear.
//! - `batches`: a micro-batch's tensors from the stored rows (host-built, device-assembled, or
//!   staged in page-locked memory while the device runs the previous pass).
//! - [`trainer`]: the loop (fast or candle engine), evaluation, metrics, checkpoints, resume.
//! - [`bench`]: training-step throughput on synthetic positions (`adasamp bench-train`).
//!
//! [`replayed_dataset`] ties records, cache and replay together for the CLI.

mod batches;
pub mod bench;
pub mod cache;
pub mod data;
pub mod optim;
pub mod records;
pub mod replay;
pub mod schedule;
pub mod trainer;

use std::path::{Path, PathBuf};

use adasamp_engine::files::content_sha256;
use adasamp_engine::{BackendChoice, ComputeDevice, LoadOptions};

pub use adasamp_engine::record::{CandidateRecord, NumberedRecord};
pub use cache::{CacheIndex, CacheKey};
pub use data::{Dataset, RowPrecision, Target};
pub use optim::AdamW;
pub use records::read_records;
pub use schedule::{Schedule, ScheduleKind};
pub use trainer::{
    evaluate, evaluate_fast, train, Engine, EvalMetrics, ProgressObserver, Quiet, StepMetrics,
    TrainConfig, TrainObserver, TrainReport,
};

use crate::error::{NetsError, Result};

/// Where and how to replay.
#[derive(Clone, Debug)]
pub struct ReplaySettings {
    /// Base model (`None`: the default model, fetched if needed).
    pub model: Option<PathBuf>,
    /// Backend for the replay.
    pub backend: BackendChoice,
    /// Cache root (one sub-directory per model + data + precision + length cap).
    pub cache_root: PathBuf,
    /// Precision of cached rows.
    pub precision: RowPrecision,
    /// Cap on prompt + generation tokens (`None`: the model's context; required to key the
    /// cache, so it is resolved to the model's length when absent).
    pub max_seq_len: Option<usize>,
    /// Where the base model runs for the replay (the rows are the same up to the device's
    /// rounding, so the cache is not keyed by it).
    pub device: ComputeDevice,
}

/// A replayed training set with where it came from.
#[derive(Debug)]
pub struct Replayed {
    /// Rows and targets.
    pub dataset: Dataset,
    /// The cache index.
    pub index: CacheIndex,
    /// The cache directory.
    pub cache_dir: PathBuf,
    /// Whether the cache existed (no replay ran).
    pub cache_hit: bool,
    /// `data sha256`, for resume checks.
    pub data_sha256: String,
}

/// Reads the records of `data`, then loads their replay from the cache, replaying through the
/// base model first on a miss. `log` receives progress lines; `progress(done, total)` follows the
/// replay.
pub fn replayed_dataset(
    data: &Path,
    s: &ReplaySettings,
    log: &mut dyn FnMut(&str),
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Replayed> {
    let records = read_records(data)?;
    let model_path = match &s.model {
        Some(p) => p.clone(),
        None => adasamp_engine::fetch::ensure_default_model(&mut |m: &str| log(m))
            .map_err(|e| NetsError::model("fetching the default model", e))?,
    };
    let data_sha256 = content_sha256(data)?;
    let model_sha256 = content_sha256(&model_path)?;
    // The length cap is part of the key; without one the model must be loaded to learn its
    // context, so a cap of 0 stands for "the model's own".
    let key = CacheKey {
        model_sha256,
        data_sha256: data_sha256.clone(),
        precision: s.precision,
        max_seq_len: s.max_seq_len.unwrap_or(0),
    };
    let dir = cache::cache_dir(&s.cache_root, &key);
    let (index, hit) = match cache::read_index(&dir, &key)? {
        Some(index) => {
            log(&format!("replay cache hit: {}", dir.display()));
            (index, true)
        }
        None => {
            log(&format!(
                "replaying {} records through {} into {}",
                records.len(),
                model_path.display(),
                dir.display()
            ));
            let mut lm = adasamp_engine::load(
                Some(&model_path),
                s.backend,
                LoadOptions {
                    device: s.device,
                    ..LoadOptions::with_max_seq_len(s.max_seq_len)
                },
                &mut |m: &str| log(m),
            )
            .map_err(|e| NetsError::model("loading the model", e))?;
            let cap = s.max_seq_len.unwrap_or(lm.model.info().max_seq_len);
            let index = cache::build(
                &dir,
                &key,
                &model_path.display().to_string(),
                &data.display().to_string(),
                &records,
                &mut lm,
                progress,
                cap,
            )?;
            (index, false)
        }
    };
    let dataset = cache::load_dataset(&dir, &index, &records)?;
    Ok(Replayed {
        dataset,
        index,
        cache_dir: dir,
        cache_hit: hit,
        data_sha256,
    })
}
