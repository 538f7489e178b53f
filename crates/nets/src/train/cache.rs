//! On-disk cache of replayed logits, so several samplers train on one replay.
//!
//! ```text
//! <root>/<model sha256[..16]>-<data sha256[..16]>-<f16|f32>-L<max_seq_len>/
//!     index.json              CacheIndex: both full hashes, V, precision, per record its line,
//!                             id, prompt and generation tokens, shard and first row
//!     shard-00000.safetensors tensor `logits` [rows, V] (F16 or F32): raw rows of whole records
//! ```
//!
//! Only raw rows are stored: targets are recomputed from the records' pipelines on load (cheap,
//! and a few KB instead of 4·V bytes per row). The directory is written atomically (temporary
//! directory, then rename), so an interrupted replay leaves no partial cache; a cache whose
//! hashes do not match the model and data is never used.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use adasamp_engine::LoadedModel;
use half::f16;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use adasamp_engine::files::{write_atomic, write_dir_atomic};
use adasamp_engine::record::NumberedRecord;

use crate::error::{NetsError, Result};
use crate::train::data::{Dataset, RowPrecision};
use crate::train::replay::replay_record;

/// Value of [`CacheIndex::format`].
pub const CACHE_FORMAT: &str = "adasamp-replay-cache";
/// Current [`CacheIndex::version`].
pub const CACHE_VERSION: u32 = 1;
/// Index file name.
pub const INDEX_FILE: &str = "index.json";
/// Rows per shard (whole records; a shard closes once it holds at least this many rows).
pub const SHARD_ROWS: usize = 512;

/// What a cache is keyed by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheKey {
    /// SHA-256 (hex) of the model file (or a directory's weights descriptor).
    pub model_sha256: String,
    /// SHA-256 (hex) of the records file.
    pub data_sha256: String,
    /// Row precision on disk.
    pub precision: RowPrecision,
    /// Cap on prompt + generation tokens (0: the model's own context).
    pub max_seq_len: usize,
}

impl CacheKey {
    /// The cache directory name under the cache root.
    pub fn dir_name(&self) -> String {
        format!(
            "{}-{}-{}-L{}",
            &self.model_sha256[..self.model_sha256.len().min(16)],
            &self.data_sha256[..self.data_sha256.len().min(16)],
            self.precision.name(),
            self.max_seq_len
        )
    }
}

/// One cached record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CachedRecord {
    /// Line of the record in the data file.
    pub line: usize,
    /// The record id.
    pub id: String,
    /// Prompt tokens (chat template applied).
    pub prompt_tokens: Vec<u32>,
    /// Replayed generated tokens.
    pub generation_tokens: Vec<u32>,
    /// Generated tokens dropped by the length cap.
    pub dropped: usize,
    /// Shard index.
    pub shard: usize,
    /// First row in the shard.
    pub offset: usize,
}

/// `index.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheIndex {
    /// Always [`CACHE_FORMAT`].
    pub format: String,
    /// [`CACHE_VERSION`].
    pub version: u32,
    /// The model path at replay time (informational).
    pub model: String,
    /// SHA-256 of the model.
    pub model_sha256: String,
    /// The data path at replay time (informational).
    pub data: String,
    /// SHA-256 of the data file.
    pub data_sha256: String,
    /// `f16` or `f32`.
    pub precision: String,
    /// Cap on prompt + generation tokens.
    pub max_seq_len: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// Records replayed (records with nothing to replay are absent).
    pub records: Vec<CachedRecord>,
    /// Rows per shard file `shard-NNNNN.safetensors`.
    pub shard_rows: Vec<usize>,
    /// Records skipped (empty generation or prompt over the cap), by line.
    pub skipped_lines: Vec<usize>,
}

fn shard_name(i: usize) -> String {
    format!("shard-{i:05}.safetensors")
}

fn write_shard(path: &Path, rows: &[f32], vocab: usize, precision: RowPrecision) -> Result<()> {
    let n = rows.len() / vocab;
    let (dtype, bytes): (Dtype, Vec<u8>) = match precision {
        RowPrecision::F16 => (
            Dtype::F16,
            rows.iter()
                .flat_map(|&x| f16::from_f32(x).to_le_bytes())
                .collect(),
        ),
        RowPrecision::F32 => (
            Dtype::F32,
            rows.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
    };
    let serialize = |e: safetensors::SafeTensorError| NetsError::Serialize {
        what: format!("shard {}", path.display()),
        reason: e.to_string(),
    };
    let view =
        safetensors::tensor::TensorView::new(dtype, vec![n, vocab], &bytes).map_err(serialize)?;
    let out = safetensors::tensor::serialize(vec![("logits".to_string(), view)], None)
        .map_err(serialize)?;
    Ok(write_atomic(path, &out)?)
}

fn read_shard(path: &Path, vocab: usize) -> Result<Vec<f32>> {
    let bytes = fs::read(path).map_err(|e| NetsError::io("cannot read", path, e))?;
    let corrupt = |reason: String| NetsError::CorruptSafetensors {
        path: path.to_path_buf(),
        reason,
    };
    let st = SafeTensors::deserialize(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let view = st
        .tensor("logits")
        .map_err(|e| corrupt(format!("tensor `logits`: {e}")))?;
    if view.shape().len() != 2 || view.shape()[1] != vocab {
        return Err(corrupt(format!(
            "`logits` has shape {:?}, expected [rows, {vocab}]",
            view.shape()
        )));
    }
    let data = view.data();
    Ok(match view.dtype() {
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        other => return Err(corrupt(format!("unsupported dtype {other:?}"))),
    })
}

/// Replays `records` through `lm` into a new cache directory `dir` (atomically), with at most
/// `max_seq_len` prompt + generation tokens per record. `progress(done, total)` is called after
/// every record.
#[allow(clippy::too_many_arguments)]
pub fn build(
    dir: &Path,
    key: &CacheKey,
    model_label: &str,
    data_label: &str,
    records: &[NumberedRecord],
    lm: &mut LoadedModel,
    progress: &mut dyn FnMut(usize, usize),
    max_seq_len: usize,
) -> Result<CacheIndex> {
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent).map_err(|e| NetsError::io("cannot create", parent, e))?;
    }
    let mut index = CacheIndex {
        format: CACHE_FORMAT.into(),
        version: CACHE_VERSION,
        model: model_label.into(),
        model_sha256: key.model_sha256.clone(),
        data: data_label.into(),
        data_sha256: key.data_sha256.clone(),
        precision: key.precision.name().into(),
        max_seq_len: key.max_seq_len,
        vocab: 0,
        records: Vec::new(),
        shard_rows: Vec::new(),
        skipped_lines: Vec::new(),
    };
    write_dir_atomic(dir, |tmp| -> Result<()> {
        let mut pending: Vec<f32> = Vec::new();
        for (i, rec) in records.iter().enumerate() {
            match replay_record(lm, rec, max_seq_len)? {
                None => index.skipped_lines.push(rec.line),
                Some(r) => {
                    if index.vocab == 0 {
                        index.vocab = r.vocab;
                    } else if index.vocab != r.vocab {
                        return Err(NetsError::shape(
                            format!("replayed rows of record `{}`", rec.id()),
                            format!("vocabulary {} (the earlier records')", index.vocab),
                            r.vocab.to_string(),
                        ));
                    }
                    index.records.push(CachedRecord {
                        line: rec.line,
                        id: rec.id(),
                        prompt_tokens: r.prompt_tokens,
                        generation_tokens: r.generation_tokens,
                        dropped: r.dropped,
                        shard: index.shard_rows.len(),
                        offset: pending.len() / r.vocab,
                    });
                    pending.extend_from_slice(&r.rows);
                    if pending.len() / r.vocab >= SHARD_ROWS {
                        let s = index.shard_rows.len();
                        write_shard(&tmp.join(shard_name(s)), &pending, r.vocab, key.precision)?;
                        index.shard_rows.push(pending.len() / r.vocab);
                        pending.clear();
                    }
                }
            }
            progress(i + 1, records.len());
        }
        if index.records.is_empty() {
            return Err(NetsError::NoData {
                what: "record with anything to replay (empty generations or prompts over the \
                       length cap)"
                    .into(),
            });
        }
        if !pending.is_empty() {
            let s = index.shard_rows.len();
            write_shard(
                &tmp.join(shard_name(s)),
                &pending,
                index.vocab,
                key.precision,
            )?;
            index.shard_rows.push(pending.len() / index.vocab);
        }
        let json = serde_json::to_string(&index).map_err(|e| NetsError::Serialize {
            what: INDEX_FILE.into(),
            reason: e.to_string(),
        })?;
        Ok(write_atomic(&tmp.join(INDEX_FILE), json.as_bytes())?)
    })?;
    Ok(index)
}

/// Reads a cache's index and checks it belongs to `key`; `None` when `dir` has no index.
pub fn read_index(dir: &Path, key: &CacheKey) -> Result<Option<CacheIndex>> {
    let path = dir.join(INDEX_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let text = fs::read_to_string(&path).map_err(|e| NetsError::io("cannot read", &path, e))?;
    let index: CacheIndex = serde_json::from_str(&text).map_err(|e| NetsError::BadMetadata {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let bad = |reason: String| NetsError::BadMetadata {
        path: path.clone(),
        reason,
    };
    if index.format != CACHE_FORMAT || index.version != CACHE_VERSION {
        return Err(bad(format!(
            "format {} v{} is not {CACHE_FORMAT} v{CACHE_VERSION}",
            index.format, index.version
        )));
    }
    if index.model_sha256 != key.model_sha256
        || index.data_sha256 != key.data_sha256
        || index.precision != key.precision.name()
        || index.max_seq_len != key.max_seq_len
    {
        return Err(bad(
            "cache was built for another model, data file, precision or length cap".into(),
        ));
    }
    Ok(Some(index))
}

/// Loads the cached rows of `dir` and computes the targets from `records`' pipelines.
pub fn load_dataset(dir: &Path, index: &CacheIndex, records: &[NumberedRecord]) -> Result<Dataset> {
    let by_line: HashMap<usize, &NumberedRecord> = records.iter().map(|r| (r.line, r)).collect();
    let precision = RowPrecision::parse(&index.precision)?;
    let v = index.vocab;
    let mut ds = Dataset::new(v, precision);
    let mut shard: Option<(usize, Vec<f32>)> = None;
    for cr in &index.records {
        let rec = by_line.get(&cr.line).ok_or_else(|| NetsError::Cache {
            dir: dir.to_path_buf(),
            reason: format!("record at line {} is not in the data file", cr.line),
        })?;
        if shard.as_ref().map(|(i, _)| *i) != Some(cr.shard) {
            let p = dir.join(shard_name(cr.shard));
            shard = Some((cr.shard, read_shard(&p, v)?));
        }
        let Some((_, rows)) = shard.as_ref() else {
            continue;
        };
        let n = cr.generation_tokens.len();
        let range = cr.offset * v..(cr.offset + n) * v;
        let slice = rows
            .get(range)
            .ok_or_else(|| NetsError::CorruptSafetensors {
                path: dir.join(shard_name(cr.shard)),
                reason: format!("record at line {} lies outside the shard", cr.line),
            })?;
        ds.add_record(
            &cr.id,
            &cr.prompt_tokens,
            &cr.generation_tokens,
            slice,
            &rec.record.sampler_info.config,
        )?;
    }
    Ok(ds)
}

/// Where the cache for `key` lives under `root`.
pub fn cache_dir(root: &Path, key: &CacheKey) -> PathBuf {
    root.join(key.dir_name())
}
