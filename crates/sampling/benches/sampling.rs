//! Criterion benchmarks of the headline sampling chains (each followed by the sampling step) at
//! V = 128256 on heavy-tailed rows, beside the straightforward full-sort implementation of the
//! same chain. `adasamp bench-sampling` prints the full table (every stage, more row kinds).

use adasamp_sampling::bench::{chains, history, run_fast, run_reference};
use adasamp_sampling::synth::{row, RowKind};
use adasamp_sampling::{Context, Row};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::hint::black_box;

fn headline(c: &mut Criterion) {
    let rows: Vec<Vec<f32>> = (0..4)
        .map(|s| row(RowKind::HeavyTailed, 128256, 100 + s))
        .collect();
    let hist = history(128256);
    let ctx = Context::new(&hist, hist.len() / 2);
    let mut group = c.benchmark_group("chain_v128256_heavy_tailed");
    for chain in chains().into_iter().take(3) {
        let mut p = chain.pipeline();
        let mut r = Row::new();
        let mut i = 0usize;
        group.bench_function(BenchmarkId::new("adasamp", &chain.name), |b| {
            b.iter(|| {
                i += 1;
                p.reset();
                black_box(run_fast(&mut p, &mut r, &rows[i % 4], &ctx, 0.37))
            })
        });
        let mut buf = Vec::new();
        group.bench_function(BenchmarkId::new("full_sort", &chain.name), |b| {
            b.iter(|| {
                i += 1;
                black_box(run_reference(&chain.stages, &rows[i % 4], &mut buf, 0.37))
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = headline
}
criterion_main!(benches);
