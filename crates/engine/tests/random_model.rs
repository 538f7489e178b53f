//! `random_model`: the tiny preset written as GGUF (q8_0, f16, q4_0) and as a safetensors
//! directory loads on every backend that reads the format, tokenizes text, and produces finite
//! logits of width V for a prompt and a decode step.

use std::path::Path;

use adasamp_engine::random_model::{
    write_random_llama, ModelFormat, Preset, RandomModelSpec, WeightType,
};
use adasamp_engine::{load, BackendChoice, Feed, LoadOptions};

const V: usize = 300;

fn spec(format: ModelFormat, weights: WeightType) -> RandomModelSpec {
    RandomModelSpec {
        preset: Preset::Tiny,
        vocab: V,
        format,
        weights,
        seed: 7,
    }
}

/// Loads `path` on `backend`, prefills an encoded prompt, decodes one token; checks the logits.
fn check_runs(path: &Path, backend: BackendChoice, opts: LoadOptions) -> Vec<f32> {
    let mut lm = load(Some(path), backend, opts, &mut |_| {}).unwrap();
    assert_eq!(lm.model.info().vocab_size, V);
    assert_eq!(lm.tokenizer.vocab_size(), V);
    let prompt = lm.tokenizer.encode("Hello, world: 42!", true).unwrap();
    assert!(prompt.len() > 3, "{prompt:?}");
    assert!(prompt.iter().all(|&t| (t as usize) < V));
    let seq = lm.model.new_sequence().unwrap();
    let out = lm.model.forward(&[Feed::tokens(seq, &prompt)]).unwrap();
    let row = out.last_row(0).to_vec();
    assert_eq!(row.len(), V);
    assert!(row.iter().all(|x| x.is_finite()), "{row:?}");
    // Random weights: the logits are not all equal.
    assert!(row.iter().any(|&x| x != row[0]));
    let next = [row
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i as u32)
        .unwrap()];
    let out = lm.model.forward(&[Feed::tokens(seq, &next)]).unwrap();
    assert!(out.last_row(0).iter().all(|x| x.is_finite()));
    row
}

#[test]
fn tiny_gguf_runs_on_candle_and_llama_cpp() {
    let dir = tempfile::tempdir().unwrap();
    for w in [WeightType::Q8_0, WeightType::F16, WeightType::Q4_0] {
        let path = dir.path().join(format!("tiny-{}.gguf", w.name()));
        write_random_llama(&spec(ModelFormat::Gguf, w), &path, &|_, _| {}).unwrap();
        let candle = check_runs(&path, BackendChoice::Candle, LoadOptions::default());
        if cfg!(feature = "llama-cpp") {
            let llama = check_runs(&path, BackendChoice::LlamaCpp, LoadOptions::default());
            // Same weights, same arithmetic up to rounding: the two backends agree.
            let diff = candle
                .iter()
                .zip(&llama)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(
                diff < 1e-2,
                "{}: max |candle − llama.cpp| = {diff}",
                w.name()
            );
        }
    }
}

#[test]
fn tiny_safetensors_runs_on_candle_in_f32_f16_and_bf16() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny-hf");
    write_random_llama(
        &spec(ModelFormat::Safetensors, WeightType::Bf16),
        &path,
        &|_, _| {},
    )
    .unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        assert!(path.join(f).is_file(), "{f}");
    }
    let f32_row = check_runs(&path, BackendChoice::Auto, LoadOptions::default());
    for dtype in [candle_core::DType::F16, candle_core::DType::BF16] {
        let opts = LoadOptions {
            dtype: Some(dtype),
            ..Default::default()
        };
        let row = check_runs(&path, BackendChoice::Candle, opts);
        let diff = f32_row
            .iter()
            .zip(&row)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff < 5e-2, "{dtype:?}: max |Δ| from f32 = {diff}");
    }
}

#[test]
fn same_seed_same_file_other_seed_other_weights() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(ModelFormat::Gguf, WeightType::Q8_0);
    let a = dir.path().join("a.gguf");
    let b = dir.path().join("b.gguf");
    let c = dir.path().join("c.gguf");
    write_random_llama(&s, &a, &|_, _| {}).unwrap();
    write_random_llama(&s, &b, &|_, _| {}).unwrap();
    write_random_llama(&RandomModelSpec { seed: 8, ..s }, &c, &|_, _| {}).unwrap();
    let read = |p: &Path| std::fs::read(p).unwrap();
    assert_eq!(read(&a), read(&b));
    assert_ne!(read(&a), read(&c));
}

#[test]
fn gguf_dtype_other_than_f32_is_refused_on_candle() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.gguf");
    write_random_llama(&spec(ModelFormat::Gguf, WeightType::F16), &path, &|_, _| {}).unwrap();
    let opts = LoadOptions {
        dtype: Some(candle_core::DType::BF16),
        ..Default::default()
    };
    match load(Some(&path), BackendChoice::Candle, opts, &mut |_| {}) {
        Err(adasamp_engine::EngineError::BadRequest { field, value, .. }) => {
            assert_eq!(field, "dtype");
            assert_eq!(value, "bf16");
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}
