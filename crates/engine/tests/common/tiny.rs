//! Tiny randomly initialised models and vocabularies, written by the tests in the real file
//! formats.

use std::path::{Path, PathBuf};

use adasamp_engine::tokenizer::TextTokenizer;
use candle_core::{DType, Device, Tensor};

pub const V: usize = 96;
pub const D: usize = 64;
pub const HEADS: usize = 4;
pub const KV: usize = 2;
pub const HD: usize = 16;
pub const FF: usize = 128;
pub const LAYERS: usize = 2;

pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("adasamp-fam-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn rand(shape: &[usize], scale: f64, seed: u64) -> Tensor {
    // Deterministic pseudo-random values in [-scale, scale].
    let n: usize = shape.iter().product();
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15).wrapping_add(1);
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0) as f32 * scale as f32
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

pub fn ones(n: usize) -> Tensor {
    Tensor::ones(n, DType::F32, &Device::Cpu).unwrap()
}

/// Writes a tiny HF model directory of the given family.
pub fn write_hf(dir: &Path, model_type: &str) {
    let mut t = std::collections::HashMap::new();
    let mut seed = 1u64;
    let mut r = |shape: &[usize]| {
        seed += 1;
        rand(shape, 0.2, seed)
    };
    t.insert("model.embed_tokens.weight".to_string(), r(&[V, D]));
    for i in 0..LAYERS {
        let p = |s: &str| format!("model.layers.{i}.{s}");
        t.insert(p("input_layernorm.weight"), ones(D));
        t.insert(p("post_attention_layernorm.weight"), ones(D));
        t.insert(p("self_attn.q_proj.weight"), r(&[HEADS * HD, D]));
        t.insert(p("self_attn.k_proj.weight"), r(&[KV * HD, D]));
        t.insert(p("self_attn.v_proj.weight"), r(&[KV * HD, D]));
        t.insert(p("self_attn.o_proj.weight"), r(&[D, HEADS * HD]));
        t.insert(p("mlp.gate_proj.weight"), r(&[FF, D]));
        t.insert(p("mlp.up_proj.weight"), r(&[FF, D]));
        t.insert(p("mlp.down_proj.weight"), r(&[D, FF]));
        if model_type == "qwen2" {
            t.insert(p("self_attn.q_proj.bias"), r(&[HEADS * HD]));
            t.insert(p("self_attn.k_proj.bias"), r(&[KV * HD]));
            t.insert(p("self_attn.v_proj.bias"), r(&[KV * HD]));
        }
        if model_type == "qwen3" {
            t.insert(p("self_attn.q_norm.weight"), ones(HD));
            t.insert(p("self_attn.k_norm.weight"), ones(HD));
        }
    }
    t.insert("model.norm.weight".to_string(), ones(D));
    t.insert("lm_head.weight".to_string(), r(&[V, D]));
    candle_core::safetensors::save(&t, dir.join("model.safetensors")).unwrap();
    let cfg = serde_json::json!({
        "model_type": model_type, "vocab_size": V, "hidden_size": D, "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS, "num_key_value_heads": KV, "head_dim": HD, "intermediate_size": FF,
        "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 256, "tie_word_embeddings": false
    });
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
}

/// A word-level tokenizer over the `V` tokens `w0 … w{V-1}` (texts joined by spaces), with
/// `w1` as EOS, written as `tokenizer.json` into `dir`.
pub fn word_tokenizer(dir: &Path) -> TextTokenizer {
    let vocab: serde_json::Map<String, serde_json::Value> =
        (0..V).map(|i| (format!("w{i}"), i.into())).collect();
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [
            {"id": 1, "content": "w1", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
        ],
        "normalizer": null,
        "pre_tokenizer": {"type": "WhitespaceSplit"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "w0"}
    });
    std::fs::write(dir.join("tokenizer.json"), json.to_string()).unwrap();
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"eos_token": "w1", "add_bos_token": false}"#,
    )
    .unwrap();
    TextTokenizer::from_file(&dir.join("tokenizer.json")).unwrap()
}
