//! The index benchmark: suffix-array build speed and query latency on a corpus of any size,
//! synthetic ([`crate::index::synth`]) or tokenized from files.
//!
//! Queries are drawn from the indexed text itself, seeded: *present* n-grams are the tokens at a
//! random position (so they occur at least once; cut at the document's end), *fresh* n-grams are
//! tokens taken one by one from independent random positions (the corpus's unigram
//! distribution, so longer ones rarely occur). Lengths are uniform in `1..=max_n`. The
//! longest-match query asks for the longest occurring prefix of a `max_n`-token sequence, the
//! step of the greedy coverage walk. Latencies are for a warm page cache (the index was just
//! written).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::Result;
use crate::index::build::{build_index, write_index, BuildOptions, Provenance};
use crate::index::format::TokenWidth;
use crate::index::open::Index;
use crate::index::synth::synthetic_corpus;
use crate::index::tokenizer::{LoadedTokenizer, TokenizerInfo};

/// libsais' own published single-thread construction speed, for scale (not measured here).
pub const LIBSAIS_PUBLISHED_MB_S: f64 = 25.0;

/// Latency of one kind of query.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Latency {
    /// Mean, µs.
    pub mean_us: f64,
    /// Median, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
}

impl Latency {
    fn of(mut us: Vec<f64>) -> Self {
        if us.is_empty() {
            return Self::default();
        }
        us.sort_by(f64::total_cmp);
        let at = |q: f64| us[((us.len() - 1) as f64 * q).round() as usize];
        Self {
            mean_us: us.iter().sum::<f64>() / us.len() as f64,
            p50_us: at(0.5),
            p99_us: at(0.99),
        }
    }
}

/// Query settings.
#[derive(Debug, Clone, Copy)]
pub struct QueryOptions {
    /// Queries of each kind.
    pub queries: usize,
    /// Longest n-gram (and longest-match length).
    pub max_n: usize,
    /// Seed of the query positions.
    pub seed: u64,
}

/// Query latencies on one index.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct QueryLatencies {
    /// `count` of present n-grams.
    pub count_present: Latency,
    /// `count` of fresh n-grams.
    pub count_fresh: Latency,
    /// Longest match of present sequences.
    pub longest_present: Latency,
    /// Longest match of fresh sequences.
    pub longest_fresh: Latency,
    /// Mean longest match (tokens) of fresh sequences.
    pub fresh_mean_match: f64,
}

/// One benchmark row.
#[derive(Debug, Clone)]
pub struct BenchResult {
    /// What the corpus is.
    pub corpus: String,
    /// Corpus tokens.
    pub tokens: u64,
    /// Documents.
    pub documents: u64,
    /// Stored id width.
    pub width: TokenWidth,
    /// Corpus bytes, when tokenized from files.
    pub text_bytes: Option<u64>,
    /// Seconds tokenizing, when tokenized from files.
    pub tokenize_s: Option<f64>,
    /// Seconds building the suffix array.
    pub suffix_array_s: f64,
    /// Seconds writing the index.
    pub write_s: f64,
    /// Milliseconds opening (header, maps, checks).
    pub open_ms: f64,
    /// Query latencies.
    pub queries: QueryLatencies,
}

impl BenchResult {
    /// Suffix-array construction speed in MB of stored token ids (positions × width) per second.
    pub fn build_mb_s(&self) -> f64 {
        let positions = self.tokens + self.documents;
        let bytes = positions as f64
            * match self.width {
                TokenWidth::U16 => 2.0,
                TokenWidth::U32 => 4.0,
            };
        bytes / 1e6 / self.suffix_array_s.max(1e-9)
    }
}

/// Times `queries` of each kind on `index`.
pub fn time_queries(index: &Index, q: &QueryOptions) -> QueryLatencies {
    let mut rng = ChaCha8Rng::seed_from_u64(q.seed);
    let positions = index.header().positions;
    let max_n = q.max_n.max(1);
    let mut present = Vec::with_capacity(q.queries);
    let mut fresh = Vec::with_capacity(q.queries);
    while present.len() < q.queries {
        let n = rng.random_range(1..=max_n);
        let at = rng.random_range(0..positions);
        let p = index.document_tokens(at, n);
        if !p.is_empty() {
            present.push(p);
        }
    }
    while fresh.len() < q.queries {
        let n = rng.random_range(1..=max_n);
        let mut f = Vec::with_capacity(n);
        while f.len() < n {
            let at = rng.random_range(0..positions);
            f.extend(index.document_tokens(at, 1));
        }
        fresh.push(f);
    }
    let full = |rng: &mut ChaCha8Rng, from_corpus: bool| -> Vec<Vec<u32>> {
        let mut out = Vec::with_capacity(q.queries);
        while out.len() < q.queries {
            let mut s = Vec::with_capacity(max_n);
            if from_corpus {
                s = index.document_tokens(rng.random_range(0..positions), max_n);
            } else {
                while s.len() < max_n {
                    s.extend(index.document_tokens(rng.random_range(0..positions), 1));
                }
            }
            if !s.is_empty() {
                out.push(s);
            }
        }
        out
    };
    let long_present = full(&mut rng, true);
    let long_fresh = full(&mut rng, false);
    let time = |qs: &[Vec<u32>], f: &dyn Fn(&[u32]) -> u64| -> (Latency, u64) {
        let mut sum = 0u64;
        let us = qs
            .iter()
            .map(|x| {
                let t = Instant::now();
                sum += std::hint::black_box(f(std::hint::black_box(x)));
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        (Latency::of(us), sum)
    };
    let count = |x: &[u32]| index.count(x);
    let longest = |x: &[u32]| index.longest_prefix(x) as u64;
    let (fresh_lat, fresh_sum) = time(&long_fresh, &longest);
    QueryLatencies {
        count_present: time(&present, &count).0,
        count_fresh: time(&fresh, &count).0,
        longest_present: time(&long_present, &longest).0,
        longest_fresh: fresh_lat,
        fresh_mean_match: fresh_sum as f64 / long_fresh.len().max(1) as f64,
    }
}

/// Builds, writes (into `dir`, replaced) and queries a synthetic corpus of `tokens` Zipf-like
/// tokens (see [`synthetic_corpus`]).
#[allow(clippy::too_many_arguments)]
pub fn bench_synthetic(
    dir: &Path,
    tokens: u64,
    vocab_size: u32,
    exponent: f64,
    doc_len: usize,
    seed: u64,
    q: &QueryOptions,
) -> Result<BenchResult> {
    let mut corpus = synthetic_corpus(tokens, vocab_size, exponent, doc_len, seed)?;
    let t = Instant::now();
    let sa = corpus.suffix_array()?;
    let suffix_array_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let name = format!(
        "synthetic Zipf(s={exponent}) i.i.d. over {vocab_size} ids, seed {seed}, documents of {doc_len}"
    );
    let header = write_index(
        dir,
        &corpus,
        &sa,
        Provenance {
            tokenizer: TokenizerInfo {
                sha256: String::new(),
                kind: name.clone(),
                source: None,
            },
            text_field: String::new(),
            files: Vec::new(),
        },
    )?;
    let write_s = t.elapsed().as_secs_f64();
    drop((corpus, sa));
    let t = Instant::now();
    let index = Index::open(dir)?;
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    Ok(BenchResult {
        corpus: name,
        tokens: header.tokens,
        documents: header.documents,
        width: header.token_width,
        text_bytes: None,
        tokenize_s: None,
        suffix_array_s,
        write_s,
        open_ms,
        queries: time_queries(&index, q),
    })
}

/// Builds (into `dir`, replaced) and queries an index of the corpus `files`.
pub fn bench_files(
    dir: &Path,
    name: &str,
    files: &[PathBuf],
    tokenizer: &LoadedTokenizer,
    q: &QueryOptions,
) -> Result<BenchResult> {
    let r = build_index(files, tokenizer, dir, &BuildOptions::default())?;
    let t = Instant::now();
    let index = Index::open(dir)?;
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    Ok(BenchResult {
        corpus: name.into(),
        tokens: r.header.tokens,
        documents: r.header.documents,
        width: r.header.token_width,
        text_bytes: Some(r.header.files.iter().map(|f| f.bytes).sum()),
        tokenize_s: Some(r.tokenize_s),
        suffix_array_s: r.suffix_array_s,
        write_s: r.write_s,
        open_ms,
        queries: time_queries(&index, q),
    })
}

/// The results as a markdown table, with libsais' published speed as a last row for scale.
pub fn table(results: &[BenchResult], q: &QueryOptions) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| corpus | tokens | docs | ids | tokenize | SA build | SA MB/s | Mtok/s | write | open | count present µs | count fresh µs | longest present µs | longest fresh µs (mean match) |"
    );
    let _ = writeln!(
        t,
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let lat = |l: &Latency| format!("{:.1} / {:.1} / {:.1}", l.mean_us, l.p50_us, l.p99_us);
    for r in results {
        let tokenize = match (r.tokenize_s, r.text_bytes) {
            (Some(s), Some(b)) => format!("{s:.1} s ({:.1} MB/s)", b as f64 / 1e6 / s.max(1e-9)),
            _ => "–".into(),
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} | {:?} | {} | {:.2} s | {:.1} | {:.1} | {:.1} s | {:.1} ms | {} | {} | {} | {} ({:.2}) |",
            r.corpus,
            r.tokens,
            r.documents,
            r.width,
            tokenize,
            r.suffix_array_s,
            r.build_mb_s(),
            (r.tokens + r.documents) as f64 / 1e6 / r.suffix_array_s.max(1e-9),
            r.write_s,
            r.open_ms,
            lat(&r.queries.count_present),
            lat(&r.queries.count_fresh),
            lat(&r.queries.longest_present),
            lat(&r.queries.longest_fresh),
            r.queries.fresh_mean_match,
        );
    }
    let _ = writeln!(
        t,
        "| libsais, published single-thread speed (bytes; not this run, not this machine) | | | u8 | | | ~{LIBSAIS_PUBLISHED_MB_S:.0} | | | | | | | |"
    );
    let _ = writeln!(
        t,
        "\nLatencies: mean / p50 / p99 over {} queries each, n ≤ {}, warm page cache. SA MB/s: stored id bytes (positions × id width) per second, one thread.",
        q.queries, q.max_n
    );
    t
}
