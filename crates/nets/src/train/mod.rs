//! Training learned samplers on replayed base-model logits (SPEC §2, issue 4).
//!
//! - [`records`]: candidate records (`adasamp generate --output` JSONL), checked line by line.
//! - [`replay`]: teacher-forced replay of a record through the frozen base LM.
//! - [`data`]: the in-memory training set: raw rows (f16/f32) and pipeline targets per record.
//! - [`cache`]: replayed rows on disk (safetensors shards, keyed by model + data hash).
//! - [`optim`]: AdamW with exactly restorable moments; [`schedule`]: warm-up + cosine/linear.
//! - [`trainer`]: the loop, evaluation, metrics, checkpoints, resume.
//!
//! [`replayed_dataset`] ties records, cache and replay together for the CLI.

pub mod cache;
pub mod data;
pub mod optim;
pub mod records;
pub mod replay;
pub mod schedule;
pub mod trainer;

use std::io::Read;
use std::path::{Path, PathBuf};

use adasamp_engine::{BackendChoice, LoadOptions};
use sha2::{Digest, Sha256};

pub use cache::{CacheIndex, CacheKey};
pub use data::{Dataset, RowPrecision, Target};
pub use optim::AdamW;
pub use records::{read_records, CandidateRecord};
pub use schedule::{Schedule, ScheduleKind};
pub use trainer::{
    evaluate, train, EvalMetrics, Quiet, StepMetrics, TrainConfig, TrainObserver, TrainReport,
};

use crate::error::{NetsError, Result};

/// SHA-256 (hex) of a file, or of a model directory's `config.json`, tokenizer and weight files
/// (names and contents, in name order).
pub fn content_sha256(path: &Path) -> Result<String> {
    let mut h = Sha256::new();
    let mut files: Vec<PathBuf> = if path.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| NetsError::io("cannot list", path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let n = p.file_name().map(|n| n.to_string_lossy().to_string());
                n.is_some_and(|n| {
                    n.ends_with(".safetensors") || n.ends_with(".json") || n.ends_with(".gguf")
                })
            })
            .collect();
        v.sort();
        v
    } else {
        vec![path.to_path_buf()]
    };
    if files.is_empty() {
        files.push(path.to_path_buf());
    }
    let mut buf = vec![0u8; 1 << 20];
    for f in files {
        if path.is_dir() {
            h.update(
                f.file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default(),
            );
        }
        let mut file = std::fs::File::open(&f).map_err(|e| NetsError::io("cannot open", &f, e))?;
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| NetsError::io("cannot read", &f, e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

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
            .map_err(|e| NetsError::InvalidInput(format!("default model: {e}")))?,
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
                LoadOptions::with_max_seq_len(s.max_seq_len),
                &mut |m: &str| log(m),
            )
            .map_err(|e| NetsError::InvalidInput(format!("loading the model: {e}")))?;
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
