//! `adasamp bench-alpha`: time per row of optimal sampling's α (each method) on one thread, and
//! of a whole mixing step (α, diagnostics, the q* row), beside the seed's plain 12-step
//! bisection (f64, one full pass per step) measured in the same run; both checked by
//! substitution (the largest `|Δ(α)|`, computed in f64, over the rows whose residual changes
//! sign on [0, 1]). Times are wall-clock and, where Linux reports it, on-CPU time of the
//! thread (on a loaded machine the wall time includes waiting for a core).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use adasamp_sampling::bench::{optimal_pair, time_cpu_us};
use adasamp_sampling::optimal::reference::Pair;
use adasamp_sampling::optimal::{AlphaMethod, MixOptions, Mixer};
use anyhow::Result;
use clap::Args;

/// Options of `bench-alpha`.
#[derive(Debug, Args)]
pub struct BenchAlphaArgs {
    /// Vocabulary sizes of the synthetic row pairs (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "49152,128256")]
    pub vocab: Vec<usize>,
    /// Methods to run (comma-separated; default all).
    #[arg(long, value_delimiter = ',')]
    pub methods: Vec<String>,
    /// Row pairs per vocabulary size (heavy-tailed, flat and dominant θ rows in turn).
    #[arg(long, default_value_t = 9)]
    pub rows: u64,
    /// Measuring time per cell, in milliseconds.
    #[arg(long, default_value_t = 300)]
    pub millis: u64,
    /// Steps of the bisection baseline.
    #[arg(long, default_value_t = 12)]
    pub bisection_steps: usize,
    /// Write the table (markdown) to this file as well.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// The target per row at V = 49152, in µs.
const TARGET_US: f64 = 1000.0;

/// Runs the benchmark and prints the table.
pub fn run(a: &BenchAlphaArgs) -> Result<()> {
    let methods: Vec<AlphaMethod> = if a.methods.is_empty() {
        AlphaMethod::ALL.to_vec()
    } else {
        a.methods
            .iter()
            .map(|m| AlphaMethod::parse(m))
            .collect::<Result<_, _>>()?
    };
    if a.rows == 0 {
        anyhow::bail!("--rows 0: at least one row pair is needed");
    }
    let budget = Duration::from_millis(a.millis);
    let mut table = String::new();
    writeln!(
        table,
        "| method | V | α µs/row (CPU) | step µs/row (CPU; α + diagnostics + q*) | passes (mean) | max abs Δ | {}-step bisection µs/row (CPU) | its max abs Δ | speed-up (α, CPU) | rows with a root | target µs |",
        a.bisection_steps
    )?;
    writeln!(
        table,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )?;
    print!("{table}");
    for &v in &a.vocab {
        if v < 2 {
            anyhow::bail!("--vocab {v}: at least 2 tokens");
        }
        let pairs: Vec<(Vec<f32>, Vec<f32>)> = (0..a.rows).map(|s| optimal_pair(v, s)).collect();
        let refs: Vec<Pair> = pairs.iter().map(|(t, s)| Pair::new(t, s, None)).collect();
        for &method in &methods {
            let opts = MixOptions {
                method,
                ..MixOptions::default()
            };
            let mut mixer = Mixer::new(opts.clone())?;
            // Accuracy, checked by substitution in f64, and the passes each row took.
            let (mut max_fast, mut max_bisect, mut passes, mut roots) = (0.0f64, 0.0f64, 0, 0);
            for (r, ((theta, teacher), pair)) in pairs.iter().zip(&refs).enumerate() {
                let s = mixer.alpha(theta, teacher, r)?;
                passes += s.passes;
                let (g0, g1) = (pair.residual(method, 0.0), pair.residual(method, 1.0));
                if method.is_root() && g0.signum() == g1.signum() {
                    continue;
                }
                roots += 1;
                max_fast = max_fast.max(pair.residual(method, s.alpha).abs());
                let b = pair.bisect(method, opts.alpha, 0.0, 1.0, a.bisection_steps);
                max_bisect = max_bisect.max(pair.residual(method, b).abs());
            }
            let mut i = 0usize;
            let alpha_us = time_cpu_us(
                || {
                    let (t, s) = &pairs[i % pairs.len()];
                    i += 1;
                    std::hint::black_box(mixer.alpha(t, s, 0).map(|s| s.alpha).unwrap_or(0.0));
                },
                budget,
            );
            let mut out = Vec::new();
            let step_us = time_cpu_us(
                || {
                    let (t, s) = &pairs[i % pairs.len()];
                    i += 1;
                    let r = mixer.mix(t, s, 0, false, &mut out);
                    std::hint::black_box(r.map(|s| s.alpha).unwrap_or(0.0));
                },
                budget,
            );
            let bisect_us = time_cpu_us(
                || {
                    let (t, s) = &pairs[i % pairs.len()];
                    i += 1;
                    let pair = Pair::new(t, s, None);
                    std::hint::black_box(pair.bisect(method, 0.5, 0.0, 1.0, a.bisection_steps));
                },
                budget,
            );
            let target = if v == 49152 {
                format!("{TARGET_US:.0}")
            } else {
                "–".into()
            };
            let cell = |(wall, cpu): (f64, Option<f64>)| match cpu {
                Some(c) => format!("{wall:.0} ({c:.0})"),
                None => format!("{wall:.0}"),
            };
            let ratio = match (bisect_us.1, alpha_us.1) {
                (Some(b), Some(f)) => b / f,
                _ => bisect_us.0 / alpha_us.0,
            };
            let line = format!(
                "| {method} | {v} | {} | {} | {:.1} | {max_fast:.1e} | {} | {max_bisect:.1e} | {ratio:.1}× | {roots}/{} | {target} |",
                cell(alpha_us),
                cell(step_us),
                passes as f64 / pairs.len() as f64,
                cell(bisect_us),
                pairs.len(),
            );
            println!("{line}");
            writeln!(table, "{line}")?;
        }
    }
    if let Some(out) = &a.output {
        adasamp_engine::files::write_atomic(out, table.as_bytes())?;
    }
    Ok(())
}
