//! Correctly shaped Llama models with random weights, for throughput measurements that must not
//! depend on carrying large files: decode speed depends on the shapes and the weight types, not on
//! the values. A model is written as a GGUF file (with a synthesised SentencePiece vocabulary in
//! its metadata) or as a Hugging Face directory (`config.json`, `model.safetensors`,
//! `tokenizer.json`, `tokenizer_config.json`); both backends load either.
//!
//! Every weight matrix is uniform in `[-a, a]` with `a = 0.02·√3` (standard deviation 0.02, the
//! usual initialisation scale); norm weights are 1. The same spec and seed give the same file.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::error::{bad_request, io_err, EngineError, Result};
use crate::files::{write_atomic_with, write_dir_atomic};

/// Tokens every synthesised vocabulary starts with: `<unk>`, `<s>` (BOS), `</s>` (EOS), then the
/// 256 byte tokens `<0x00>`…`<0xFF>` of SentencePiece's byte fallback.
pub const RESERVED_TOKENS: usize = 3 + 256;

/// Half-width of the uniform weight distribution: `0.02·√3` (standard deviation 0.02).
const WEIGHT_RANGE: f32 = 0.034_641_016;

/// A model shape preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// A 2-block model for tests (hidden 64, 4 heads of 16, 2 kv heads, MLP 128).
    Tiny,
    /// Llama-3.2-1B's shape (hidden 2048, 16 blocks, 32 heads, 8 kv heads, MLP 8192, tied head).
    Llama1B,
    /// Llama-3.2-3B's shape (hidden 3072, 28 blocks, 24 heads of 128, 8 kv heads, MLP 8192, tied head).
    Llama3B,
}

impl Preset {
    /// Parses `tiny`, `1b` or `3b`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "tiny" => Ok(Self::Tiny),
            "1b" => Ok(Self::Llama1B),
            "3b" => Ok(Self::Llama3B),
            o => Err(bad_request(
                "preset",
                format!("`{o}`"),
                "expected tiny, 1b or 3b",
            )),
        }
    }

    /// The preset's name as [`Preset::parse`] takes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tiny => "tiny",
            Self::Llama1B => "1b",
            Self::Llama3B => "3b",
        }
    }

    /// The preset's shape.
    pub fn shape(self) -> LlamaShape {
        match self {
            Self::Tiny => LlamaShape {
                hidden: 64,
                layers: 2,
                heads: 4,
                kv_heads: 2,
                head_dim: 16,
                intermediate: 128,
                context: 2048,
                rope_theta: 10_000.0,
                rms_eps: 1e-5,
            },
            Self::Llama1B => LlamaShape {
                hidden: 2048,
                layers: 16,
                heads: 32,
                kv_heads: 8,
                head_dim: 64,
                intermediate: 8192,
                context: 131_072,
                rope_theta: 500_000.0,
                rms_eps: 1e-5,
            },
            Self::Llama3B => LlamaShape {
                hidden: 3072,
                layers: 28,
                heads: 24,
                kv_heads: 8,
                head_dim: 128,
                intermediate: 8192,
                context: 131_072,
                rope_theta: 500_000.0,
                rms_eps: 1e-5,
            },
        }
    }
}

/// The hyper-parameters of a Llama model with a tied output head.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LlamaShape {
    /// Hidden size d.
    pub hidden: usize,
    /// Number of blocks.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// MLP width.
    pub intermediate: usize,
    /// Training context (positions).
    pub context: usize,
    /// RoPE base θ.
    pub rope_theta: f32,
    /// RMS-norm epsilon.
    pub rms_eps: f32,
}

impl LlamaShape {
    /// Number of parameters with a vocabulary of `vocab` tokens (the head shares the embedding).
    pub fn parameters(&self, vocab: usize) -> usize {
        let d = self.hidden;
        let q = self.heads * self.head_dim;
        let kv = self.kv_heads * self.head_dim;
        let block = 2 * d + d * q + 2 * d * kv + q * d + 3 * d * self.intermediate;
        vocab * d + self.layers * block + d
    }
}

/// The file format of a random model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFormat {
    /// One `.gguf` file.
    Gguf,
    /// A Hugging Face directory.
    Safetensors,
}

impl ModelFormat {
    /// Parses `gguf` or `safetensors`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "gguf" => Ok(Self::Gguf),
            "safetensors" => Ok(Self::Safetensors),
            o => Err(bad_request(
                "format",
                format!("`{o}`"),
                "expected gguf or safetensors",
            )),
        }
    }
}

/// The storage type of the weight matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightType {
    /// IEEE half precision (both formats).
    F16,
    /// bfloat16 (safetensors).
    Bf16,
    /// GGUF Q8_0: blocks of 32 int8 with an f16 scale.
    Q8_0,
    /// GGUF Q4_0: blocks of 32 4-bit values with an f16 scale.
    Q4_0,
}

impl WeightType {
    /// Parses `f16`, `bf16`, `q8_0` or `q4_0`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "f16" => Ok(Self::F16),
            "bf16" => Ok(Self::Bf16),
            "q8_0" => Ok(Self::Q8_0),
            "q4_0" => Ok(Self::Q4_0),
            o => Err(bad_request(
                "weights",
                format!("`{o}`"),
                "expected f16, bf16, q8_0 or q4_0",
            )),
        }
    }

    /// The type's name as [`WeightType::parse`] takes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
            Self::Q8_0 => "q8_0",
            Self::Q4_0 => "q4_0",
        }
    }
}

/// What random model to write.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomModelSpec {
    /// The shape.
    pub preset: Preset,
    /// Vocabulary size V (at least [`RESERVED_TOKENS`] + 1).
    pub vocab: usize,
    /// File format.
    pub format: ModelFormat,
    /// Storage type of the weight matrices (GGUF: f16, q8_0, q4_0; safetensors: f16, bf16).
    pub weights: WeightType,
    /// Seed of the weights.
    pub seed: u64,
}

impl RandomModelSpec {
    /// Checks the vocabulary size and that the weight type fits the format.
    pub fn validate(&self) -> Result<()> {
        if self.vocab <= RESERVED_TOKENS || self.vocab > i32::MAX as usize {
            return Err(bad_request(
                "vocab",
                self.vocab,
                format!(
                    "must be more than the {RESERVED_TOKENS} special and byte tokens and fit in i32"
                ),
            ));
        }
        let fits = match self.format {
            ModelFormat::Gguf => self.weights != WeightType::Bf16,
            ModelFormat::Safetensors => matches!(self.weights, WeightType::F16 | WeightType::Bf16),
        };
        if !fits {
            return Err(bad_request(
                "weights",
                self.weights.name(),
                match self.format {
                    ModelFormat::Gguf => "GGUF random models store f16, q8_0 or q4_0",
                    ModelFormat::Safetensors => "safetensors random models store f16 or bf16",
                },
            ));
        }
        Ok(())
    }
}

/// The synthesised vocabulary of `vocab` tokens: [`RESERVED_TOKENS`] first, then `▁` and the
/// printable ASCII characters with and without a leading `▁`, then `▁w<i>` fillers.
pub fn vocabulary(vocab: usize) -> Vec<String> {
    let mut t: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    t.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    t.push("▁".into());
    for c in (33u8..127).map(char::from) {
        t.push(c.to_string());
        t.push(format!("▁{c}"));
    }
    t.truncate(vocab);
    let mut i = 0;
    while t.len() < vocab {
        t.push(format!("▁w{i}"));
        i += 1;
    }
    t
}

/// One tensor to generate: GGUF name, safetensors name, shape `[rows, cols]` (or `[cols]`), and
/// whether it is a norm (ones, stored f32).
struct TensorPlan {
    gguf: String,
    hf: String,
    shape: Vec<usize>,
    norm: bool,
}

fn plan(shape: &LlamaShape, vocab: usize) -> Vec<TensorPlan> {
    let d = shape.hidden;
    let q = shape.heads * shape.head_dim;
    let kv = shape.kv_heads * shape.head_dim;
    let ff = shape.intermediate;
    let t = |g: String, h: String, s: &[usize], norm: bool| TensorPlan {
        gguf: g,
        hf: h,
        shape: s.to_vec(),
        norm,
    };
    let mut p = vec![t(
        "token_embd.weight".into(),
        "model.embed_tokens.weight".into(),
        &[vocab, d],
        false,
    )];
    for i in 0..shape.layers {
        let g = |s: &str| format!("blk.{i}.{s}.weight");
        let h = |s: &str| format!("model.layers.{i}.{s}.weight");
        p.push(t(g("attn_norm"), h("input_layernorm"), &[d], true));
        p.push(t(g("attn_q"), h("self_attn.q_proj"), &[q, d], false));
        p.push(t(g("attn_k"), h("self_attn.k_proj"), &[kv, d], false));
        p.push(t(g("attn_v"), h("self_attn.v_proj"), &[kv, d], false));
        p.push(t(g("attn_output"), h("self_attn.o_proj"), &[d, q], false));
        p.push(t(g("ffn_norm"), h("post_attention_layernorm"), &[d], true));
        p.push(t(g("ffn_gate"), h("mlp.gate_proj"), &[ff, d], false));
        p.push(t(g("ffn_up"), h("mlp.up_proj"), &[ff, d], false));
        p.push(t(g("ffn_down"), h("mlp.down_proj"), &[d, ff], false));
    }
    p.push(t(
        "output_norm.weight".into(),
        "model.norm.weight".into(),
        &[d],
        true,
    ));
    p
}

/// The values of tensor number `index`: ones for a norm, else uniform in ±[`WEIGHT_RANGE`] from
/// a generator seeded by `(seed, index)`.
fn values(seed: u64, index: usize, t: &TensorPlan) -> Result<Tensor> {
    let n: usize = t.shape.iter().product();
    if t.norm {
        return Ok(Tensor::ones(t.shape.as_slice(), DType::F32, &Device::Cpu)?);
    }
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let v: Vec<f32> = (0..n)
        .map(|_| rng.random_range(-WEIGHT_RANGE..WEIGHT_RANGE))
        .collect();
    Ok(Tensor::from_vec(v, t.shape.as_slice(), &Device::Cpu)?)
}

/// Writes the random model `spec` describes to `out` (a `.gguf` file or a directory), atomically.
/// `progress(done, total)` is called as tensors are generated.
pub fn write_random_llama(
    spec: &RandomModelSpec,
    out: &Path,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<()> {
    spec.validate()?;
    let shape = spec.preset.shape();
    let tensors = plan(&shape, spec.vocab);
    let total = tensors.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let tick = || {
        let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        progress(d, total);
    };
    match spec.format {
        ModelFormat::Gguf => {
            let qtype = match spec.weights {
                WeightType::F16 => GgmlDType::F16,
                WeightType::Q8_0 => GgmlDType::Q8_0,
                WeightType::Q4_0 => GgmlDType::Q4_0,
                WeightType::Bf16 => GgmlDType::BF16,
            };
            let q: Vec<QTensor> = tensors
                .par_iter()
                .enumerate()
                .map(|(i, t)| {
                    let v = values(spec.seed, i, t)?;
                    let q = QTensor::quantize(&v, if t.norm { GgmlDType::F32 } else { qtype })?;
                    tick();
                    Ok(q)
                })
                .collect::<Result<_>>()?;
            let meta = gguf_metadata(spec, &shape);
            let meta_refs: Vec<(&str, &gguf_file::Value)> =
                meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
            let named: Vec<(&str, &QTensor)> = tensors
                .iter()
                .zip(&q)
                .map(|(t, q)| (t.gguf.as_str(), q))
                .collect();
            write_atomic_with(out, |f, tmp| {
                let mut w = std::io::BufWriter::new(f);
                gguf_file::write(&mut w, &meta_refs, &named)?;
                std::io::Write::flush(&mut w).map_err(io_err(tmp))?;
                Ok::<(), EngineError>(())
            })
        }
        ModelFormat::Safetensors => {
            let dtype = match spec.weights {
                WeightType::Bf16 => DType::BF16,
                _ => DType::F16,
            };
            let ts: Vec<(String, Tensor)> = tensors
                .par_iter()
                .enumerate()
                .map(|(i, t)| {
                    let v = values(spec.seed, i, t)?;
                    let v = if t.norm { v } else { v.to_dtype(dtype)? };
                    tick();
                    Ok((t.hf.clone(), v))
                })
                .collect::<Result<_>>()?;
            let map: HashMap<String, Tensor> = ts.into_iter().collect();
            write_dir_atomic(out, |dir| {
                candle_core::safetensors::save(&map, dir.join("model.safetensors"))?;
                write_json(&dir.join("config.json"), &hf_config(spec, &shape, dtype))?;
                write_json(&dir.join("tokenizer.json"), &tokenizer_json(spec.vocab))?;
                write_json(
                    &dir.join("tokenizer_config.json"),
                    &serde_json::json!({
                        "bos_token": "<s>",
                        "eos_token": "</s>",
                        "unk_token": "<unk>",
                        "add_bos_token": true,
                    }),
                )?;
                Ok::<(), EngineError>(())
            })
        }
    }
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(|e| EngineError::Io {
        path: path.into(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(path, text).map_err(io_err(path))
}

fn gguf_metadata(spec: &RandomModelSpec, s: &LlamaShape) -> Vec<(String, gguf_file::Value)> {
    use gguf_file::Value as V;
    let u = |x: usize| V::U32(x as u32);
    let tokens = vocabulary(spec.vocab);
    let types: Vec<V> = (0..spec.vocab)
        .map(|i| {
            V::I32(match i {
                0 => 2,                        // unknown
                1 | 2 => 3,                    // control
                i if i < RESERVED_TOKENS => 6, // byte
                _ => 1,                        // normal
            })
        })
        .collect();
    let scores: Vec<V> = (0..spec.vocab)
        .map(|i| {
            V::F32(if i < RESERVED_TOKENS {
                0.0
            } else {
                -(i as f32)
            })
        })
        .collect();
    vec![
        ("general.architecture".into(), V::String("llama".into())),
        (
            "general.name".into(),
            V::String(format!(
                "random llama {} (V {}, {}, seed {})",
                spec.preset.name(),
                spec.vocab,
                spec.weights.name(),
                spec.seed
            )),
        ),
        ("llama.context_length".into(), u(s.context)),
        ("llama.embedding_length".into(), u(s.hidden)),
        ("llama.block_count".into(), u(s.layers)),
        ("llama.feed_forward_length".into(), u(s.intermediate)),
        ("llama.attention.head_count".into(), u(s.heads)),
        ("llama.attention.head_count_kv".into(), u(s.kv_heads)),
        ("llama.attention.key_length".into(), u(s.head_dim)),
        ("llama.attention.value_length".into(), u(s.head_dim)),
        ("llama.rope.dimension_count".into(), u(s.head_dim)),
        ("llama.rope.freq_base".into(), V::F32(s.rope_theta)),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            V::F32(s.rms_eps),
        ),
        ("llama.vocab_size".into(), u(spec.vocab)),
        ("tokenizer.ggml.model".into(), V::String("llama".into())),
        (
            "tokenizer.ggml.tokens".into(),
            V::Array(tokens.into_iter().map(V::String).collect()),
        ),
        ("tokenizer.ggml.scores".into(), V::Array(scores)),
        ("tokenizer.ggml.token_type".into(), V::Array(types)),
        ("tokenizer.ggml.unknown_token_id".into(), V::U32(0)),
        ("tokenizer.ggml.bos_token_id".into(), V::U32(1)),
        ("tokenizer.ggml.eos_token_id".into(), V::U32(2)),
        ("tokenizer.ggml.add_bos_token".into(), V::Bool(true)),
    ]
}

fn hf_config(spec: &RandomModelSpec, s: &LlamaShape, dtype: DType) -> serde_json::Value {
    serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": spec.vocab,
        "hidden_size": s.hidden,
        "intermediate_size": s.intermediate,
        "num_hidden_layers": s.layers,
        "num_attention_heads": s.heads,
        "num_key_value_heads": s.kv_heads,
        "head_dim": s.head_dim,
        "rms_norm_eps": s.rms_eps,
        "rope_theta": s.rope_theta,
        "max_position_embeddings": s.context,
        "tie_word_embeddings": true,
        "torch_dtype": if dtype == DType::BF16 { "bfloat16" } else { "float16" },
        "bos_token_id": 1,
        "eos_token_id": 2,
    })
}

/// A Llama-2-style `tokenizer.json` over [`vocabulary`]: BPE without merges (each character a
/// token, unknown characters as byte tokens), `▁` for spaces.
fn tokenizer_json(vocab: usize) -> serde_json::Value {
    let tokens = vocabulary(vocab);
    let map: serde_json::Map<String, serde_json::Value> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), serde_json::Value::from(i)))
        .collect();
    let added: Vec<serde_json::Value> = tokens[..3]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            serde_json::json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}
        ]},
        "pre_tokenizer": null,
        "post_processor": null,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}
        ]},
        "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>",
            "continuing_subword_prefix": null, "end_of_word_suffix": null,
            "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
            "vocab": map, "merges": []}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_the_llama_3_2_parameter_counts() {
        // Llama-3.2-1B: 1.236 B parameters, 3B: 3.213 B (V = 128256, tied head).
        let p1 = Preset::Llama1B.shape().parameters(128_256) as f64 / 1e9;
        let p3 = Preset::Llama3B.shape().parameters(128_256) as f64 / 1e9;
        assert!((p1 - 1.236).abs() < 0.002, "{p1}");
        assert!((p3 - 3.213).abs() < 0.002, "{p3}");
    }

    #[test]
    fn vocabulary_is_unique_and_of_the_asked_size() {
        for v in [260, 300, 500] {
            let t = vocabulary(v);
            assert_eq!(t.len(), v);
            let set: std::collections::HashSet<_> = t.iter().collect();
            assert_eq!(set.len(), v);
            assert_eq!(t[3 + 10], "<0x0A>");
        }
    }

    #[test]
    fn bad_specs_are_refused_by_field() {
        let ok = RandomModelSpec {
            preset: Preset::Tiny,
            vocab: 300,
            format: ModelFormat::Gguf,
            weights: WeightType::Q8_0,
            seed: 0,
        };
        ok.validate().unwrap();
        let field = |s: RandomModelSpec| match s.validate() {
            Err(EngineError::BadRequest { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(RandomModelSpec { vocab: 259, ..ok }), "vocab");
        assert_eq!(
            field(RandomModelSpec {
                format: ModelFormat::Safetensors,
                ..ok
            }),
            "weights"
        );
        assert_eq!(
            field(RandomModelSpec {
                weights: WeightType::Bf16,
                ..ok
            }),
            "weights"
        );
        assert!(matches!(
            Preset::parse("7b"),
            Err(EngineError::BadRequest {
                field: "preset",
                ..
            })
        ));
        assert!(matches!(
            ModelFormat::parse("onnx"),
            Err(EngineError::BadRequest {
                field: "format",
                ..
            })
        ));
        assert!(matches!(
            WeightType::parse("q4_1"),
            Err(EngineError::BadRequest {
                field: "weights",
                ..
            })
        ));
    }
}
