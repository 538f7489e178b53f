//! Speculative decoding end to end. On tiny random models (always run): greedy speculative
//! equals greedy plain decoding token for token for each drafter (a second model, early exit,
//! n-grams), also with context-dependent stages (repetition penalty, no-repeat-ngram); with a
//! temperature/top_p pipeline the first generated token's empirical distribution fits the
//! target's exact one (chi-square, p > 0.001) while drafts are both accepted and rejected. On
//! the default model (skipped when absent): greedy equality for each drafter (the model drafts
//! for itself; early exit on candle), the n-gram drafter's first-token fit, and the typed
//! errors (early exit on llama.cpp, different vocabularies, bad sizes).

mod common;

use adasamp_engine::candle_backend::{CandleModel, CandleOptions};
use adasamp_engine::speculative::{check_drafter, generate_speculative, Drafter};
use adasamp_engine::tokenizer::TextTokenizer;
use adasamp_engine::{
    generate, BackendChoice, EngineError, Feed, GenerationRequest, LanguageModel, LoadedModel,
};
use adasamp_sampling::gof::chi_square_test;
use adasamp_sampling::speculative::SpeculationStats;
use adasamp_sampling::{Context, Pipeline, PipelineSpec, SequenceSampler, StageSpec};
use common::tiny::{tmp, word_tokenizer, write_hf, V};

fn pipeline(name: &str, stages: Vec<StageSpec>) -> Pipeline {
    Pipeline::from_spec(PipelineSpec {
        name: name.into(),
        weight: 1.0,
        processors: stages,
    })
    .unwrap()
}

fn greedy() -> Pipeline {
    pipeline("greedy", vec![StageSpec::new("greedy", &[])])
}

fn penalised_greedy() -> Pipeline {
    pipeline(
        "penalised",
        vec![
            StageSpec::new("repetition_penalty", &[("penalty", 1.3)]),
            StageSpec::new("no_repeat_ngram", &[("n", 3.0)]),
            StageSpec::new("greedy", &[]),
        ],
    )
}

fn t_top_p() -> Pipeline {
    pipeline(
        "t1p09",
        vec![
            StageSpec::new("temperature", &[("temperature", 1.0)]),
            StageSpec::new("top_p", &[("top_p", 0.9)]),
        ],
    )
}

fn request(prompt: Vec<u32>, pipeline: Pipeline, seed: u64, max_new: usize) -> GenerationRequest {
    GenerationRequest {
        prompt,
        pipeline,
        seed,
        max_new_tokens: max_new,
        stop: vec![],
        logprobs: 0,
    }
}

/// Two tiny random models over one vocabulary (a llama target, a qwen2 draft) and their
/// word-level tokenizer, written under directories named after `test` (tests run in parallel).
fn tiny(test: &str) -> (CandleModel, CandleModel, TextTokenizer) {
    let opts = CandleOptions {
        max_sequences: 64,
        ..CandleOptions::default()
    };
    let (a, b) = (
        tmp(&format!("spec-target-{test}")),
        tmp(&format!("spec-draft-{test}")),
    );
    write_hf(&a, "llama");
    write_hf(&b, "qwen2");
    let tok = word_tokenizer(&a);
    let t = CandleModel::from_hf_dir(&a, opts).unwrap();
    let d = CandleModel::from_hf_dir(&b, opts).unwrap();
    std::fs::remove_dir_all(&a).ok();
    std::fs::remove_dir_all(&b).ok();
    (t, d, tok)
}

/// Tiny prompts: repeated patterns (so n-grams find drafts), a plain run, and a long prompt.
fn tiny_prompts() -> Vec<Vec<u32>> {
    vec![
        vec![5, 9, 13, 17, 5, 9, 13, 17, 5, 9],
        vec![40, 41, 42, 43, 44],
        vec![7, 7, 8, 7, 7, 8, 7],
        // Longer than the prefill split: prefilled apart, then verified.
        (0..90u32).map(|i| (i * 7) % 50 + 2).collect(),
    ]
}

fn plain(
    model: &mut dyn LanguageModel,
    tok: &TextTokenizer,
    reqs: Vec<GenerationRequest>,
) -> Vec<Vec<u32>> {
    let (gens, _) = generate(model, tok, reqs, &mut |_, _| {}).unwrap();
    gens.into_iter().map(|g| g.tokens).collect()
}

/// Runs `reqs` speculatively; returns the tokens and the summed counts.
fn spec(
    target: &mut dyn LanguageModel,
    drafter: Drafter<'_>,
    tok: &TextTokenizer,
    reqs: Vec<GenerationRequest>,
    g: usize,
) -> (Vec<Vec<u32>>, SpeculationStats) {
    let gens = generate_speculative(target, drafter, tok, reqs, g, &mut |_, _| {}).unwrap();
    let mut stats = SpeculationStats::default();
    for s in &gens {
        stats.add(&s.stats);
        assert_eq!(s.stats.generated, s.generation.tokens.len());
    }
    (
        gens.into_iter().map(|g| g.generation.tokens).collect(),
        stats,
    )
}

#[test]
fn tiny_greedy_speculative_equals_greedy_plain_for_every_drafter() {
    let (mut t, mut d, tok) = tiny("greedy");
    for make in [greedy as fn() -> Pipeline, penalised_greedy] {
        let reqs = || -> Vec<GenerationRequest> {
            tiny_prompts()
                .into_iter()
                .map(|p| request(p, make(), 1, 24))
                .collect()
        };
        let want = plain(&mut t, &tok, reqs());
        assert!(want.iter().all(|w| !w.is_empty()));
        for g in [1, 4] {
            let (got, stats) = spec(&mut t, Drafter::Model(&mut d), &tok, reqs(), g);
            assert_eq!(got, want, "draft model, G = {g}");
            assert!(stats.drafted > 0);
            let (got, _) = spec(&mut t, Drafter::EarlyExit { layers: 1 }, &tok, reqs(), g);
            assert_eq!(got, want, "early exit, G = {g}");
            let (got, stats) = spec(&mut t, Drafter::Ngram { n: 3 }, &tok, reqs(), g);
            assert_eq!(got, want, "n-gram, G = {g}");
            assert!(stats.drafted > 0, "the repeated prompt gives n-gram drafts");
            // The draft model as target, with its own early exit.
            let (got, stats) = spec(&mut d, Drafter::EarlyExit { layers: 1 }, &tok, reqs(), g);
            assert_eq!(
                got,
                plain(&mut d, &tok, reqs()),
                "draft model as target, G = {g}"
            );
            assert!(stats.tokens_per_forward() >= 1.0);
        }
    }
}

#[test]
fn tiny_stop_strings_and_limits_end_speculative_generations_as_plain_ones() {
    let (mut t, mut d, tok) = tiny("stops");
    let prompt = tiny_prompts()[0].clone();
    let (free_run, _) = generate(
        &mut t,
        &tok,
        vec![request(prompt.clone(), greedy(), 1, 24)],
        &mut |_, _| {},
    )
    .unwrap();
    let words: Vec<&str> = free_run[0].text.split_whitespace().collect();
    assert!(words.len() > 6, "{:?}", free_run[0].text);
    // A stop string met mid-generation (possibly inside an accepted draft), and a token limit.
    let mut stopped = request(prompt.clone(), greedy(), 1, 24);
    stopped.stop = vec![format!(" {}", words[5])];
    let limited = request(prompt, greedy(), 1, 5);
    let reqs = || vec![stopped.clone(), limited.clone()];
    let (want, _) = generate(&mut t, &tok, reqs(), &mut |_, _| {}).unwrap();
    assert_eq!(want[0].finish_reason, adasamp_engine::FinishReason::Stop);
    assert_eq!(want[1].tokens.len(), 5);
    for g in [2, 6] {
        for drafter in [
            Drafter::Model(&mut d),
            Drafter::EarlyExit { layers: 1 },
            Drafter::Ngram { n: 3 },
        ] {
            let kind = drafter.kind();
            let mut streamed = vec![String::new(); 2];
            let got = generate_speculative(&mut t, drafter, &tok, reqs(), g, &mut |i, piece| {
                streamed[i].push_str(piece)
            })
            .unwrap();
            for (w, s) in want.iter().zip(&got) {
                let s = &s.generation;
                assert_eq!(s.tokens, w.tokens, "{kind}, G = {g}");
                assert_eq!(s.text, w.text, "{kind}, G = {g}");
                assert_eq!(s.finish_reason, w.finish_reason, "{kind}, G = {g}");
                assert_eq!(s.usage, w.usage, "{kind}, G = {g}");
            }
            assert_eq!(streamed[0], want[0].text, "{kind}: streamed text");
        }
    }
}

/// The target's exact first-token distribution for `prompt` under `pipeline` (dense).
fn first_token_distribution(
    model: &mut dyn LanguageModel,
    prompt: &[u32],
    pipeline: Pipeline,
) -> Vec<f64> {
    let seq = model.new_sequence().unwrap();
    let out = model.forward(&[Feed::tokens(seq, prompt)]).unwrap();
    model.free_sequence(seq);
    let mut s = SequenceSampler::new(pipeline, 0, 0, 0);
    let d = s
        .distribution(out.last_row(0), &Context::new(prompt, prompt.len()), 0)
        .unwrap();
    let mut p = vec![0.0f32; d.vocab()];
    d.write_probs(&mut p);
    let z: f64 = p.iter().map(|&v| v as f64).sum();
    p.iter().map(|&v| v as f64 / z).collect()
}

/// Counts the first generated token over `seeds` speculative runs of `prompt`.
fn first_token_counts(
    target: &mut dyn LanguageModel,
    mut drafter: Drafter<'_>,
    tok: &TextTokenizer,
    prompt: &[u32],
    seeds: u64,
    vocab: usize,
) -> (Vec<u64>, SpeculationStats) {
    let reqs: Vec<GenerationRequest> = (0..seeds)
        .map(|s| request(prompt.to_vec(), t_top_p(), s, 2))
        .collect();
    let gens = generate_speculative(
        target,
        std::mem::replace(&mut drafter, Drafter::Ngram { n: 1 }),
        tok,
        reqs,
        3,
        &mut |_, _| {},
    )
    .unwrap();
    let mut counts = vec![0u64; vocab];
    let mut stats = SpeculationStats::default();
    for g in gens {
        counts[g.generation.tokens[0] as usize] += 1;
        stats.add(&g.stats);
    }
    (counts, stats)
}

#[test]
fn tiny_first_token_distribution_matches_the_target_with_a_draft_model() {
    let (mut t, mut d, tok) = tiny("first");
    let prompt = [5u32, 9, 13, 17, 5, 9];
    let p = first_token_distribution(&mut t, &prompt, t_top_p());
    let q = first_token_distribution(&mut d, &prompt, t_top_p());
    let tv: f64 = p.iter().zip(&q).map(|(a, b)| (a - b).abs()).sum::<f64>() / 2.0;
    assert!(tv > 0.05, "the two tiny models must differ (TV = {tv})");
    let (counts, stats) =
        first_token_counts(&mut t, Drafter::Model(&mut d), &tok, &prompt, 4000, V);
    assert!(
        stats.accepted > 0 && stats.accepted < stats.drafted,
        "{stats:?}"
    );
    let fit = chi_square_test(&counts, &p).unwrap();
    assert!(fit.p_value > 0.001, "{fit:?}");
    // The draft's own distribution is not what comes out.
    let misfit = chi_square_test(&counts, &q).unwrap();
    assert!(misfit.p_value < 1e-6, "{misfit:?}");
}

#[test]
fn bad_drafters_are_typed_errors() {
    let (mut t, _, _) = tiny("errors");
    let err = check_drafter(&t, &Drafter::EarlyExit { layers: 2 }, 4).unwrap_err();
    assert!(err.to_string().contains("draft_layers = 2"), "{err}");
    let err = check_drafter(&t, &Drafter::EarlyExit { layers: 0 }, 4).unwrap_err();
    assert!(err.to_string().contains("draft_layers = 0"), "{err}");
    let err = check_drafter(&t, &Drafter::Ngram { n: 0 }, 4).unwrap_err();
    assert!(err.to_string().contains("draft_ngram = 0"), "{err}");
    let err = check_drafter(&t, &Drafter::Ngram { n: 2 }, 0).unwrap_err();
    assert!(err.to_string().contains("draft_tokens = 0"), "{err}");
    let Some(mut big) = common::default_model(BackendChoice::LlamaCpp, false) else {
        return;
    };
    let err = check_drafter(&t, &Drafter::Model(big.model.as_mut()), 4).unwrap_err();
    assert!(
        matches!(err, EngineError::DraftVocabMismatch { target, draft } if target == V && draft == 49152),
        "{err}"
    );
    assert!(
        err.to_string().contains("96") && err.to_string().contains("49152"),
        "{err}"
    );
    let err = check_drafter(big.model.as_ref(), &Drafter::EarlyExit { layers: 4 }, 4).unwrap_err();
    assert!(matches!(err, EngineError::Unsupported { .. }), "{err}");
    // The generation entry point refuses the same way before running anything.
    let r = request(vec![1, 2, 3], greedy(), 0, 4);
    let dir = tmp("spec-err-tok");
    let tok = word_tokenizer(&dir);
    std::fs::remove_dir_all(&dir).ok();
    let err = generate_speculative(
        &mut t,
        Drafter::Ngram { n: 2 },
        &tok,
        vec![r],
        0,
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("draft_tokens = 0"), "{err}");
}

fn default_prompt(m: &LoadedModel) -> Vec<u32> {
    m.prompt_tokens(
        "Count from 1 to 12, separated by commas, then repeat the list once.",
        None,
        false,
    )
    .unwrap()
}

#[test]
fn default_model_greedy_speculative_equals_greedy_plain_for_every_drafter() {
    let Some(mut t) = common::default_model(BackendChoice::LlamaCpp, false) else {
        return;
    };
    let Some(mut d) = common::default_model(BackendChoice::LlamaCpp, false) else {
        return;
    };
    let prompt = default_prompt(&t);
    let reqs = || vec![request(prompt.clone(), greedy(), 0, 40)];
    let want = plain(t.model.as_mut(), &t.tokenizer, reqs());
    let (got, stats) = spec(
        t.model.as_mut(),
        Drafter::Ngram { n: 3 },
        &t.tokenizer,
        reqs(),
        4,
    );
    assert_eq!(got, want, "n-gram");
    assert!(stats.accepted > 0, "{stats:?}");
    eprintln!("n-gram: {stats:?}");
    let (got, stats) = spec(
        t.model.as_mut(),
        Drafter::Model(d.model.as_mut()),
        &t.tokenizer,
        reqs(),
        4,
    );
    assert_eq!(got, want, "draft model");
    assert!(
        stats.acceptance_rate() > 0.9,
        "the model drafting for itself: {stats:?}"
    );
    eprintln!("draft model: {stats:?}");
    drop(d);
    let Some(mut c) = common::default_model(BackendChoice::Candle, false) else {
        return;
    };
    let reqs = || vec![request(prompt.clone(), greedy(), 0, 16)];
    let want = plain(c.model.as_mut(), &c.tokenizer, reqs());
    let (got, stats) = spec(
        c.model.as_mut(),
        Drafter::EarlyExit { layers: 20 },
        &c.tokenizer,
        reqs(),
        3,
    );
    assert_eq!(got, want, "early exit (candle)");
    eprintln!("early exit: {stats:?}");
}

#[test]
fn default_model_ngram_first_token_distribution_matches_plain() {
    let Some(mut t) = common::default_model(BackendChoice::LlamaCpp, false) else {
        return;
    };
    // A raw prompt whose last token recurs: the first position always gets an n-gram draft.
    let prompt = t
        .tokenizer
        .encode("red green blue red green blue red", false)
        .unwrap();
    let p = first_token_distribution(t.model.as_mut(), &prompt, t_top_p());
    let vocab = t.model.info().vocab_size;
    let (counts, stats) = first_token_counts(
        t.model.as_mut(),
        Drafter::Ngram { n: 3 },
        &t.tokenizer,
        &prompt,
        600,
        vocab,
    );
    assert!(stats.drafted >= 400, "{stats:?}");
    assert!(
        stats.accepted > 0 && stats.accepted < stats.drafted,
        "{stats:?}"
    );
    let fit = chi_square_test(&counts, &p).unwrap();
    assert!(fit.p_value > 0.001, "{fit:?}");
}
