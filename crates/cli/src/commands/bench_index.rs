//! `adasamp bench-index`: suffix-array build speed and count / longest-match latency of the
//! token index, on a synthetic corpus and optionally on real text; one table.

use std::path::PathBuf;

use adasamp_curate::index::bench::{self, QueryOptions};
use adasamp_curate::index::{load_tokenizer, DEFAULT_MAX_N};
use anyhow::Result;
use clap::Args;

/// Options of `bench-index`.
#[derive(Debug, Args)]
pub struct BenchIndexArgs {
    /// Tokens of the synthetic corpus (0: none).
    #[arg(long, default_value_t = 100_000_000)]
    pub tokens: u64,
    /// Vocabulary of the synthetic corpus (≤ 65535: u16 ids, else u32).
    #[arg(long, default_value_t = 49152)]
    pub vocab: u32,
    /// Zipf exponent of the synthetic corpus.
    #[arg(long, default_value_t = 1.1)]
    pub zipf: f64,
    /// Tokens per synthetic document.
    #[arg(long, default_value_t = 1000)]
    pub doc_len: usize,
    /// Seed of the synthetic corpus and of the queries.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Real-text corpus files to index and query too (as `index build --corpus`).
    #[arg(long, num_args = 1..)]
    pub text: Vec<PathBuf>,
    /// Name of the real-text corpus in the table.
    #[arg(long, default_value = "real text")]
    pub text_name: String,
    /// Tokenizer of the real text (default: the default model's).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Queries of each kind.
    #[arg(long, default_value_t = 20_000)]
    pub queries: usize,
    /// Longest n-gram / longest-match length.
    #[arg(long, default_value_t = DEFAULT_MAX_N)]
    pub max_n: usize,
    /// Where to write the indexes (default: a temporary directory, removed at the end).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Write the table (markdown) to this file as well.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Runs the benchmark and prints the table.
pub fn run(a: &BenchIndexArgs) -> Result<()> {
    let scratch = std::env::temp_dir().join(format!("adasamp-bench-index-{}", std::process::id()));
    let dir = a.dir.clone().unwrap_or_else(|| scratch.clone());
    std::fs::create_dir_all(&dir)?;
    let result = measure(a, &dir);
    if a.dir.is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    let table = result?;
    print!("{table}");
    if let Some(out) = &a.output {
        adasamp_engine::files::write_atomic(out, table.as_bytes())?;
    }
    Ok(())
}

/// Builds and queries the indexes in `dir`; returns the table.
fn measure(a: &BenchIndexArgs, dir: &std::path::Path) -> Result<String> {
    let q = QueryOptions {
        queries: a.queries,
        max_n: a.max_n,
        seed: a.seed,
    };
    let mut results = Vec::new();
    if a.tokens > 0 {
        eprintln!("synthetic corpus: {} tokens …", a.tokens);
        results.push(bench::bench_synthetic(
            &dir.join("synthetic"),
            a.tokens,
            a.vocab,
            a.zipf,
            a.doc_len,
            a.seed,
            &q,
        )?);
    }
    if !a.text.is_empty() {
        let tok = load_tokenizer(a.tokenizer.as_deref(), &mut |m: &str| eprintln!("{m}"))?;
        eprintln!("{}: {} files …", a.text_name, a.text.len());
        results.push(bench::bench_files(
            &dir.join("text"),
            &a.text_name,
            &a.text,
            &tok,
            &q,
        )?);
    }
    Ok(bench::table(&results, &q))
}
