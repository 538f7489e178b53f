//! Loading a Hugging Face model directory (`config.json` + `*.safetensors`) for the Llama, Qwen2
//! and Qwen3 families into a [`Transformer`].

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use super::transformer::{Arch, Block, Config, Linear, RmsNorm, Transformer, Weights};
use crate::error::{io_err, EngineError, Result};

/// The fields of `config.json` the loader reads.
#[derive(Debug, Clone, Deserialize)]
pub struct HfConfig {
    /// `llama`, `qwen2` or `qwen3`.
    pub model_type: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden_size: usize,
    /// Number of blocks.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Key/value heads (defaults to the attention heads).
    pub num_key_value_heads: Option<usize>,
    /// Head width (defaults to hidden / heads).
    pub head_dim: Option<usize>,
    /// RMS-norm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base.
    #[serde(default = "default_theta")]
    pub rope_theta: f32,
    /// Maximum positions.
    #[serde(default = "default_ctx")]
    pub max_position_embeddings: usize,
    /// Whether the output head shares the embedding matrix.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Whether q/k/v have biases (Llama variants; Qwen2 always has them).
    #[serde(default)]
    pub attention_bias: bool,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_theta() -> f32 {
    10_000.0
}
fn default_ctx() -> usize {
    4096
}

/// Reads `config.json` of a model directory.
pub fn read_config(dir: &Path) -> Result<HfConfig> {
    let p = dir.join("config.json");
    let text = std::fs::read_to_string(&p).map_err(io_err(&p))?;
    serde_json::from_str(&text).map_err(|e| EngineError::InvalidModel {
        path: p,
        reason: format!("config.json: {e}"),
    })
}

/// Every `*.safetensors` file of the directory, sorted.
pub fn weight_files(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(EngineError::InvalidModel {
            path: dir.into(),
            reason: "no *.safetensors weight files".into(),
        });
    }
    Ok(files)
}

/// Builds the transformer of a Hugging Face model directory.
pub fn load(
    dir: &Path,
    device: &Device,
    dtype: DType,
    max_seq_len: Option<usize>,
) -> Result<(Transformer, HfConfig)> {
    let hf = read_config(dir)?;
    let arch = Arch::parse(&hf.model_type).ok_or_else(|| EngineError::UnsupportedArch {
        arch: hf.model_type.clone(),
        backend: "candle",
        supported: "llama, qwen2, qwen3",
    })?;
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for f in weight_files(dir)? {
        let t =
            candle_core::safetensors::load(&f, device).map_err(|e| EngineError::InvalidModel {
                path: f.clone(),
                reason: format!("unreadable safetensors file: {e}"),
            })?;
        tensors.extend(t);
    }
    let mut take = |name: &str| -> Result<Tensor> {
        let t = tensors
            .remove(name)
            .ok_or_else(|| EngineError::InvalidModel {
                path: dir.into(),
                reason: format!("missing tensor `{name}`"),
            })?;
        Ok(t.to_dtype(dtype)?)
    };
    let n_heads = hf.num_attention_heads;
    let head_dim = hf.head_dim.unwrap_or(hf.hidden_size / n_heads.max(1));
    let cfg = Config {
        arch,
        vocab_size: hf.vocab_size,
        hidden_size: hf.hidden_size,
        n_layers: hf.num_hidden_layers,
        n_heads,
        n_kv_heads: hf.num_key_value_heads.unwrap_or(n_heads),
        head_dim,
        rms_eps: hf.rms_norm_eps,
        rope_theta: hf.rope_theta,
        rope_interleaved: false,
        max_seq_len: max_seq_len
            .unwrap_or(hf.max_position_embeddings)
            .min(hf.max_position_embeddings),
    };
    let eps = hf.rms_norm_eps as f32;
    let embed = take("model.embed_tokens.weight")?;
    let mut blocks = Vec::with_capacity(cfg.n_layers);
    let biased = arch == Arch::Qwen2 || hf.attention_bias;
    for i in 0..cfg.n_layers {
        let p = |s: &str| format!("model.layers.{i}.{s}");
        let mut lin = |w: &str, b: bool| -> Result<Linear> {
            let weight = take(&p(&format!("{w}.weight")))?;
            let bias = if b {
                Some(take(&p(&format!("{w}.bias")))?)
            } else {
                None
            };
            Ok(Linear::Dense(weight, bias))
        };
        let wq = lin("self_attn.q_proj", biased)?;
        let wk = lin("self_attn.k_proj", biased)?;
        let wv = lin("self_attn.v_proj", biased)?;
        let wo = lin("self_attn.o_proj", false)?;
        let gate = lin("mlp.gate_proj", false)?;
        let up = lin("mlp.up_proj", false)?;
        let down = lin("mlp.down_proj", false)?;
        let (q_norm, k_norm) = if arch == Arch::Qwen3 {
            (
                Some(RmsNorm {
                    weight: take(&p("self_attn.q_norm.weight"))?,
                    eps,
                }),
                Some(RmsNorm {
                    weight: take(&p("self_attn.k_norm.weight"))?,
                    eps,
                }),
            )
        } else {
            (None, None)
        };
        blocks.push(Block {
            attn_norm: RmsNorm {
                weight: take(&p("input_layernorm.weight"))?,
                eps,
            },
            wq,
            wk,
            wv,
            wo,
            q_norm,
            k_norm,
            ffn_norm: RmsNorm {
                weight: take(&p("post_attention_layernorm.weight"))?,
                eps,
            },
            gate,
            up,
            down,
        });
    }
    let norm = RmsNorm {
        weight: take("model.norm.weight")?,
        eps,
    };
    let head = if hf.tie_word_embeddings {
        embed.clone()
    } else {
        take("lm_head.weight")?
    };
    let weights = Weights {
        embed,
        blocks,
        norm,
        head: Linear::Dense(head, None),
    };
    Ok((Transformer::new(cfg, weights, device)?, hf))
}
