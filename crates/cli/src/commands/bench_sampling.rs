//! `adasamp bench-sampling`: per-row time of every chain (including the final sampling step)
//! against a full-sort implementation of the same chain, measured in the same run.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use adasamp_sampling::bench::{chains, history, run_fast, run_reference, time_us};
use adasamp_sampling::synth::{self, RowKind};
use adasamp_sampling::{Context, Row};
use anyhow::Result;
use clap::Args;

/// Options of `bench-sampling`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Vocabulary size of the synthetic rows.
    #[arg(long, default_value_t = 128256)]
    pub vocab: usize,
    /// Row kinds to run: heavy-tailed, flat, dominant, masked (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "heavy-tailed,flat")]
    pub rows: Vec<String>,
    /// Also time rows of real logits from a safetensors file (tensor `logits`, F32 [N, V]).
    #[arg(long, value_name = "FILE")]
    pub real: Option<PathBuf>,
    /// Measuring time per cell, in milliseconds.
    #[arg(long, default_value_t = 300)]
    pub millis: u64,
    /// Only chains whose name contains this text (`=NAME`: exactly this name).
    #[arg(long)]
    pub filter: Option<String>,
    /// Skip the full-sort baseline (faster; for profiling).
    #[arg(long)]
    pub no_baseline: bool,
    /// Write the table (markdown) to this file as well.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

fn kind(name: &str) -> Result<RowKind> {
    RowKind::ALL
        .into_iter()
        .find(|k| k.name() == name)
        .ok_or_else(|| {
            anyhow::anyhow!("unknown row kind `{name}` (heavy-tailed, flat, dominant, masked)")
        })
}

/// Runs the benchmark and prints the table.
pub fn run(a: &BenchArgs) -> Result<()> {
    let mut row_sets: Vec<(String, Vec<Vec<f32>>)> = Vec::new();
    for name in &a.rows {
        let k = kind(name)?;
        row_sets.push((
            name.clone(),
            (0..4).map(|s| synth::row(k, a.vocab, 100 + s)).collect(),
        ));
    }
    if let Some(p) = &a.real {
        let l = crate::logits_io::read(p)?;
        row_sets.push((
            format!(
                "real ({})",
                p.file_name()
                    .map(|f| f.to_string_lossy().to_string())
                    .unwrap_or_default()
            ),
            (0..l.rows.min(16)).map(|r| l.row(r).to_vec()).collect(),
        ));
    }
    let budget = Duration::from_millis(a.millis);
    let mut table = String::new();
    writeln!(table, "| chain (→ sample) | rows | V | adasamp µs/row | full-sort µs/row | speed-up | target µs |")?;
    writeln!(table, "|---|---|---|---:|---:|---:|---:|")?;
    println!("{}", table.trim_end());
    for chain in chains() {
        let skip = match a.filter.as_deref() {
            Some(f) if f.starts_with('=') => chain.name != f[1..],
            Some(f) => !chain.name.contains(f),
            None => false,
        };
        if skip {
            continue;
        }
        for (rname, rows) in &row_sets {
            let v = rows[0].len();
            let hist = history(v);
            let ctx = Context::new(&hist, hist.len() / 2);
            let mut p = chain.pipeline();
            let mut row = Row::new();
            let mut i = 0usize;
            let fast = time_us(
                || {
                    let z = &rows[i % rows.len()];
                    i += 1;
                    p.reset();
                    std::hint::black_box(run_fast(&mut p, &mut row, z, &ctx, 0.37));
                },
                budget,
            );
            let (slow, ratio) = if chain.has_reference() && !a.no_baseline {
                let mut buf = Vec::new();
                let mut j = 0usize;
                let slow = time_us(
                    || {
                        let z = &rows[j % rows.len()];
                        j += 1;
                        std::hint::black_box(run_reference(&chain.stages, z, &mut buf, 0.37));
                    },
                    budget,
                );
                (format!("{slow:.1}"), format!("{:.1}×", slow / fast))
            } else {
                ("–".into(), "–".into())
            };
            let target = chain
                .target_us
                .filter(|_| v >= 128256)
                .map_or("–".into(), |t| format!("{t:.0}"));
            let line = format!(
                "| {} | {rname} | {v} | {fast:.1} | {slow} | {ratio} | {target} |",
                chain.name
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
