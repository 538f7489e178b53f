//! The engine on the real default model (SmolLM2-135M-Instruct Q4_1): equivalence with llama.cpp
//! on committed reference outputs, the "Paris" check, and determinism across batch sizes.
//! Skipped (with a note) when the model file is absent; CI fetches it first (`adasamp model fetch`).

use std::path::PathBuf;

use adasamp_engine::{fetch, generate, BackendChoice, Feed, GenerationRequest, LoadedModel};
use adasamp_sampling::{Pipeline, PipelineSpec, StageSpec};
use serde::Deserialize;

fn model() -> Option<LoadedModel> {
    let p = fetch::cached_path(&fetch::DEFAULT_MODEL);
    if !p.exists() {
        eprintln!(
            "note: {} absent; run `adasamp model fetch` to enable the default-model tests",
            p.display()
        );
        return None;
    }
    Some(
        adasamp_engine::load(
            Some(&p),
            BackendChoice::Candle,
            adasamp_engine::LoadOptions::with_max_seq_len(Some(2048)),
            &mut |_: &str| {},
        )
        .expect("default model loads"),
    )
}

#[derive(Deserialize)]
struct Reference {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    user: String,
    system: Option<String>,
    prompt: String,
    ids: Vec<u32>,
    argmax: Vec<u32>,
    top: std::collections::BTreeMap<String, Vec<(u32, f64)>>,
    greedy_ids: Vec<u32>,
    greedy_text: String,
}

fn reference() -> Reference {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/llamacpp/smollm2_reference.json");
    serde_json::from_str(&std::fs::read_to_string(p).expect("reference file"))
        .expect("reference parses")
}

fn greedy() -> Pipeline {
    Pipeline::from_spec(PipelineSpec {
        name: "greedy".into(),
        weight: 1.0,
        processors: vec![StageSpec::new("greedy", &[])],
    })
    .unwrap()
}

#[test]
fn logits_agree_with_llama_cpp() {
    let Some(mut lm) = model() else { return };
    let (mut agree, mut total, mut kl_sum, mut kl_n, mut kl_max) =
        (0usize, 0usize, 0.0f64, 0usize, 0.0f64);
    for c in reference().cases {
        // Same prompt text and token ids as llama.cpp.
        assert_eq!(
            lm.prompt_text(&c.user, c.system.as_deref(), false).unwrap(),
            c.prompt
        );
        assert_eq!(
            lm.prompt_tokens(&c.user, c.system.as_deref(), false)
                .unwrap(),
            c.ids
        );
        let seq = lm.model.new_sequence().unwrap();
        let l = lm
            .model
            .forward_all(Feed {
                seq,
                tokens: &c.ids,
            })
            .unwrap();
        lm.model.free_sequence(seq);
        for (pos, &want) in c.argmax.iter().enumerate() {
            let row = l.row(pos);
            let got = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0 as u32;
            agree += (got == want) as usize;
            total += 1;
        }
        for (pos, top) in &c.top {
            let row = l.row(pos.parse().unwrap());
            let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
            let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
            // KL(llama.cpp ‖ adasamp) on llama.cpp's top-256 support (> 99.9 % of its mass).
            let kl: f64 = top
                .iter()
                .map(|&(id, lp)| lp.exp() * (lp - (row[id as usize] as f64 - lse)))
                .sum();
            kl_sum += kl;
            kl_n += 1;
            kl_max = kl_max.max(kl);
        }
    }
    let rate = agree as f64 / total as f64;
    eprintln!("candle vs llama.cpp: top-1 agreement {agree}/{total} = {:.1} %, KL mean {:.5} max {:.5} nats", rate * 100.0, kl_sum / kl_n as f64, kl_max);
    assert!(rate >= 0.95, "top-1 agreement {rate}");
    let kl_mean = kl_sum / kl_n as f64;
    assert!(
        kl_mean < 0.01 && kl_max < 0.05,
        "KL mean {kl_mean} max {kl_max}"
    );
}

#[test]
fn greedy_generation_matches_llama_cpp_and_answers_paris() {
    let Some(mut lm) = model() else { return };
    for c in reference().cases {
        let req = GenerationRequest {
            prompt: c.ids.clone(),
            pipeline: greedy(),
            seed: 0,
            max_new_tokens: c.greedy_ids.len().max(1),
            stop: vec![],
            logprobs: 0,
        };
        let (g, _) = generate(lm.model.as_mut(), &lm.tokenizer, vec![req], &mut |_, _| {}).unwrap();
        let n = g[0].tokens.len().min(c.greedy_ids.len());
        let same = g[0].tokens[..n]
            .iter()
            .zip(&c.greedy_ids[..n])
            .take_while(|(a, b)| a == b)
            .count();
        eprintln!(
            "{:?} / system {:?}: {same}/{} greedy tokens as llama.cpp: {:?}",
            c.user,
            c.system,
            c.greedy_ids.len(),
            g[0].text
        );
        // Two backends' numerics differ slightly, so a near-tie can flip the arg-max later on;
        // the opening tokens must agree.
        assert!(
            same >= 4.min(c.greedy_ids.len()),
            "greedy continuation diverges from llama.cpp after {same} tokens: {:?} vs {:?}",
            g[0].text,
            c.greedy_text
        );
    }
    // The capital of France, greedy, with an empty system turn (the template's default identity
    // line derails this quantized 135M model — llama.cpp does exactly the same).
    let prompt = lm
        .prompt_tokens("What is the capital of France?", Some(""), false)
        .unwrap();
    let req = GenerationRequest {
        prompt,
        pipeline: greedy(),
        seed: 0,
        max_new_tokens: 24,
        stop: vec![],
        logprobs: 0,
    };
    let (g, _) = generate(lm.model.as_mut(), &lm.tokenizer, vec![req], &mut |_, _| {}).unwrap();
    assert!(g[0].text.contains("Paris"), "{:?}", g[0].text);
}

#[test]
fn generation_is_deterministic_across_batch_sizes() {
    let Some(mut lm) = model() else { return };
    let spec = PipelineSpec {
        name: "chain".into(),
        weight: 1.0,
        processors: vec![
            StageSpec::new("top_k", &[("top_k", 40.0)]),
            StageSpec::new("top_p", &[("top_p", 0.95)]),
            StageSpec::new("temperature", &[("temperature", 0.9)]),
            StageSpec::new("repetition_penalty", &[("penalty", 1.1)]),
        ],
    };
    let pipe = Pipeline::from_spec(spec).unwrap();
    let prompts = [
        "Tell me a short fact about owls.",
        "Name three colours.",
        "Write one line of a poem about rain.",
    ];
    let reqs: Vec<GenerationRequest> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| GenerationRequest {
            prompt: lm.prompt_tokens(p, None, false).unwrap(),
            pipeline: pipe.clone(),
            seed: 100 + i as u64,
            max_new_tokens: 20,
            stop: vec![],
            logprobs: 0,
        })
        .collect();
    let (batched, _) = generate(
        lm.model.as_mut(),
        &lm.tokenizer,
        reqs.clone(),
        &mut |_, _| {},
    )
    .unwrap();
    for (i, r) in reqs.into_iter().enumerate() {
        let (alone, _) = generate(
            lm.model.as_mut(),
            &lm.tokenizer,
            vec![r.clone()],
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(
            alone[0].tokens, batched[i].tokens,
            "request {i} differs between batch of 3 and alone"
        );
        let (again, _) =
            generate(lm.model.as_mut(), &lm.tokenizer, vec![r], &mut |_, _| {}).unwrap();
        assert_eq!(
            again[0].tokens, alone[0].tokens,
            "same seed, different output"
        );
    }
}

#[test]
fn stop_strings_and_token_limits() {
    let Some(mut lm) = model() else { return };
    let prompt = lm
        .prompt_tokens("Count from 1 to 20, separated by commas.", Some(""), false)
        .unwrap();
    let req = GenerationRequest {
        prompt: prompt.clone(),
        pipeline: greedy(),
        seed: 0,
        max_new_tokens: 60,
        stop: vec!["5".into()],
        logprobs: 3,
    };
    let (g, _) = generate(lm.model.as_mut(), &lm.tokenizer, vec![req], &mut |_, _| {}).unwrap();
    assert!(!g[0].text.contains('5'), "{:?}", g[0].text);
    assert_eq!(
        g[0].finish_reason,
        adasamp_engine::FinishReason::Stop,
        "{:?}",
        g[0].text
    );
    assert_eq!(g[0].logprobs.len(), g[0].tokens.len());
    assert!(
        g[0].logprobs
            .iter()
            .all(|s| s.top.len() == 1 && (s.prob - 1.0).abs() < 1e-6),
        "greedy keeps one token"
    );
    let req = GenerationRequest {
        prompt,
        pipeline: greedy(),
        seed: 0,
        max_new_tokens: 3,
        stop: vec![],
        logprobs: 0,
    };
    let (g, _) = generate(lm.model.as_mut(), &lm.tokenizer, vec![req], &mut |_, _| {}).unwrap();
    assert_eq!(
        (g[0].tokens.len(), g[0].finish_reason),
        (3, adasamp_engine::FinishReason::Length)
    );
}
