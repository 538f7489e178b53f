//! The sampler's split steps (distribution → draw → accept) against `sample`, snapshot/restore
//! of its state, and pipelines nested as stages.

mod common;
use common::*;

use adasamp_sampling::stages::STAGES;
use adasamp_sampling::synth::{row, RowKind};
use adasamp_sampling::{
    Context, Pipeline, PipelineSet, Sample, SamplingError, SequenceSampler, StageSpec,
};

const VOCAB: usize = 300;

/// The logits row of step `i`: synthetic rows of every kind in turn.
fn row_at(i: usize) -> Vec<f32> {
    row(RowKind::ALL[i % 4], VOCAB, 1000 + i as u64)
}

/// Runs `steps` tokens with `sample`, starting from `history` (prompt of `prompt_len` tokens),
/// appending each token; returns the samples.
fn run_sample(
    s: &mut SequenceSampler,
    history: &mut Vec<u32>,
    prompt_len: usize,
    from: usize,
    steps: usize,
) -> Vec<Sample> {
    (from..from + steps)
        .map(|i| {
            let out = s
                .sample(&row_at(i), &Context::new(history, prompt_len), i)
                .unwrap();
            history.push(out.token);
            out
        })
        .collect()
}

/// A pipeline holding the stage `spec` and, for truncations, a temperature before it so rows
/// differ in shape from step to step.
fn with_stage(spec: &StageSpec) -> Pipeline {
    from_specs(vec![
        StageSpec::new("temperature", &[("temperature", 1.2)]),
        spec.clone(),
    ])
}

#[test]
fn the_stage_list_covers_every_builtin_stage() {
    let listed: Vec<String> = every_stage().into_iter().map(|s| s.name).collect();
    for (name, _) in STAGES {
        assert!(listed.iter().any(|n| n == name), "{name} not tested");
    }
    // A built stage answers to the name it was built from.
    let p = from_specs(every_stage());
    for (stage, spec) in p.stages().iter().zip(every_stage()) {
        assert_eq!(stage.name(), spec.name);
    }
}

#[test]
fn distribution_draw_accept_equals_sample_for_every_stage() {
    for spec in every_stage() {
        let p = with_stage(&spec);
        let mut whole = SequenceSampler::new(p.clone(), 11, 2, 5);
        let mut split = SequenceSampler::new(p, 11, 2, 5);
        let prompt: Vec<u32> = vec![3, 1, 4, 1, 5, 9, 2, 6];
        let mut history = prompt.clone();
        for i in 0..60 {
            let z = row_at(i);
            let ctx = Context::new(&history, prompt.len());
            let a = whole.sample(&z, &ctx, i).unwrap();
            let d = split.distribution(&z, &ctx, i).unwrap();
            // The distribution reports the same numbers as the sample drawn from it.
            let (p_tok, total) = (
                d.prob(a.token),
                d.iter().map(|t| t.prob as f64).sum::<f64>(),
            );
            assert!((total - 1.0).abs() < 1e-4, "{}: sum {total}", spec.name);
            let b = split.draw().unwrap();
            split.accept(b.token);
            assert_eq!(a, b, "{} step {i}", spec.name);
            assert_eq!(p_tok, a.prob, "{} step {i}", spec.name);
            for t in &a.top {
                assert_eq!(split.current().unwrap().prob(t.id), t.prob);
            }
            history.push(a.token);
        }
        assert_eq!(whole.snapshot(), split.snapshot(), "{}", spec.name);
    }
}

#[test]
fn draw_with_a_given_uniform_and_the_free_draw_agree() {
    let mut s = SequenceSampler::new(pipeline("[{name: top_p, params: {top_p: 0.9}}]"), 5, 0, 3);
    let z = row_at(0);
    s.distribution(&z, &Context::default(), 0).unwrap();
    let mut r = adasamp_sampling::Row::new();
    r.load(&z, 0).unwrap();
    let mut p = pipeline("[{name: top_p, params: {top_p: 0.9}}]");
    p.apply(&mut r, &Context::default()).unwrap();
    for u in [0.0, 0.1, 0.5, 0.9, 0.999_999] {
        assert_eq!(
            s.draw_with(u).unwrap(),
            adasamp_sampling::draw(&mut r, u, 3).unwrap()
        );
    }
    // Drawing before any distribution, or after a restore, is an error.
    let mut fresh = SequenceSampler::new(pipeline("[{name: greedy}]"), 5, 0, 0);
    assert_eq!(fresh.draw().unwrap_err(), SamplingError::NoDistribution);
    let st = s.snapshot();
    s.restore(&st).unwrap();
    assert_eq!(s.draw_with(0.5).unwrap_err(), SamplingError::NoDistribution);
}

#[test]
fn computing_a_distribution_again_does_not_advance_state() {
    // XTC decides with its own RNG; mirostat reads μ: neither moves before `accept`.
    let p = pipeline(
        "[{name: xtc, params: {threshold: 0.05, probability: 0.5}}, {name: mirostat_v2, params: {tau: 3}}]",
    );
    let mut s = SequenceSampler::new(p, 1, 0, 0);
    let mut history = vec![1u32, 2];
    for i in 0..30 {
        let z = row_at(i);
        let ctx = Context::new(&history, 2);
        let first = s.distribution(&z, &ctx, i).unwrap().row().to_dense();
        let state = s.snapshot();
        let again = s.distribution(&z, &ctx, i).unwrap().row().to_dense();
        assert_eq!(first, again, "step {i}");
        assert_eq!(state, s.snapshot());
        let t = s.draw().unwrap().token;
        s.accept(t);
        history.push(t);
    }
}

/// Pipelines with each stateful stage (and all of them, nested).
fn stateful_pipelines() -> Vec<Pipeline> {
    [
        "[{name: mirostat_v1, params: {tau: 3, eta: 0.5}}]",
        "[{name: mirostat_v2, params: {tau: 3, eta: 0.5}}]",
        "[{name: xtc, params: {threshold: 0.05, probability: 0.5, seed: 4}}, {name: temperature, params: {temperature: 1.5}}]",
        "[{name: repetition_penalty, params: {penalty: 1.5}}, {name: dry, params: {multiplier: 2}}, {name: top_k, params: {top_k: 20}}]",
        "[{name: top_k, params: {top_k: 50}}, {name: pipeline, params: {processors: [{name: xtc, params: {threshold: 0.05, probability: 0.7}}, {name: pipeline, params: {processors: [{name: mirostat_v1, params: {tau: 2.5}}]}}]}}, {name: mirostat_v2, params: {tau: 4}}]",
    ]
    .iter()
    .map(|y| pipeline(y))
    .collect()
}

#[test]
fn snapshot_then_restore_replays_the_same_tokens() {
    for p in stateful_pipelines() {
        let name = format!("{:?}", p.spec().processors);
        let mut s = SequenceSampler::new(p, 21, 0, 4);
        let mut history = vec![7u32, 8, 9];
        run_sample(&mut s, &mut history, 3, 0, 5);
        let state = s.snapshot();
        let mark = history.len();
        let first = run_sample(&mut s, &mut history, 3, 5, 25);
        // Going on without restoring gives other tokens: the replay below is a real check.
        let mut h2 = history.clone();
        let onward = run_sample(&mut s.clone(), &mut h2, 3, 5, 25);
        assert_ne!(first, onward, "{name}");
        history.truncate(mark);
        s.restore(&state).unwrap();
        let replay = run_sample(&mut s, &mut history, 3, 5, 25);
        assert_eq!(first, replay, "{name}");
    }
}

#[test]
fn restore_with_a_mid_step_rollback() {
    // Speculative-decoding shape: distribution, accept/reject test with the sequence's own
    // uniform, accept; roll back after a "rejection" and redo — identical outcome.
    let p = pipeline("[{name: xtc, params: {threshold: 0.05, probability: 0.5}}, {name: mirostat_v2, params: {tau: 3}}]");
    let mut s = SequenceSampler::new(p, 8, 0, 0);
    let mut trace = Vec::new();
    let state = s.snapshot();
    for round in 0..2 {
        let mut history = vec![1u32];
        let mut out = Vec::new();
        for i in 0..10 {
            let d = s
                .distribution(&row_at(i), &Context::new(&history, 1), i)
                .unwrap();
            let p_draft = d.prob((i * 7 % VOCAB) as u32);
            let u = s.next_uniform();
            let t = if (u as f32) < p_draft {
                (i * 7 % VOCAB) as u32
            } else {
                s.draw().unwrap().token
            };
            s.accept(t);
            history.push(t);
            out.push(t);
        }
        trace.push(out);
        if round == 0 {
            s.restore(&state).unwrap();
        }
    }
    assert_eq!(trace[0], trace[1]);
}

#[test]
fn a_state_from_another_pipeline_is_refused_and_changes_nothing() {
    let a = pipeline("[{name: mirostat_v2, params: {tau: 3}}, {name: xtc}]");
    let b = pipeline("[{name: xtc}, {name: mirostat_v2, params: {tau: 3}}]");
    let c = pipeline("[{name: mirostat_v2, params: {tau: 3}}]");
    let mut sa = SequenceSampler::new(a, 1, 0, 0);
    let mut h = vec![1u32];
    run_sample(&mut sa, &mut h, 1, 0, 4);
    let before = sa.snapshot();
    let sb = SequenceSampler::new(b, 1, 0, 0);
    let e = sa.restore(&sb.snapshot()).unwrap_err();
    assert!(matches!(e, SamplingError::StateMismatch { .. }), "{e}");
    assert_eq!(sa.snapshot(), before);
    let sc = SequenceSampler::new(c, 1, 0, 0);
    assert!(sa.restore(&sc.snapshot()).is_err());
    assert_eq!(sa.snapshot(), before);
    // The first stage's state fits (and differs), the second does not: all or nothing.
    let d = pipeline("[{name: mirostat_v2, params: {tau: 9}}, {name: mirostat_v2}]");
    let sd = SequenceSampler::new(d, 1, 0, 0);
    assert!(sa.restore(&sd.snapshot()).is_err());
    assert_eq!(sa.snapshot(), before);
}

#[test]
fn a_nested_pipeline_acts_as_its_stages_inline() {
    let flat = pipeline("[{name: top_k, params: {top_k: 40}}, {name: mirostat_v2, params: {tau: 3}}, {name: xtc, params: {threshold: 0.05}}, {name: temperature, params: {temperature: 0.8}}]");
    let nested = pipeline("[{name: top_k, params: {top_k: 40}}, {name: pipeline, params: {processors: [{name: mirostat_v2, params: {tau: 3}}, {name: xtc, params: {threshold: 0.05}}]}}, {name: temperature, params: {temperature: 0.8}}]");
    let mut a = SequenceSampler::new(flat, 3, 0, 2);
    let mut b = SequenceSampler::new(nested, 3, 0, 2);
    let (mut ha, mut hb) = (vec![0u32], vec![0u32]);
    assert_eq!(
        run_sample(&mut a, &mut ha, 1, 0, 40),
        run_sample(&mut b, &mut hb, 1, 0, 40)
    );
}

#[test]
fn nested_pipelines_round_trip_through_yaml_and_name_their_errors() {
    let text = "pipelines:\n  - name: outer\n    processors:\n      - {name: pipeline, params: {processors: [{name: top_k, params: {top_k: 5}}, {name: min_p, params: {min_p: 0.1}}]}}\n      - {name: temperature, params: {temperature: 0.7}}\n";
    let set = PipelineSet::from_yaml(text, None).unwrap();
    let again = PipelineSet::from_yaml(&set.to_yaml(), None).unwrap();
    assert_eq!(set.to_file(), again.to_file());
    let e = build_error("[{name: top_k, params: {top_k: 3}}, {name: pipeline, params: {processors: [{name: top_p, params: {top_p: 3}}]}}]");
    assert!(
        e.contains("mypipe[1]") && e.contains("top_p") && e.contains('3'),
        "{e}"
    );
    let e = build_error("[{name: pipeline, params: {processors: 3}}]");
    assert!(e.contains("processors"), "{e}");
    // Nesting is bounded.
    let mut inner = "[{name: greedy}]".to_string();
    for _ in 0..12 {
        inner = format!("[{{name: pipeline, params: {{processors: {inner}}}}}]");
    }
    assert!(build_error(&inner).contains("nest at most"));
}

#[test]
fn relative_paths_of_external_stages_resolve_inside_nested_pipelines() {
    use adasamp_sampling::stages::{register_external, ExternalStage};
    // A stage that refuses to build, quoting the path it was given (the builder type fixes the
    // error type).
    #[allow(clippy::result_large_err)]
    fn build(
        spec: &StageSpec,
        pipeline: &str,
        _: usize,
    ) -> adasamp_sampling::Result<Box<dyn adasamp_sampling::Stage>> {
        Err(SamplingError::StageFailed {
            pipeline: pipeline.to_string(),
            stage: "path_probe".into(),
            message: format!("file = {:?}", spec.params.get("file")),
        })
    }
    assert!(register_external(ExternalStage {
        name: "path_probe",
        params_help: "file",
        path_params: &["file"],
        build,
    }));
    let dir = std::env::temp_dir().join(format!("adasamp-nested-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("p.yaml");
    std::fs::write(
        &file,
        "pipelines:\n  - name: a\n    processors:\n      - {name: pipeline, params: {processors: [{name: path_probe, params: {file: w.bin}}]}}\n",
    )
    .unwrap();
    let e = PipelineSet::from_path(&file).unwrap_err().to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    let want = dir.join("w.bin").display().to_string();
    assert!(e.contains(&want) && e.contains("a[0]"), "{e}");
}

#[test]
fn the_steps_compose_into_speculative_sampling_that_follows_the_target() {
    // Draft token x ~ q; accept it with probability min(1, p(x)/q(x)) (the sequence's own
    // uniform); else draw from the residual max(0, p − q) (a row of its logs, free `draw`), then
    // accept into the target sampler. The tokens must follow the target distribution p.
    let target_row = [1.0f32, 2.5, 0.3, 2.0, -1.0];
    let draft_row = [2.0f32, 0.5, 1.0, 2.2, 0.0];
    let mut target = SequenceSampler::new(
        pipeline(
            "[{name: top_k, params: {top_k: 4}}, {name: temperature, params: {temperature: 0.9}}]",
        ),
        17,
        0,
        0,
    );
    let mut draft = SequenceSampler::new(pipeline("[]"), 18, 0, 0);
    let n = 40_000;
    let mut counts = [0usize; 5];
    let mut p = [0f32; 5];
    let mut q = [0f32; 5];
    for i in 0..n {
        draft
            .distribution(&draft_row, &Context::default(), i)
            .unwrap()
            .write_probs(&mut q);
        let x = draft.draw().unwrap().token;
        draft.accept(x);
        target
            .distribution(&target_row, &Context::default(), i)
            .unwrap()
            .write_probs(&mut p);
        let u = target.next_uniform();
        let t = if u * (q[x as usize] as f64) < p[x as usize] as f64 {
            x
        } else {
            let residual: Vec<f32> = p
                .iter()
                .zip(&q)
                .map(|(a, b)| (a - b).max(0.0).ln())
                .collect();
            let mut row = adasamp_sampling::Row::new();
            row.load(&residual, i).unwrap();
            adasamp_sampling::draw(&mut row, target.next_uniform(), 0)
                .unwrap()
                .token
        };
        target.accept(t);
        counts[t as usize] += 1;
    }
    assert_eq!(counts[4], 0, "top_k removed token 4");
    for (c, &pt) in counts.iter().zip(&p) {
        let (e, sd) = (
            n as f64 * pt as f64,
            (n as f64 * pt as f64 * (1.0 - pt as f64)).sqrt(),
        );
        assert!(
            (*c as f64 - e).abs() <= 5.0 * sd + 1.0,
            "{counts:?} vs p = {p:?}"
        );
    }
}
