//! Runs one benchmark chain on one row kind many times, for a profiler:
//! `cargo run --release -p adasamp-sampling --example profile -- top_p flat 200`.
use adasamp_sampling::bench::{chains, history, run_fast};
use adasamp_sampling::synth::{row, RowKind};
use adasamp_sampling::{Context, Row};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map_or("top_p", |s| s.as_str());
    let kind = match args.get(2).map_or("heavy-tailed", |s| s.as_str()) {
        "flat" => RowKind::Flat,
        "dominant" => RowKind::Dominant,
        "masked" => RowKind::Masked,
        _ => RowKind::HeavyTailed,
    };
    let iters: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(100);
    let chain = chains()
        .into_iter()
        .find(|c| c.name == name)
        .expect("known chain name");
    let rows: Vec<Vec<f32>> = (0..4).map(|s| row(kind, 128256, 100 + s)).collect();
    let hist = history(128256);
    let ctx = Context::new(&hist, hist.len() / 2);
    let mut p = chain.pipeline();
    let mut r = Row::new();
    let mut acc = 0u64;
    for i in 0..iters {
        p.reset();
        acc += run_fast(&mut p, &mut r, &rows[i % 4], &ctx, 0.37) as u64;
    }
    println!("{acc}");
}
