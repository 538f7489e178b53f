//! Soft sampling on the default model (skipped when the model file is absent): with a one-hot
//! (greedy) soft distribution the output equals plain greedy decoding token for token on both
//! backends; the two backends' embedding mixtures agree (sparse and dense weights); a soft
//! distribution that is not one-hot changes what the model sees; bad mixture arguments are typed
//! errors.

mod common;

use adasamp_engine::soft::{generate_soft, SoftRequest};
use adasamp_engine::{generate, BackendChoice, EngineError, GenerationRequest, LoadedModel};
use adasamp_sampling::{Pipeline, PipelineSpec, StageSpec};

const USER: &str = "Name three colours of the rainbow.";

fn pipeline(name: &str, processors: Vec<StageSpec>) -> Pipeline {
    Pipeline::from_spec(PipelineSpec {
        name: name.into(),
        weight: 1.0,
        processors,
    })
    .unwrap()
}

fn greedy() -> Pipeline {
    pipeline("greedy", vec![StageSpec::new("greedy", &[])])
}

fn request(lm: &LoadedModel, seed: u64) -> GenerationRequest {
    GenerationRequest {
        prompt: lm.prompt_tokens(USER, None, false).unwrap(),
        pipeline: greedy(),
        seed,
        max_new_tokens: 24,
        stop: vec![],
        logprobs: 0,
    }
}

fn backends() -> Vec<BackendChoice> {
    let mut b = vec![BackendChoice::Candle];
    if cfg!(feature = "llama-cpp") {
        b.push(BackendChoice::LlamaCpp);
    }
    b
}

#[test]
fn one_hot_soft_input_equals_greedy_decoding() {
    for backend in backends() {
        let Some(mut lm) = common::default_model(backend, false) else {
            return;
        };
        let reqs: Vec<GenerationRequest> = (0..2).map(|s| request(&lm, s)).collect();
        let (plain, _) = generate(
            lm.model.as_mut(),
            &lm.tokenizer,
            reqs.clone(),
            &mut |_, _| {},
        )
        .unwrap();
        // The generation pipeline's own distribution (greedy: one-hot), and an explicit greedy
        // soft pipeline.
        for soft_pipeline in [None, Some(greedy())] {
            let soft_reqs = reqs
                .iter()
                .map(|r| SoftRequest {
                    request: r.clone(),
                    soft_pipeline: soft_pipeline.clone(),
                })
                .collect();
            let soft =
                generate_soft(lm.model.as_mut(), &lm.tokenizer, soft_reqs, &mut |_, _| {}).unwrap();
            assert_eq!(soft.len(), plain.len());
            for (s, p) in soft.iter().zip(&plain) {
                assert!(p.tokens.len() > 4, "{backend:?}: {:?}", p.text);
                assert_eq!(
                    s.tokens, p.tokens,
                    "{backend:?}: {:?} vs {:?}",
                    s.text, p.text
                );
                assert_eq!(s.text, p.text);
                assert_eq!(s.finish_reason, p.finish_reason);
            }
        }
    }
}

#[test]
fn a_spread_soft_distribution_changes_the_continuation() {
    let Some(mut lm) = common::default_model(BackendChoice::LlamaCpp, false) else {
        return;
    };
    let req = request(&lm, 0);
    let (plain, _) = generate(
        lm.model.as_mut(),
        &lm.tokenizer,
        vec![req.clone()],
        &mut |_, _| {},
    )
    .unwrap();
    // Text still greedy, but the fed input is the mixture of a flat (temperature 3) distribution.
    let flat = pipeline(
        "flat",
        vec![StageSpec::new("temperature", &[("temperature", 3.0)])],
    );
    let soft = generate_soft(
        lm.model.as_mut(),
        &lm.tokenizer,
        vec![SoftRequest {
            request: req,
            soft_pipeline: Some(flat),
        }],
        &mut |_, _| {},
    )
    .unwrap();
    // The first token comes from the prompt alone, so it agrees; after that the inputs differ.
    assert_eq!(soft[0].tokens[0], plain[0].tokens[0]);
    assert_ne!(soft[0].tokens, plain[0].tokens, "{:?}", soft[0].text);
}

#[cfg(feature = "llama-cpp")]
#[test]
fn both_backends_compute_the_same_mixture() {
    let (Some(candle), Some(llama)) = (
        common::default_model(BackendChoice::Candle, false),
        common::default_model(BackendChoice::LlamaCpp, false),
    ) else {
        return;
    };
    let info = candle.model.info().clone();
    let (v, d) = (info.vocab_size, info.hidden_size);
    let sparse = vec![(3u32, 0.5f32), (1000, 0.25), (v as u32 - 1, 0.25)];
    let dense: Vec<(u32, f32)> = (0..v as u32)
        .map(|t| (t, ((t % 97) as f32 + 1.0) / (49.0 * v as f32)))
        .collect();
    for weights in [sparse, dense] {
        let (mut a, mut b) = (vec![0f32; d], vec![0f32; d]);
        candle.model.embedding_mixture(&weights, &mut a).unwrap();
        llama.model.embedding_mixture(&weights, &mut b).unwrap();
        let diff = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        let scale = a.iter().map(|x| x.abs()).fold(0f32, f32::max);
        assert!(scale > 0.0);
        assert!(diff <= 1e-5 * scale.max(1.0), "max |Δ| {diff}");
    }
    let mut out = vec![0f32; d];
    let cases = [
        (vec![(v as u32, 1.0f32)], d, "probs"),
        (vec![(0, f32::NAN)], d, "probs"),
        (vec![(0, 1.0)], d - 1, "out"),
    ];
    for (weights, len, field) in cases {
        let e = llama
            .model
            .embedding_mixture(&weights, &mut out[..len])
            .unwrap_err();
        assert!(
            matches!(e, EngineError::BadRequest { field: f, .. } if f == field),
            "{e}"
        );
    }
}
