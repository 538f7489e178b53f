//! The step-wise scheduler on a tiny random candle model (always) and on the default model via
//! llama.cpp (when built in and cached): requests joining mid-run decode exactly as alone,
//! cancellation frees the sequence and leaves the others unchanged, the running cap with FIFO
//! admission, every finish reason, a failing sequence that does not stop the others, the step
//! observer (each sampled position's raw row and final distribution), and the prefix cache and
//! prefill budget (fewer prompt tokens prefilled, no step over budget, the same tokens).

mod common;

use std::collections::BTreeMap;

use adasamp_engine::tokenizer::TextTokenizer;
use adasamp_engine::{
    generate, Feed, FinishReason, Generation, GenerationRequest, LanguageModel, RequestId,
    Scheduler, SchedulerOptions, StepEnd,
};
use adasamp_sampling::spec::{Mapping, Value};
use adasamp_sampling::{Context, Pipeline, PipelineSpec, SequenceSampler, StageSpec};
use common::tiny;

/// `logit_bias` with the given biases.
fn bias(pairs: &[(u32, f64)]) -> StageSpec {
    let mut m = Mapping::new();
    for &(id, b) in pairs {
        m.insert(Value::Number((id as u64).into()), Value::Number(b.into()));
    }
    StageSpec::new("logit_bias", &[]).with("bias", Value::Mapping(m))
}

fn pipeline(stages: Vec<StageSpec>) -> Pipeline {
    Pipeline::from_spec(PipelineSpec {
        name: "test".into(),
        weight: 1.0,
        processors: stages,
    })
    .unwrap()
}

/// Random sampling (top-k 40, T 1) that never ends on EOS: lengths are exactly the limit.
fn sampled(tok: &TextTokenizer) -> Pipeline {
    let no_eos: Vec<(u32, f64)> = tok
        .eos_ids()
        .iter()
        .map(|&e| (e, f64::NEG_INFINITY))
        .collect();
    pipeline(vec![
        bias(&no_eos),
        StageSpec::new("top_k", &[("top_k", 40.0)]),
        StageSpec::new("temperature", &[("temperature", 1.0)]),
    ])
}

fn request(prompt: &[u32], pipeline: Pipeline, seed: u64, max_new: usize) -> GenerationRequest {
    GenerationRequest {
        prompt: prompt.to_vec(),
        pipeline,
        seed,
        max_new_tokens: max_new,
        stop: vec![],
        logprobs: 0,
    }
}

/// Three sampled requests of different lengths.
fn three(prompts: &[Vec<u32>], tok: &TextTokenizer) -> Vec<GenerationRequest> {
    [12, 9, 10]
        .iter()
        .enumerate()
        .map(|(i, &n)| request(&prompts[i % prompts.len()], sampled(tok), 40 + i as u64, n))
        .collect()
}

fn alone(model: &mut dyn LanguageModel, tok: &TextTokenizer, r: &GenerationRequest) -> Generation {
    let (mut g, _) = generate(model, tok, vec![r.clone()], &mut |_, _| {}).unwrap();
    g.remove(0)
}

/// Runs `reqs` on one scheduler, adding request `k` before step `joins[k]`; returns the
/// generations by request and the text streamed for each.
fn run_joining(
    model: &mut dyn LanguageModel,
    tok: &TextTokenizer,
    reqs: &[GenerationRequest],
    joins: &[usize],
) -> (Vec<Generation>, Vec<String>) {
    let mut sched = Scheduler::new(model, tok, usize::MAX);
    let mut out: BTreeMap<RequestId, Generation> = BTreeMap::new();
    let mut streamed = vec![String::new(); reqs.len()];
    let mut step = 0;
    loop {
        for (k, r) in reqs.iter().enumerate() {
            if joins[k] == step {
                assert_eq!(sched.add(r.clone()).unwrap(), RequestId(k as u64));
            }
        }
        if sched.is_idle() && joins.iter().all(|&j| j < step) {
            break;
        }
        let report = sched.step().unwrap();
        for e in report.events() {
            streamed[e.id.0 as usize].push_str(report.text(e));
        }
        for f in sched.take_finished() {
            out.insert(f.id, f.result.unwrap());
        }
        step += 1;
    }
    (out.into_values().collect(), streamed)
}

fn check_joining_mid_run(model: &mut dyn LanguageModel, tok: &TextTokenizer, prompts: &[Vec<u32>]) {
    let reqs = three(prompts, tok);
    let want: Vec<Generation> = reqs.iter().map(|r| alone(model, tok, r)).collect();
    let (got, streamed) = run_joining(model, tok, &reqs, &[0, 3, 5]);
    assert_eq!(got.len(), 3);
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.tokens, w.tokens, "request {k}: joined mid-run vs alone");
        assert_eq!(g.text, w.text, "request {k}");
        assert_eq!(streamed[k], g.text, "request {k}: streamed text");
        assert_eq!(g.finish_reason, FinishReason::Length);
    }
}

fn check_cancel(model: &mut dyn LanguageModel, tok: &TextTokenizer, prompts: &[Vec<u32>]) {
    let reqs = three(prompts, tok);
    let (without, _) = generate(
        model,
        tok,
        vec![reqs[0].clone(), reqs[2].clone()],
        &mut |_, _| {},
    )
    .unwrap();
    let mut sched = Scheduler::new(model, tok, usize::MAX);
    let ids: Vec<RequestId> = reqs.iter().map(|r| sched.add(r.clone()).unwrap()).collect();
    for _ in 0..4 {
        sched.step().unwrap();
    }
    let seq = sched.model_sequence(ids[1]).expect("request 1 runs");
    assert!(sched.model().sequence_len(seq).unwrap() > 0);
    assert!(sched.cancel(ids[1]));
    assert!(
        sched.model().sequence_len(seq).is_err(),
        "the cancelled sequence's KV cache is freed at once"
    );
    assert_eq!(sched.model_sequence(ids[1]), None);
    assert!(!sched.cancel(ids[1]), "cancelled twice");
    assert_eq!(sched.running().collect::<Vec<_>>(), [ids[0], ids[2]]);
    let mut out = BTreeMap::new();
    while !sched.is_idle() {
        let report = sched.step().unwrap();
        assert!(report.events().iter().all(|e| e.id != ids[1]));
        for f in sched.take_finished() {
            out.insert(f.id, f.result.unwrap());
        }
    }
    assert_eq!(out.keys().copied().collect::<Vec<_>>(), [ids[0], ids[2]]);
    assert_eq!(out[&ids[0]].tokens, without[0].tokens);
    assert_eq!(out[&ids[2]].tokens, without[1].tokens);
    // A waiting request can be cancelled too.
    let id = sched.add(reqs[0].clone()).unwrap();
    assert_eq!(sched.waiting().collect::<Vec<_>>(), [id]);
    assert!(sched.cancel(id));
    assert!(sched.is_idle());
}

fn check_cap(model: &mut dyn LanguageModel, tok: &TextTokenizer, prompts: &[Vec<u32>]) {
    let lens = [3, 5, 2, 4, 3];
    let mut sched = Scheduler::new(model, tok, 2);
    assert_eq!(sched.capacity(), 2);
    for (k, &n) in lens.iter().enumerate() {
        let r = request(&prompts[k % prompts.len()], sampled(tok), k as u64, n);
        sched.add(r).unwrap();
    }
    assert_eq!(sched.waiting().count(), 5);
    let mut admitted: Vec<RequestId> = Vec::new();
    let mut finished: Vec<(RequestId, usize)> = Vec::new();
    let mut steps = 0;
    while !sched.is_idle() {
        let report = sched.step().unwrap();
        assert!(report.events().len() <= 2, "more than 2 fed in one step");
        for e in report.events() {
            if !admitted.contains(&e.id) {
                admitted.push(e.id);
            }
        }
        assert!(sched.running().count() <= 2);
        for f in sched.take_finished() {
            finished.push((f.id, f.result.unwrap().tokens.len()));
        }
        steps += 1;
        assert!(steps < 100, "the scheduler does not finish");
    }
    let fifo: Vec<RequestId> = (0..5).map(RequestId).collect();
    assert_eq!(admitted, fifo, "admission is first in, first out");
    finished.sort();
    assert_eq!(
        finished,
        lens.iter()
            .enumerate()
            .map(|(k, &n)| (RequestId(k as u64), n))
            .collect::<Vec<_>>()
    );
}

fn check_finish_reasons(model: &mut dyn LanguageModel, tok: &TextTokenizer, prompt: &[u32]) {
    let eos = tok.eos_ids()[0];
    // EOS: forced as the third token.
    let mut r = request(prompt, sampled(tok), 1, 10);
    let (g, _) = generate(model, tok, vec![r.clone()], &mut |_, _| {}).unwrap();
    let free_run = g[0].clone();
    assert_eq!(free_run.finish_reason, FinishReason::Length);
    assert_eq!(free_run.tokens.len(), 10);
    r.pipeline = pipeline(vec![bias(&[(eos, 1e4)]), StageSpec::new("greedy", &[])]);
    let g = alone(model, tok, &r);
    assert_eq!(
        (g.finish_reason, g.tokens.as_slice(), g.text.as_str()),
        (FinishReason::Eos, &[eos][..], "")
    );
    // Stop: a piece of the free run's text, from its third character on.
    let text = &free_run.text;
    let at = text.char_indices().nth(3).map_or(0, |(i, _)| i);
    let stop: String = text[at..].chars().take(3).collect();
    assert!(!stop.is_empty(), "{text:?}");
    let mut r = request(prompt, sampled(tok), 1, 10);
    r.stop = vec![stop.clone()];
    let g = alone(model, tok, &r);
    assert_eq!(g.finish_reason, FinishReason::Stop, "{stop:?} in {text:?}");
    assert_eq!(g.text, text[..text.find(&stop).unwrap()]);
    assert!(free_run.tokens.starts_with(&g.tokens));
    // Length: both limits.
    let g = alone(model, tok, &request(prompt, sampled(tok), 1, 4));
    assert_eq!((g.finish_reason, g.tokens.len()), (FinishReason::Length, 4));
    assert_eq!(g.tokens, free_run.tokens[..4]);
    let g = alone(model, tok, &request(prompt, sampled(tok), 1, 0));
    assert_eq!((g.finish_reason, g.tokens.len()), (FinishReason::Length, 0));
}

fn tiny_model(name: &str) -> (adasamp_engine::candle_backend::CandleModel, TextTokenizer) {
    let dir = tiny::tmp(name);
    tiny::write_hf(&dir, "llama");
    let tok = tiny::word_tokenizer(&dir);
    let m =
        adasamp_engine::candle_backend::CandleModel::from_hf_dir(&dir, Default::default()).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    (m, tok)
}

fn tiny_prompts() -> Vec<Vec<u32>> {
    vec![vec![5, 9, 33, 2, 71, 40], vec![7, 3], vec![60, 61, 62, 63]]
}

#[test]
fn tiny_model_request_joining_mid_run_decodes_as_alone() {
    let (mut m, tok) = tiny_model("sched-join");
    check_joining_mid_run(&mut m, &tok, &tiny_prompts());
}

#[test]
fn tiny_model_cancel_frees_the_sequence_and_others_continue() {
    let (mut m, tok) = tiny_model("sched-cancel");
    check_cancel(&mut m, &tok, &tiny_prompts());
}

#[test]
fn tiny_model_cap_and_fifo_admission() {
    let (mut m, tok) = tiny_model("sched-cap");
    check_cap(&mut m, &tok, &tiny_prompts());
}

#[test]
fn tiny_model_finish_reasons() {
    let (mut m, tok) = tiny_model("sched-finish");
    check_finish_reasons(&mut m, &tok, &tiny_prompts()[0]);
}

#[test]
fn a_failing_sequence_ends_alone() {
    let (mut m, tok) = tiny_model("sched-fail");
    let prompts = tiny_prompts();
    let good = request(&prompts[0], sampled(&tok), 3, 6);
    let want = alone(&mut m, &tok, &good);
    // Every token removed: nothing can be drawn.
    let all: Vec<(u32, f64)> = (0..tiny::V as u32)
        .map(|t| (t, f64::NEG_INFINITY))
        .collect();
    let bad = request(&prompts[1], pipeline(vec![bias(&all)]), 3, 6);
    let mut sched = Scheduler::new(&mut m, &tok, usize::MAX);
    let g = sched.add(good).unwrap();
    let b = sched.add(bad).unwrap();
    let report = sched.step().unwrap();
    let ends: Vec<_> = report.events().iter().map(|e| (e.id, e.end)).collect();
    assert_eq!(ends, [(g, None), (b, Some(StepEnd::Failed))]);
    let failed: Vec<_> = sched.take_finished().collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].id, b);
    let err = failed[0].result.as_ref().unwrap_err().to_string();
    assert!(err.contains("test"), "the error names the pipeline: {err}");
    assert_eq!(sched.running().collect::<Vec<_>>(), [g]);
    while !sched.is_idle() {
        sched.step().unwrap();
    }
    let done: Vec<_> = sched.take_finished().collect();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].result.as_ref().unwrap().tokens, want.tokens);
    // `generate` reports the failure as its error.
    drop(sched);
    let bad = request(&prompts[1], pipeline(vec![bias(&all)]), 3, 6);
    assert!(generate(&mut m, &tok, vec![bad], &mut |_, _| {}).is_err());
}

/// What the observer saw of one sampled position.
struct Seen {
    id: RequestId,
    token: u32,
    raw: Vec<f32>,
    target: Vec<f32>,
    prob: f32,
}

#[test]
fn an_observer_sees_each_positions_raw_row_and_final_distribution() {
    let (mut m, tok) = tiny_model("sched-observe");
    let prompts = tiny_prompts();
    let reqs: Vec<GenerationRequest> = (0..2)
        .map(|k| request(&prompts[k], sampled(&tok), 20 + k as u64, 5 + k))
        .collect();
    let (want, _) = generate(&mut m, &tok, reqs.clone(), &mut |_, _| {}).unwrap();

    let mut seen: Vec<Seen> = Vec::new();
    let mut got: BTreeMap<RequestId, Generation> = BTreeMap::new();
    {
        let mut sched = Scheduler::new(&mut m, &tok, usize::MAX);
        for r in &reqs {
            sched.add(r.clone()).unwrap();
        }
        while !sched.is_idle() {
            let before = seen.len();
            let report = sched
                .step_observed(&mut |o| {
                    assert_eq!(o.sequence.generated().last(), Some(&o.token));
                    seen.push(Seen {
                        id: o.id,
                        token: o.token,
                        raw: o.logits.to_vec(),
                        target: o.distribution.row().to_dense(),
                        prob: o.distribution.prob(o.token),
                    });
                })
                .unwrap();
            // One observation per event, in feed order, with the event's token.
            let events: Vec<(RequestId, u32)> = report
                .events()
                .iter()
                .map(|e| (e.id, report.tokens(e)[0]))
                .collect();
            let observed: Vec<(RequestId, u32)> =
                seen[before..].iter().map(|s| (s.id, s.token)).collect();
            assert_eq!(events, observed);
            for f in sched.take_finished() {
                got.insert(f.id, f.result.unwrap());
            }
        }
    }
    // Observing changes nothing.
    let got: Vec<Generation> = got.into_values().collect();
    assert_eq!(got.len(), 2);
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.tokens, w.tokens, "request {k}: observed vs plain run");
    }
    for (k, r) in reqs.iter().enumerate() {
        let mine: Vec<&Seen> = seen.iter().filter(|s| s.id.0 == k as u64).collect();
        assert_eq!(
            mine.iter().map(|s| s.token).collect::<Vec<_>>(),
            want[k].tokens,
            "request {k}: every position observed once"
        );
        // The final distribution is the pipeline applied to the raw row with the history so
        // far: replaying the request's sampler on the observed raw rows draws the same tokens
        // from the same rows.
        let mut sampler = SequenceSampler::new(r.pipeline.clone(), r.seed, 0, 0);
        let mut history = r.prompt.clone();
        for s in &mine {
            assert_eq!(s.raw.len(), tiny::V);
            let x = sampler
                .sample(&s.raw, &Context::new(&history, r.prompt.len()), 0)
                .unwrap();
            assert_eq!(x.token, s.token);
            assert_eq!(sampler.last_row().to_dense(), s.target);
            assert!((x.prob - s.prob).abs() < 1e-6, "{} vs {}", x.prob, s.prob);
            // top-k 40 of 96 removed tokens: the final row is not the raw one.
            assert_eq!(s.target.iter().filter(|v| v.is_finite()).count(), 40);
            history.push(s.token);
        }
    }
    // The raw rows are the model's: a plain forward loop over request 0 gives the same rows.
    let seq = m.new_sequence().unwrap();
    let mut feed = reqs[0].prompt.clone();
    for s in seen.iter().filter(|s| s.id == RequestId(0)) {
        let out = m.forward(&[Feed::tokens(seq, &feed)]).unwrap();
        let diff = out
            .last_row(0)
            .iter()
            .zip(&s.raw)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-4, "raw row differs from the model's by {diff}");
        feed = vec![s.token];
    }
    m.free_sequence(seq);
}

#[test]
fn bad_requests_are_refused_at_add() {
    let (mut m, tok) = tiny_model("sched-bad");
    let mut sched = Scheduler::new(&mut m, &tok, usize::MAX);
    let p = sampled(&tok);
    assert!(sched.add(request(&[], p.clone(), 0, 3)).is_err());
    assert!(sched
        .add(request(&[tiny::V as u32], p.clone(), 0, 3))
        .is_err());
    assert!(sched.add(request(&vec![3; 10_000], p, 0, 3)).is_err());
    assert!(sched.is_idle());
    assert!(sched.step().unwrap().events().is_empty());
}

/// What a run of requests on one scheduler did: generations by request, and per step the
/// prompt tokens prefilled and found in the cache and the requests that got an event.
struct Run {
    generations: Vec<Generation>,
    prefilled: Vec<usize>,
    cached: Vec<usize>,
    events: Vec<Vec<RequestId>>,
}

/// Runs `batches` one after another on one scheduler with `options` (each batch is added when
/// the previous one has finished, so later batches can find earlier prompts in the cache).
fn run_batches(
    model: &mut dyn LanguageModel,
    tok: &TextTokenizer,
    cap: usize,
    options: SchedulerOptions,
    batches: &[Vec<GenerationRequest>],
) -> Run {
    let mut sched = Scheduler::with_options(model, tok, cap, options);
    let mut out: BTreeMap<RequestId, Generation> = BTreeMap::new();
    let mut run = Run {
        generations: Vec::new(),
        prefilled: Vec::new(),
        cached: Vec::new(),
        events: Vec::new(),
    };
    for batch in batches {
        for r in batch {
            sched.add(r.clone()).unwrap();
        }
        while !sched.is_idle() {
            let report = sched.step().unwrap();
            run.prefilled.push(report.prefill_tokens);
            run.cached.push(report.cached_tokens);
            run.events
                .push(report.events().iter().map(|e| e.id).collect());
            for f in sched.take_finished() {
                out.insert(f.id, f.result.unwrap());
            }
        }
        assert!(
            sched.cached_sequences() + sched.running().count() <= sched.model().max_sequences()
        );
    }
    run.generations = out.into_values().collect();
    run
}

/// The prefix cache: a prompt seen before is prefilled from its last two tokens only, one
/// sharing a prefix from just before where they differ, and every request generates what it generates on a
/// scheduler without the cache; more distinct prompts than model sequences evict the least
/// recently cached and leak nothing.
fn check_prefix_cache(model: &mut dyn LanguageModel, tok: &TextTokenizer, prompts: &[Vec<u32>]) {
    let req = |k: usize, seed: u64| request(&prompts[k], sampled(tok), seed, 8);
    // Alone, then again (whole prompt cached), then a prompt sharing a prefix with it.
    let mut shared = prompts[0].clone();
    shared.truncate(prompts[0].len() - 1);
    shared.push(prompts[1][0]);
    let batches = vec![
        vec![req(0, 1)],
        vec![req(0, 2)],
        vec![request(&shared, sampled(tok), 3, 8)],
        vec![req(1, 4), req(2, 5)],
    ];
    let plain = run_batches(
        model,
        tok,
        usize::MAX,
        SchedulerOptions::default(),
        &batches,
    );
    let cache = SchedulerOptions {
        prefix_cache: true,
        prefill_budget: None,
    };
    let cached = run_batches(model, tok, usize::MAX, cache, &batches);
    for (k, (a, b)) in cached
        .generations
        .iter()
        .zip(&plain.generations)
        .enumerate()
    {
        assert_eq!(
            a.tokens, b.tokens,
            "request {k}: with the prefix cache vs without"
        );
        assert_eq!(a.text, b.text, "request {k}");
    }
    let n0 = prompts[0].len();
    let total: usize = batches.iter().flatten().map(|r| r.prompt.len()).sum();
    assert_eq!(plain.prefilled.iter().sum::<usize>(), total);
    assert_eq!(plain.cached.iter().sum::<usize>(), 0);
    // Batches 1 and 2 feed two tokens: the prompt's last two, the shared part's last and the
    // token after it.
    let first_steps: Vec<usize> = {
        let mut at = 0;
        batches
            .iter()
            .map(|b| {
                let step = at;
                at += b.iter().map(|r| r.max_new_tokens).max().unwrap();
                step
            })
            .collect()
    };
    assert_eq!(cached.prefilled[first_steps[0]], n0);
    assert_eq!(cached.cached[first_steps[1]], n0 - 2);
    assert_eq!(cached.prefilled[first_steps[1]], 2);
    assert_eq!(cached.cached[first_steps[2]], n0 - 2);
    assert_eq!(cached.prefilled[first_steps[2]], 2);
    assert_eq!(
        cached.prefilled.iter().sum::<usize>() + cached.cached.iter().sum::<usize>(),
        total
    );

    // More distinct prompts than model sequences, one at a time: the cache evicts.
    let max = model.max_sequences();
    let many: Vec<Vec<GenerationRequest>> = (0..max + 3)
        .map(|k| {
            let mut p = prompts[k % prompts.len()].clone();
            p.insert(0, (k % tok.vocab_size()) as u32);
            vec![request(&p, sampled(tok), k as u64, 2)]
        })
        .collect();
    let seqs_before: Vec<bool> = (0..max).map(|s| model.sequence_len(s).is_ok()).collect();
    let run = run_batches(model, tok, 1, cache, &many);
    assert_eq!(run.generations.len(), max + 3);
    assert_eq!(
        (0..max)
            .map(|s| model.sequence_len(s).is_ok())
            .collect::<Vec<_>>(),
        seqs_before,
        "the scheduler's cached sequences are freed on drop"
    );
}

/// The prefill budget: no step prefills more than it, nor a single token of a longer prompt;
/// a running sequence decodes in every step while a long prompt is fed over several; every
/// request generates what it does without it.
fn check_prefill_budget(model: &mut dyn LanguageModel, tok: &TextTokenizer, prompts: &[Vec<u32>]) {
    let long: Vec<u32> = prompts.iter().flatten().copied().collect();
    let batches = vec![vec![
        request(&prompts[1], sampled(tok), 7, 40),
        request(&long, sampled(tok), 8, 4),
    ]];
    let plain = run_batches(
        model,
        tok,
        usize::MAX,
        SchedulerOptions::default(),
        &batches,
    );
    let budget = 3;
    let options = SchedulerOptions {
        prefix_cache: false,
        prefill_budget: Some(budget),
    };
    let chunked = run_batches(model, tok, usize::MAX, options, &batches);
    for (k, (a, b)) in chunked
        .generations
        .iter()
        .zip(&plain.generations)
        .enumerate()
    {
        assert_eq!(
            a.tokens, b.tokens,
            "request {k}: with a prefill budget vs without"
        );
    }
    assert!(chunked.prefilled.iter().all(|&n| n <= budget && n != 1));
    assert_eq!(
        chunked.prefilled.iter().sum::<usize>(),
        prompts[1].len() + long.len()
    );
    // Request 0 (first in line) decodes in every step from its first token to its last; request
    // 1's prompt is fed over several of those steps.
    let has = |step: &Vec<RequestId>, k: u64| step.contains(&RequestId(k));
    let first = chunked.events.iter().position(|e| has(e, 0)).unwrap();
    assert!(chunked.events[first..first + 40].iter().all(|e| has(e, 0)));
    let feeding_beside = (first..first + 40)
        .filter(|&s| chunked.prefilled[s] > 0 && !has(&chunked.events[s], 1))
        .count();
    assert!(feeding_beside >= 2, "{feeding_beside} steps");
}

#[test]
fn tiny_model_prefix_cache_changes_no_token() {
    let (mut m, tok) = tiny_model("sched-prefix");
    check_prefix_cache(&mut m, &tok, &tiny_prompts());
}

#[test]
fn tiny_model_prefill_budget_changes_no_token() {
    let (mut m, tok) = tiny_model("sched-budget");
    check_prefill_budget(&mut m, &tok, &tiny_prompts());
}

#[cfg(feature = "llama-cpp")]
mod default_model {
    use super::*;
    use adasamp_engine::BackendChoice;

    fn setup() -> Option<(adasamp_engine::LoadedModel, Vec<Vec<u32>>)> {
        let lm = common::default_model(BackendChoice::LlamaCpp, false)?;
        let prompts = [
            "Tell me a short fact about owls.",
            "Name three colours.",
            "Write one line of a poem about rain.",
        ]
        .iter()
        .map(|p| lm.prompt_tokens(p, None, false).unwrap())
        .collect();
        Some((lm, prompts))
    }

    #[test]
    fn llama_cpp_request_joining_mid_run_decodes_as_alone() {
        let Some((mut lm, prompts)) = setup() else {
            return;
        };
        check_joining_mid_run(lm.model.as_mut(), &lm.tokenizer, &prompts);
    }

    #[test]
    fn llama_cpp_cancel_frees_the_sequence_and_others_continue() {
        let Some((mut lm, prompts)) = setup() else {
            return;
        };
        check_cancel(lm.model.as_mut(), &lm.tokenizer, &prompts);
    }

    #[test]
    fn llama_cpp_prefix_cache_and_prefill_budget_change_no_token() {
        let Some((mut lm, prompts)) = setup() else {
            return;
        };
        check_prefix_cache(lm.model.as_mut(), &lm.tokenizer, &prompts);
        check_prefill_budget(lm.model.as_mut(), &lm.tokenizer, &prompts);
    }

    #[test]
    fn llama_cpp_cap_and_finish_reasons() {
        let Some((mut lm, prompts)) = setup() else {
            return;
        };
        check_cap(lm.model.as_mut(), &lm.tokenizer, &prompts);
        check_finish_reasons(lm.model.as_mut(), &lm.tokenizer, &prompts[0]);
    }
}

/// A model whose forward fails from the `fail_at`-th call on.
struct FailingModel {
    inner: adasamp_engine::candle_backend::CandleModel,
    calls: usize,
    fail_at: usize,
}

impl LanguageModel for FailingModel {
    fn info(&self) -> &adasamp_engine::ModelInfo {
        self.inner.info()
    }
    fn max_sequences(&self) -> usize {
        self.inner.max_sequences()
    }
    fn new_sequence(&mut self) -> adasamp_engine::Result<adasamp_engine::SeqId> {
        self.inner.new_sequence()
    }
    fn free_sequence(&mut self, seq: adasamp_engine::SeqId) {
        self.inner.free_sequence(seq)
    }
    fn sequence_len(&self, seq: adasamp_engine::SeqId) -> adasamp_engine::Result<usize> {
        self.inner.sequence_len(seq)
    }
    fn forward(
        &mut self,
        feeds: &[adasamp_engine::Feed<'_>],
    ) -> adasamp_engine::Result<adasamp_engine::ForwardOutput> {
        self.calls += 1;
        if self.calls >= self.fail_at {
            return Err(adasamp_engine::EngineError::BackendFailure {
                backend: adasamp_engine::Backend::Candle,
                reason: "device lost".into(),
            });
        }
        self.inner.forward(feeds)
    }
    fn truncate(&mut self, seq: adasamp_engine::SeqId, len: usize) -> adasamp_engine::Result<()> {
        self.inner.truncate(seq, len)
    }
    fn embedding_mixture(
        &self,
        probs: &[(u32, f32)],
        out: &mut [f32],
    ) -> adasamp_engine::Result<()> {
        self.inner.embedding_mixture(probs, out)
    }
}

#[test]
fn a_failed_forward_fails_the_step_and_frees_every_sequence() {
    let (inner, tok) = tiny_model("sched-forward-error");
    let mut m = FailingModel {
        inner,
        calls: 0,
        fail_at: 3,
    };
    let prompts = tiny_prompts();
    let mut sched = Scheduler::new(&mut m, &tok, 2);
    let ids: Vec<RequestId> = (0..3)
        .map(|k| {
            sched
                .add(request(&prompts[k], sampled(&tok), k as u64, 8))
                .unwrap()
        })
        .collect();
    sched.step().unwrap();
    sched.step().unwrap();
    let seqs: Vec<_> = ids[..2]
        .iter()
        .map(|&id| sched.model_sequence(id).unwrap())
        .collect();
    let err = sched.step().unwrap_err().to_string();
    assert!(err.contains("device lost"), "{err}");
    assert_eq!(sched.running().count(), 0);
    for &s in &seqs {
        assert!(
            sched.model().sequence_len(s).is_err(),
            "sequence {s} leaked"
        );
    }
    let ended: Vec<_> = sched.take_finished().collect();
    assert_eq!(
        ended.iter().map(|f| f.id).collect::<Vec<_>>(),
        ids[..2].to_vec()
    );
    assert!(ended.iter().all(|f| f.result.is_err()));
    assert_eq!(
        sched.waiting().collect::<Vec<_>>(),
        [ids[2]],
        "waiting requests stay queued"
    );
}

#[test]
fn dropping_the_scheduler_frees_its_sequences() {
    let (mut m, tok) = tiny_model("sched-drop");
    let prompts = tiny_prompts();
    let seqs = {
        let mut sched = Scheduler::new(&mut m, &tok, usize::MAX);
        let ids: Vec<RequestId> = (0..2)
            .map(|k| {
                sched
                    .add(request(&prompts[k], sampled(&tok), k as u64, 8))
                    .unwrap()
            })
            .collect();
        sched.step().unwrap();
        ids.iter()
            .map(|&id| sched.model_sequence(id).unwrap())
            .collect::<Vec<_>>()
    };
    for s in seqs {
        assert!(m.sequence_len(s).is_err(), "sequence {s} leaked");
    }
}
