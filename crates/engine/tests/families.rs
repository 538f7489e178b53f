//! The candle backend on tiny randomly initialised models written by the test itself in the real
//! file formats (HF safetensors directories for Llama / Qwen2 / Qwen3, a GGUF Llama file):
//! loading, KV-cache consistency, batch invariance, rollback, early exit, input embeddings.

use std::path::Path;

use adasamp_engine::candle_backend::transformer::{ForwardOptions, Input};
use adasamp_engine::candle_backend::CandleModel;
use adasamp_engine::{Feed, LanguageModel};
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};

mod common;
use common::tiny::{ones, rand, tmp, write_hf, D, FF, HD, HEADS, KV, LAYERS, V};

/// Writes a tiny GGUF Llama file (F32 norms, Q8_0 matrices).
fn write_gguf(path: &Path) {
    let mut seed = 100u64;
    let mut q = |shape: &[usize], dt: GgmlDType| {
        seed += 1;
        QTensor::quantize(&rand(shape, 0.2, seed), dt).unwrap()
    };
    let mut tensors: Vec<(String, QTensor)> = vec![
        ("token_embd.weight".into(), q(&[V, D], GgmlDType::F32)),
        ("output.weight".into(), q(&[V, D], GgmlDType::Q8_0)),
    ];
    tensors.push((
        "output_norm.weight".into(),
        QTensor::quantize(&ones(D), GgmlDType::F32).unwrap(),
    ));
    for i in 0..LAYERS {
        let b = |s: &str| format!("blk.{i}.{s}");
        tensors.push((
            b("attn_norm.weight"),
            QTensor::quantize(&ones(D), GgmlDType::F32).unwrap(),
        ));
        tensors.push((
            b("ffn_norm.weight"),
            QTensor::quantize(&ones(D), GgmlDType::F32).unwrap(),
        ));
        tensors.push((b("attn_q.weight"), q(&[HEADS * HD, D], GgmlDType::Q8_0)));
        tensors.push((b("attn_k.weight"), q(&[KV * HD, D], GgmlDType::Q8_0)));
        tensors.push((b("attn_v.weight"), q(&[KV * HD, D], GgmlDType::Q8_0)));
        tensors.push((
            b("attn_output.weight"),
            q(&[D, HEADS * HD], GgmlDType::Q8_0),
        ));
        tensors.push((b("ffn_gate.weight"), q(&[FF, D], GgmlDType::Q8_0)));
        tensors.push((b("ffn_up.weight"), q(&[FF, D], GgmlDType::Q8_0)));
        tensors.push((b("ffn_down.weight"), q(&[D, FF], GgmlDType::Q8_0)));
    }
    use gguf_file::Value;
    let md: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("llama".into())),
        ("llama.block_count", Value::U32(LAYERS as u32)),
        ("llama.embedding_length", Value::U32(D as u32)),
        ("llama.attention.head_count", Value::U32(HEADS as u32)),
        ("llama.attention.head_count_kv", Value::U32(KV as u32)),
        ("llama.context_length", Value::U32(256)),
        ("llama.rope.freq_base", Value::F32(10000.0)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
    ];
    let mdr: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (*k, v)).collect();
    let tr: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut f = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut f, &mdr, &tr).unwrap();
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Checks every backend invariant on a loaded tiny model.
fn check_model(m: &mut CandleModel) {
    let prompt: Vec<u32> = vec![1, 5, 9, 33, 2, 71, 40];
    // Teacher forcing in one pass == incremental decoding with the KV cache.
    let s = m.new_sequence().unwrap();
    let all = m
        .forward_all(Feed {
            seq: s,
            tokens: &prompt,
        })
        .unwrap();
    assert_eq!((all.rows, all.vocab), (prompt.len(), V));
    assert!(all.data.iter().all(|v| v.is_finite()));
    let s2 = m.new_sequence().unwrap();
    for (i, t) in prompt.iter().enumerate() {
        let l = m
            .forward(&[Feed {
                seq: s2,
                tokens: std::slice::from_ref(t),
            }])
            .unwrap();
        let d = max_abs_diff(l.row(0), all.row(i));
        assert!(
            d < 1e-4,
            "position {i}: incremental vs teacher-forced differ by {d}"
        );
    }
    // Batch invariance: the same sequence alone or beside another gives the same logits.
    let a = m.new_sequence().unwrap();
    let b = m.new_sequence().unwrap();
    let both = m
        .forward(&[
            Feed {
                seq: a,
                tokens: &prompt[..5],
            },
            Feed {
                seq: b,
                tokens: &prompt[..3],
            },
        ])
        .unwrap();
    let c = m.new_sequence().unwrap();
    let alone = m
        .forward(&[Feed {
            seq: c,
            tokens: &prompt[..3],
        }])
        .unwrap();
    assert_eq!(
        both.row(1),
        alone.row(0),
        "a sequence's logits depend on its batch"
    );
    assert!(max_abs_diff(both.row(0), all.row(4)) < 1e-4);
    // Rollback: truncate and re-feed reproduces the logits.
    m.truncate(s, 4).unwrap();
    assert_eq!(m.sequence_len(s).unwrap(), 4);
    let again = m
        .forward(&[Feed {
            seq: s,
            tokens: &prompt[4..5],
        }])
        .unwrap();
    assert!(max_abs_diff(again.row(0), all.row(4)) < 1e-4);
    // Input embeddings = the embedding rows of the tokens.
    let emb = m.embedding_matrix().unwrap();
    let e: Vec<f32> = prompt
        .iter()
        .flat_map(|&t| emb[t as usize * D..(t as usize + 1) * D].to_vec())
        .collect();
    let s3 = m.new_sequence().unwrap();
    let via_emb = m.forward_embeddings(s3, &e).unwrap();
    assert!(max_abs_diff(via_emb.row(0), all.row(prompt.len() - 1)) < 1e-4);
    // Early exit after 1 block and hidden states are available.
    let s4 = m.new_sequence().unwrap();
    let opts = ForwardOptions {
        exit_after: Some(1),
        hidden_layers: vec![0],
        ..Default::default()
    };
    let out = m
        .forward_with(vec![(s4, Input::Tokens(&prompt))], &opts)
        .unwrap();
    assert_eq!(out[0].hidden[0].1.dims(), &[prompt.len(), D]);
    assert!(
        max_abs_diff(
            &out[0]
                .logits
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            all.row(prompt.len() - 1)
        ) > 1e-6
    );
    // Bad requests are errors, not panics.
    assert!(m
        .forward(&[Feed {
            seq: 999,
            tokens: &[1]
        }])
        .is_err());
    assert!(m
        .forward(&[Feed {
            seq: s,
            tokens: &[V as u32]
        }])
        .is_err());
    assert!(m
        .forward(&[Feed {
            seq: s,
            tokens: &[]
        }])
        .is_err());
    assert!(m.forward_embeddings(s, &[0.0; 3]).is_err());
    let before = m.sequence_len(s).unwrap();
    assert!(m
        .forward(&[
            Feed {
                seq: s,
                tokens: &[1]
            },
            Feed {
                seq: s,
                tokens: &[2]
            }
        ])
        .is_err());
    assert_eq!(
        m.sequence_len(s).unwrap(),
        before,
        "a failed step must leave the cache unchanged"
    );
}

#[test]
fn hf_llama_qwen2_qwen3_load_and_run() {
    for family in ["llama", "qwen2", "qwen3"] {
        let dir = tmp(family);
        write_hf(&dir, family);
        let mut m =
            CandleModel::from_hf_dir(&dir, None).unwrap_or_else(|e| panic!("{family}: {e}"));
        assert_eq!(m.info().arch, family);
        check_model(&mut m);
        std::fs::remove_dir_all(&dir).ok();
    }
}

#[test]
fn gguf_llama_loads_and_runs() {
    let dir = tmp("gguf");
    let p = dir.join("tiny.gguf");
    write_gguf(&p);
    let (mut m, _) = CandleModel::from_gguf(&p, Default::default()).unwrap();
    check_model(&mut m);
    // A truncated file is a clear error naming the tensor, never a panic.
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
    let err = CandleModel::from_gguf(&p, Default::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("truncated"), "{err}");
    std::fs::write(&p, b"GGUF").unwrap();
    assert!(CandleModel::from_gguf(&p, Default::default()).is_err());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn missing_pieces_are_clear_errors() {
    let dir = tmp("broken");
    write_hf(&dir, "qwen3");
    std::fs::write(dir.join("config.json"), r#"{"model_type": "gpt_neox", "vocab_size": 4, "hidden_size": 4, "num_hidden_layers": 1, "num_attention_heads": 1}"#).unwrap();
    let err = CandleModel::from_hf_dir(&dir, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("gpt_neox"), "{err}");
    std::fs::write(dir.join("config.json"), "{not json").unwrap();
    assert!(CandleModel::from_hf_dir(&dir, None)
        .unwrap_err()
        .to_string()
        .contains("config.json"));
    std::fs::remove_dir_all(&dir).ok();
}
