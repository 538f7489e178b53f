//! Times the row kernels one by one at V = 128256, cycling over 4 rows like the benchmark does
//! (for finding hot spots: `cargo run --release -p adasamp-sampling --example kernels`).
use adasamp_sampling::bench::time_us;
use adasamp_sampling::synth::{row, RowKind};
use adasamp_sampling::{math, Row};
use std::hint::black_box;
use std::time::Duration;

fn main() {
    let rows: Vec<Vec<f32>> = (0..4)
        .map(|s| row(RowKind::HeavyTailed, 128256, 100 + s))
        .collect();
    let b = Duration::from_millis(300);
    let mut i = 0;
    let mut next = || {
        i += 1;
        &rows[i % 4]
    };
    let mut r = Row::new();
    println!(
        "max           {:6.1} µs",
        time_us(
            || {
                black_box(math::max(next()));
            },
            b
        )
    );
    println!(
        "sum_exp       {:6.1} µs",
        time_us(
            || {
                black_box(math::sum_exp(next(), 10.0));
            },
            b
        )
    );
    println!(
        "count_ge      {:6.1} µs",
        time_us(
            || {
                black_box(math::count_ge(next(), 3.0));
            },
            b
        )
    );
    println!(
        "row.load      {:6.1} µs",
        time_us(
            || {
                r.load(next(), 0).unwrap();
            },
            b
        )
    );
    println!(
        "+ exp         {:6.1} µs",
        time_us(
            || {
                r.load(next(), 0).unwrap();
                black_box(r.exp_scratch());
            },
            b
        )
    );
    println!(
        "+ kth(40)     {:6.1} µs",
        time_us(
            || {
                r.load(next(), 0).unwrap();
                black_box(r.kth_largest(40));
            },
            b
        )
    );
    println!(
        "+ kth+retain  {:6.1} µs",
        time_us(
            || {
                r.load(next(), 0).unwrap();
                let t = r.kth_largest(40);
                r.retain_ge(t);
            },
            b
        )
    );
    println!(
        "+ mass(0.95)  {:6.1} µs",
        time_us(
            || {
                r.load(next(), 0).unwrap();
                black_box(r.mass_threshold(0.95));
            },
            b
        )
    );
    println!(
        "+ draw        {:6.1} µs",
        time_us(
            || {
                r.load(next(), 0).unwrap();
                let _ = black_box(adasamp_sampling::draw(&mut r, 0.5, 0));
            },
            b
        )
    );
}
