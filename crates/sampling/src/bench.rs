//! Benchmark definitions shared by the criterion benches and `adasamp bench-sampling`: the chains
//! measured, the fast path and the full-sort baseline for each, and a timer.

use std::time::{Duration, Instant};

use crate::pipeline::Pipeline;
use crate::reference;
use crate::row::Row;
use crate::sample::draw;
use crate::spec::{PipelineSpec, StageSpec};
use crate::stage::Context;
use crate::synth::{self, RowKind};

/// One benchmarked chain (always followed by sampling).
#[derive(Debug, Clone)]
pub struct BenchChain {
    /// Display name.
    pub name: String,
    /// The stages.
    pub stages: Vec<StageSpec>,
    /// Target time per row at V = 128256, in µs, where the project sets one.
    pub target_us: Option<f64>,
}

impl BenchChain {
    fn new(name: &str, stages: Vec<StageSpec>, target_us: Option<f64>) -> Self {
        Self {
            name: name.to_string(),
            stages,
            target_us,
        }
    }

    /// The chain as a pipeline.
    pub fn pipeline(&self) -> Pipeline {
        Pipeline::from_spec(PipelineSpec {
            name: self.name.clone(),
            weight: 1.0,
            processors: self.stages.clone(),
        })
        .expect("bench chains are valid")
    }

    /// Whether the full-sort reference implements every stage of the chain.
    pub fn has_reference(&self) -> bool {
        let mut z = [0.0f32; 2];
        self.stages
            .iter()
            .all(|s| reference::apply_stage(s, &mut z))
    }
}

fn s(name: &str, params: &[(&str, f64)]) -> StageSpec {
    StageSpec::new(name, params)
}

/// The three headline chains, then every stage alone.
pub fn chains() -> Vec<BenchChain> {
    let mut out = vec![
        BenchChain::new(
            "temperature → top_p(0.95)",
            vec![
                s("temperature", &[("temperature", 0.8)]),
                s("top_p", &[("top_p", 0.95)]),
            ],
            Some(200.0),
        ),
        BenchChain::new(
            "min_p(0.05)",
            vec![s("min_p", &[("min_p", 0.05)])],
            Some(60.0),
        ),
        BenchChain::new(
            "top_k(40) → top_p(0.95) → min_p(0.05) → temperature(0.8)",
            vec![
                s("top_k", &[("top_k", 40.0)]),
                s("top_p", &[("top_p", 0.95)]),
                s("min_p", &[("min_p", 0.05)]),
                s("temperature", &[("temperature", 0.8)]),
            ],
            Some(80.0),
        ),
    ];
    let singles: Vec<StageSpec> = vec![
        s("temperature", &[("temperature", 0.8)]),
        s("top_k", &[("top_k", 40.0)]),
        s("top_p", &[("top_p", 0.95)]),
        s("typical", &[("mass", 0.9)]),
        s("epsilon", &[("epsilon", 3e-4)]),
        s("eta", &[("epsilon", 1e-3)]),
        s("top_a", &[("top_a", 0.2)]),
        s("top_n_sigma", &[("n", 1.0)]),
        s("xtc", &[("threshold", 0.1), ("probability", 1.0)]),
        s("dynamic_temperature", &[("temp", 0.8), ("range", 0.5)]),
        s("mirostat_v1", &[("tau", 5.0)]),
        s("mirostat_v2", &[("tau", 5.0)]),
        s("repetition_penalty", &[("penalty", 1.1)]),
        s("frequency_penalty", &[("penalty", 0.5)]),
        s("presence_penalty", &[("penalty", 0.5)]),
        s("dry", &[("multiplier", 0.8)]),
        s("logit_bias", &[]).with(
            "bias",
            serde_yaml_ng::from_str("{1: 2.0, 50: -100.0}").expect("literal"),
        ),
        s("no_repeat_ngram", &[("n", 3.0)]),
        s("min_tokens", &[("min_tokens", 1000.0)]).with(
            "eos_ids",
            serde_yaml_ng::from_str("[0, 2]").expect("literal"),
        ),
        s("greedy", &[]),
    ];
    out.extend(
        singles
            .into_iter()
            .map(|st| BenchChain::new(&st.name.clone(), vec![st], Some(250.0))),
    );
    out
}

/// A token history for penalty-type stages: 512 tokens with repeats.
pub fn history(vocab: usize) -> Vec<u32> {
    (0..512u64)
        .map(|i| ((i * 2654435761) % 97 * 13 % vocab as u64) as u32)
        .collect()
}

/// The fast path: apply the pipeline to `z` and draw with `u`.
pub fn run_fast(p: &mut Pipeline, row: &mut Row, z: &[f32], ctx: &Context<'_>, u: f64) -> u32 {
    row.load(z, 0).expect("bench rows are valid");
    p.apply(row, ctx).expect("bench chains apply");
    draw(row, u, 0).map_or(0, |s| s.token)
}

/// The full-sort baseline: copy, apply each stage the straightforward way, full-softmax sample.
pub fn run_reference(stages: &[StageSpec], z: &[f32], buf: &mut Vec<f32>, u: f64) -> usize {
    buf.clear();
    buf.extend_from_slice(z);
    for s in stages {
        reference::apply_stage(s, buf);
    }
    reference::sample(buf, u)
}

/// On-CPU time of the calling thread so far (Linux `/proc/thread-self/schedstat`, ns), `None`
/// where unavailable.
pub fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Like [`time_us`], also returning the on-CPU time of one call in µs (the best of 5 batch
/// means of [`thread_cpu_ns`]; `None` where unavailable): on a loaded machine the wall time
/// includes the time the thread waited for a core, the CPU time does not.
pub fn time_cpu_us(mut f: impl FnMut(), budget: Duration) -> (f64, Option<f64>) {
    f();
    let per_batch = budget / 5;
    let (mut wall, mut cpu) = (f64::INFINITY, None::<f64>);
    for _ in 0..5 {
        let start = Instant::now();
        let c0 = thread_cpu_ns();
        let mut n = 0u32;
        while start.elapsed() < per_batch || n == 0 {
            f();
            n += 1;
        }
        wall = wall.min(start.elapsed().as_secs_f64() * 1e6 / n as f64);
        if let (Some(a), Some(b)) = (c0, thread_cpu_ns()) {
            let us = b.saturating_sub(a) as f64 / 1e3 / n as f64;
            cpu = Some(cpu.map_or(us, |c| c.min(us)));
        }
    }
    (wall, cpu)
}

/// Time of one call of `f` in µs: the best of 5 batch means, each batch running at least
/// `budget / 5` (the minimum is the most reproducible figure on a shared machine).
pub fn time_us(mut f: impl FnMut(), budget: Duration) -> f64 {
    f();
    let per_batch = budget / 5;
    let mut results = Vec::with_capacity(5);
    for _ in 0..5 {
        let start = Instant::now();
        let mut n = 0u32;
        while start.elapsed() < per_batch || n == 0 {
            f();
            n += 1;
        }
        results.push(start.elapsed().as_secs_f64() * 1e6 / n as f64);
    }
    results.into_iter().fold(f64::INFINITY, f64::min)
}

/// A (θ, teacher) pair of synthetic logits rows for optimal sampling, related as two models'
/// rows are: θ a synthetic row (heavy-tailed, flat or one dominant token by `seed`), the
/// teacher θ's logits scaled by 0.6–1.0 plus heavy-tailed noise of its own.
pub fn optimal_pair(vocab: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let kind = [RowKind::HeavyTailed, RowKind::Flat, RowKind::Dominant][(seed % 3) as usize];
    let theta = synth::row(kind, vocab, 10 + seed);
    let noise = synth::row(RowKind::HeavyTailed, vocab, 500 + seed);
    let scale = 0.6 + 0.1 * (seed % 5) as f32;
    let amount = (1.0 + (seed % 4) as f32) / 4.0;
    let teacher = theta
        .iter()
        .zip(&noise)
        .map(|(a, b)| scale * a + amount * b)
        .collect();
    (theta, teacher)
}
