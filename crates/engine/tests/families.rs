//! The candle backend on tiny randomly initialised models written by the test itself in the real
//! file formats (HF safetensors directories for Llama / Qwen2 / Qwen3, a GGUF Llama file):
//! loading, KV-cache consistency, batch invariance, rollback, early exit, input embeddings.

use std::path::Path;

use adasamp_engine::candle_backend::{CandleModel, CandleOptions};
use adasamp_engine::{EngineError, Feed, ForwardOutput, LanguageModel, SeqId};
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

/// Runs one step of a fresh sequence (freed afterwards) fed as `feed` says.
fn run_fresh<'a>(m: &mut CandleModel, feed: impl Fn(SeqId) -> Feed<'a>) -> ForwardOutput {
    let s = m.new_sequence().unwrap();
    let out = m.forward(&[feed(s)]).unwrap();
    m.free_sequence(s);
    out
}

/// The embedding matrix, read out explicitly (test only).
fn embedding_matrix(m: &CandleModel) -> Vec<f32> {
    m.transformer()
        .w
        .embed
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

static PROMPT: [u32; 7] = [1, 5, 9, 33, 2, 71, 40];

/// Checks every backend invariant on a loaded tiny model.
fn check_model(m: &mut CandleModel) {
    let prompt = &PROMPT[..];
    // Teacher forcing in one pass == incremental decoding with the KV cache.
    let s = m.new_sequence().unwrap();
    let out = m
        .forward(&[Feed::tokens(s, prompt).with_all_logits()])
        .unwrap();
    let all = out.logits.clone();
    assert_eq!((all.rows, all.vocab), (prompt.len(), V));
    assert_eq!(out.rows, vec![0..prompt.len()]);
    assert_eq!(out.hidden, vec![Vec::new()]);
    assert_eq!(out.last_row(0), all.row(prompt.len() - 1));
    assert!(all.data.iter().all(|v| v.is_finite()));
    let s2 = m.new_sequence().unwrap();
    for (i, t) in prompt.iter().enumerate() {
        let l = m
            .forward(&[Feed::tokens(s2, std::slice::from_ref(t))])
            .unwrap();
        let d = max_abs_diff(l.last_row(0), all.row(i));
        assert!(
            d < 1e-4,
            "position {i}: incremental vs teacher-forced differ by {d}"
        );
    }
    m.free_sequence(s2);
    // Batch invariance: the same sequence alone or beside another gives the same logits; a
    // batch may mix all-position and last-position feeds.
    let a = m.new_sequence().unwrap();
    let b = m.new_sequence().unwrap();
    let both = m
        .forward(&[
            Feed::tokens(a, &prompt[..5]).with_all_logits(),
            Feed::tokens(b, &prompt[..3]),
        ])
        .unwrap();
    assert_eq!(both.rows, vec![0..5, 5..6]);
    let alone = run_fresh(m, |c| Feed::tokens(c, &PROMPT[..3]));
    assert_eq!(
        both.last_row(1),
        alone.last_row(0),
        "a sequence's logits depend on its batch"
    );
    assert!(max_abs_diff(both.feed_rows(0), &all.data[..5 * V]) < 1e-4);
    m.free_sequence(a);
    m.free_sequence(b);
    // Rollback: truncate and re-feed reproduces the logits.
    m.truncate(s, 4).unwrap();
    assert_eq!(m.sequence_len(s).unwrap(), 4);
    let again = m.forward(&[Feed::tokens(s, &prompt[4..5])]).unwrap();
    assert!(max_abs_diff(again.last_row(0), all.row(4)) < 1e-4);
    // Input embeddings = the embedding rows of the tokens (one-hot mixtures).
    let mut e = vec![0f32; prompt.len() * D];
    for (&t, row) in prompt.iter().zip(e.chunks_mut(D)) {
        m.embedding_mixture(&[(t, 1.0)], row).unwrap();
    }
    let emb = embedding_matrix(m);
    for (&t, row) in prompt.iter().zip(e.chunks(D)) {
        assert_eq!(row, &emb[t as usize * D..(t as usize + 1) * D]);
    }
    let via_emb = run_fresh(m, |c| Feed::embeddings(c, &e).with_all_logits());
    assert!(max_abs_diff(&via_emb.logits.data, &all.data) < 1e-4);
    // Early exit after 1 block with hidden states; the full depth equals the plain forward.
    let early = run_fresh(m, |c| {
        Feed::tokens(c, &PROMPT)
            .with_exit_after(1)
            .with_hidden_states(&[0])
    });
    assert_eq!(early.hidden[0].len(), 1);
    assert_eq!(early.hidden[0][0].block, 0);
    assert_eq!(early.hidden[0][0].rows, prompt.len());
    assert_eq!(early.hidden[0][0].data.len(), prompt.len() * D);
    assert!(max_abs_diff(early.last_row(0), all.row(prompt.len() - 1)) > 1e-6);
    let full = run_fresh(m, |c| {
        Feed::tokens(c, &PROMPT)
            .with_exit_after(LAYERS)
            .with_hidden_states(&[1, 0])
    });
    // Dense matmuls round by row count: compare with the last-row-only forward loosely.
    assert!(max_abs_diff(full.last_row(0), out.last_row(0)) < 1e-4);
    let blocks: Vec<usize> = full.hidden[0].iter().map(|h| h.block).collect();
    assert_eq!(blocks, vec![1, 0], "hidden states come in the order asked");
    assert_eq!(full.hidden[0][1], early.hidden[0][0]);
    m.free_sequence(s);
}

/// The error of a bad step, after checking that it left the sequence as it was.
fn failed_step(m: &mut CandleModel, feeds: &[Feed<'_>]) -> EngineError {
    let before: Vec<Option<usize>> = feeds.iter().map(|f| m.sequence_len(f.seq).ok()).collect();
    let e = m.forward(feeds).unwrap_err();
    let after: Vec<Option<usize>> = feeds.iter().map(|f| m.sequence_len(f.seq).ok()).collect();
    assert_eq!(
        before, after,
        "a failed step must leave the caches unchanged"
    );
    e
}

/// Bad requests are typed errors naming what is wrong, never panics.
fn check_errors(m: &mut CandleModel) {
    let s = m.new_sequence().unwrap();
    m.forward(&[Feed::tokens(s, &[1, 2])]).unwrap();
    let e = failed_step(m, &[Feed::tokens(999, &[1])]);
    assert!(
        matches!(e, EngineError::UnknownSequence { seq: 999 }),
        "{e}"
    );
    let e = failed_step(m, &[Feed::tokens(s, &[V as u32])]);
    assert!(
        matches!(&e, EngineError::BadRequest { field: "token", value, .. } if *value == V.to_string()),
        "{e}"
    );
    let e = failed_step(m, &[Feed::tokens(s, &[])]);
    assert!(
        matches!(e, EngineError::BadRequest { field: "input", .. }),
        "{e}"
    );
    let e = failed_step(m, &[Feed::embeddings(s, &[0.0; 3])]);
    assert!(
        matches!(
            e,
            EngineError::BadRequest {
                field: "embeddings",
                ..
            }
        ),
        "{e}"
    );
    let e = failed_step(m, &[Feed::tokens(s, &[1]), Feed::tokens(s, &[2])]);
    assert!(
        matches!(e, EngineError::BadRequest { field: "seq", .. }),
        "{e}"
    );
    let e = failed_step(m, &[Feed::tokens(s, &[1]).with_exit_after(LAYERS + 1)]);
    assert!(
        matches!(
            e,
            EngineError::BadRequest {
                field: "exit_after",
                ..
            }
        ),
        "{e}"
    );
    let e = failed_step(
        m,
        &[Feed::tokens(s, &[1])
            .with_exit_after(1)
            .with_hidden_states(&[1])],
    );
    assert!(
        matches!(
            e,
            EngineError::BadRequest {
                field: "hidden_states",
                ..
            }
        ),
        "{e}"
    );
    let max = m.info().max_seq_len;
    let long = vec![1u32; max - 1];
    let e = failed_step(m, &[Feed::tokens(s, &long)]);
    assert!(
        matches!(e, EngineError::ContextOverflow { seq, len, max: mx } if seq == s && len == max + 1 && mx == max),
        "{e}"
    );
    // A bad feed anywhere in the batch leaves the good ones unchanged too.
    let t = m.new_sequence().unwrap();
    let e = failed_step(m, &[Feed::tokens(t, &[3, 4]), Feed::tokens(s, &[V as u32])]);
    assert!(
        matches!(e, EngineError::BadRequest { field: "token", .. }),
        "{e}"
    );
    let e = m.truncate(s, 3).unwrap_err();
    assert!(
        matches!(e, EngineError::BadRequest { field: "len", .. }),
        "{e}"
    );
    assert!(matches!(
        m.truncate(77, 0),
        Err(EngineError::UnknownSequence { seq: 77 })
    ));
    let mut out = vec![0f32; D + 1];
    let e = m.embedding_mixture(&[(0, 1.0)], &mut out).unwrap_err();
    assert!(
        matches!(e, EngineError::BadRequest { field: "out", .. }),
        "{e}"
    );
    let mut out = vec![0f32; D];
    let e = m
        .embedding_mixture(&[(V as u32, 1.0)], &mut out)
        .unwrap_err();
    assert!(
        matches!(e, EngineError::BadRequest { field: "probs", .. }),
        "{e}"
    );
    let e = m.embedding_mixture(&[(0, f32::NAN)], &mut out).unwrap_err();
    assert!(
        matches!(e, EngineError::BadRequest { field: "probs", .. }),
        "{e}"
    );
    m.free_sequence(s);
    m.free_sequence(t);
    assert!(matches!(
        m.sequence_len(s),
        Err(EngineError::UnknownSequence { .. })
    ));
}

/// Drafting with early exit, rolling back and running the full model gives exactly the logits
/// of never having drafted; a full step right after an early-exit step is refused.
fn check_early_exit_rollback(m: &mut CandleModel) {
    let prompt = &PROMPT[..5];
    let draft = [7u32, 11, 13];
    // Never drafted: prompt, then the draft verified by the full model.
    let a = m.new_sequence().unwrap();
    m.forward(&[Feed::tokens(a, prompt)]).unwrap();
    let clean = m
        .forward(&[Feed::tokens(a, &draft).with_all_logits()])
        .unwrap();
    // Drafted token by token on the first block, rolled back, then verified.
    let b = m.new_sequence().unwrap();
    m.forward(&[Feed::tokens(b, prompt)]).unwrap();
    for t in &draft {
        m.forward(&[Feed::tokens(b, std::slice::from_ref(t)).with_exit_after(1)])
            .unwrap();
    }
    assert_eq!(m.sequence_len(b).unwrap(), prompt.len() + draft.len());
    // Without rollback the full model would read K/V its deeper blocks never wrote.
    let e = failed_step(m, &[Feed::tokens(b, &[3])]);
    assert!(
        matches!(
            e,
            EngineError::IncompleteCache { seq, block: 1, cached, len }
                if seq == b && cached == prompt.len() && len == prompt.len() + draft.len()
        ),
        "{e}"
    );
    // Another step of the same depth is fine.
    m.forward(&[Feed::tokens(b, &[3]).with_exit_after(1)])
        .unwrap();
    m.truncate(b, prompt.len()).unwrap();
    let verified = m
        .forward(&[Feed::tokens(b, &draft).with_all_logits()])
        .unwrap();
    assert_eq!(
        verified.logits, clean.logits,
        "drafting left a trace in the cache"
    );
    // Feeds of different depths in one step equal the same feeds run one by one.
    let c = m.new_sequence().unwrap();
    let d = m.new_sequence().unwrap();
    let mixed = m
        .forward(&[
            Feed::tokens(c, prompt).with_exit_after(1).with_all_logits(),
            Feed::tokens(d, &prompt[..3]).with_hidden_states(&[0]),
        ])
        .unwrap();
    assert_eq!(
        mixed.rows,
        vec![0..prompt.len(), prompt.len()..prompt.len() + 1]
    );
    let one = run_fresh(m, |x| {
        Feed::tokens(x, &PROMPT[..5])
            .with_exit_after(1)
            .with_all_logits()
    });
    let two = run_fresh(m, |x| {
        Feed::tokens(x, &PROMPT[..3]).with_hidden_states(&[0])
    });
    assert_eq!(mixed.feed_rows(0), one.feed_rows(0));
    assert_eq!(mixed.last_row(1), two.last_row(0));
    assert_eq!(mixed.hidden, vec![Vec::new(), two.hidden[0].clone()]);
    for s in [a, b, c, d] {
        m.free_sequence(s);
    }
}

/// `embedding_mixture` equals the explicit `pᵀ·W_E`, dense and sparse.
fn check_embedding_mixture(m: &CandleModel) {
    let w = embedding_matrix(m);
    let dense: Vec<(u32, f32)> = (0..V as u32).map(|t| (t, 1.0 / V as f32)).collect();
    let sparse = vec![(3u32, 0.5f32), (40, 0.3), (95, 0.2)];
    for p in [dense, sparse] {
        let mut got = vec![f32::NAN; D];
        m.embedding_mixture(&p, &mut got).unwrap();
        let want: Vec<f32> = (0..D)
            .map(|j| p.iter().map(|&(t, q)| q * w[t as usize * D + j]).sum())
            .collect();
        assert!(max_abs_diff(&got, &want) < 1e-6, "{got:?} vs {want:?}");
    }
}

/// Every check on one model.
fn check_all(m: &mut CandleModel) {
    check_model(m);
    check_errors(m);
    check_early_exit_rollback(m);
    check_embedding_mixture(m);
}

#[test]
fn hf_llama_qwen2_qwen3_load_and_run() {
    for family in ["llama", "qwen2", "qwen3"] {
        let dir = tmp(family);
        write_hf(&dir, family);
        let mut m = CandleModel::from_hf_dir(&dir, Default::default())
            .unwrap_or_else(|e| panic!("{family}: {e}"));
        assert_eq!(m.info().arch, family);
        check_all(&mut m);
        std::fs::remove_dir_all(&dir).ok();
    }
}

#[test]
fn gguf_llama_loads_and_runs() {
    let dir = tmp("gguf");
    let p = dir.join("tiny.gguf");
    write_gguf(&p);
    let (mut m, _) = CandleModel::from_gguf(&p, Default::default()).unwrap();
    check_all(&mut m);
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
    let err = CandleModel::from_hf_dir(&dir, Default::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("gpt_neox"), "{err}");
    std::fs::write(dir.join("config.json"), "{not json").unwrap();
    assert!(CandleModel::from_hf_dir(&dir, Default::default())
        .unwrap_err()
        .to_string()
        .contains("config.json"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_sequence_cap_is_kept() {
    let dir = tmp("cap");
    write_hf(&dir, "llama");
    let opts = CandleOptions {
        max_sequences: 2,
        ..Default::default()
    };
    let mut m = CandleModel::from_hf_dir(&dir, opts).unwrap();
    assert_eq!(m.max_sequences(), 2);
    let a = m.new_sequence().unwrap();
    let _b = m.new_sequence().unwrap();
    let e = m.new_sequence().unwrap_err();
    assert!(matches!(e, EngineError::NoFreeSequence { max: 2 }), "{e}");
    m.free_sequence(a);
    let c = m.new_sequence().unwrap();
    assert_eq!(m.sequence_len(c).unwrap(), 0);
    assert_eq!(
        CandleModel::from_hf_dir(&dir, Default::default())
            .unwrap()
            .max_sequences(),
        adasamp_engine::DEFAULT_MAX_SEQUENCES
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Loading asks for what a backend cannot do: typed errors naming it, with no CLI flag in the
/// message.
#[test]
fn load_refuses_what_a_backend_lacks() {
    use adasamp_engine::{Backend, BackendChoice, Capabilities, Capability, LoadOptions};
    let dir = tmp("load");
    write_hf(&dir, "llama");
    let e = adasamp_engine::load(
        Some(&dir),
        BackendChoice::LlamaCpp,
        LoadOptions::default(),
        &mut |_: &str| {},
    )
    .unwrap_err();
    assert!(
        matches!(&e, EngineError::BadRequest { field: "backend", value, .. } if value == "llama.cpp"),
        "{e}"
    );
    assert!(
        !e.to_string().contains("--"),
        "a library message names a CLI flag: {e}"
    );
    let gguf = dir.join("tiny.gguf");
    write_gguf(&gguf);
    let needs = Capabilities {
        hidden_states: true,
        ..Capabilities::default()
    };
    let opts = LoadOptions {
        needs,
        ..LoadOptions::default()
    };
    let e = adasamp_engine::load(
        Some(&gguf),
        BackendChoice::LlamaCpp,
        opts,
        &mut |_: &str| {},
    )
    .unwrap_err();
    if cfg!(feature = "llama-cpp") {
        assert!(
            matches!(
                e,
                EngineError::Unsupported {
                    backend: Backend::LlamaCpp,
                    capability: Capability::HiddenStates
                }
            ),
            "{e}"
        );
    } else {
        assert!(
            matches!(
                e,
                EngineError::BackendNotBuilt {
                    backend: Backend::LlamaCpp
                }
            ),
            "{e}"
        );
    }
    assert!(
        !e.to_string().contains("--"),
        "a library message names a CLI flag: {e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
