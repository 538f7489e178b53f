//! `adasamp bench-generate`: prefill and decode throughput of a model per backend and batch size,
//! with the sampling chain's share of each decode step and a greedy-argmax row beside it; with
//! `--speculative`, instead, a table for exact speculative decoding (each drafter) with its
//! speedup over plain decoding of the same requests measured in the same run.

use std::fmt::Write as _;
use std::path::PathBuf;

use std::time::Instant;

use adasamp_engine::speculative::{generate_speculative, Drafter};
use adasamp_engine::{generate, BackendChoice, GenerationRequest};
use adasamp_sampling::speculative::SpeculationStats;
use adasamp_sampling::{Pipeline, PipelineSpec, StageSpec};
use anyhow::{bail, Result};
use clap::Args;

/// Options of `bench-generate`.
#[derive(Debug, Args)]
pub struct BenchGenerateArgs {
    /// Model (default: the default model).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Backends to measure (comma-separated: candle, llama.cpp).
    #[arg(long, value_delimiter = ',', default_value = "llama.cpp,candle")]
    pub backends: Vec<BackendChoice>,
    /// Batch sizes (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    pub batch: Vec<usize>,
    /// Tokens generated per sequence.
    #[arg(long, default_value_t = 64)]
    pub new_tokens: usize,
    /// KV cache length per sequence.
    #[arg(long, default_value_t = 1024)]
    pub max_seq_len: usize,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Where the model runs: cpu, cuda or cuda:N (a build with the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    pub device: adasamp_engine::ComputeDevice,
    /// Write the table (markdown) here as well.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Measure speculative decoding instead: per backend, batch size and pipeline, plain
    /// decoding and each drafter (llama.cpp: n-gram and draft model; candle: n-gram and early
    /// exit) on the same requests, in the same run.
    #[arg(long)]
    pub speculative: bool,
    /// Draft model of the speculative rows (default: the measured model drafting for itself).
    #[arg(long, value_name = "PATH")]
    pub draft: Option<PathBuf>,
    /// Tokens drafted per round in the speculative rows.
    #[arg(long, value_name = "G", default_value_t = 4)]
    pub draft_tokens: usize,
    /// Longest n-gram matched by the prompt-lookup drafter.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub draft_ngram: usize,
    /// Blocks run by the early-exit drafter (default: half the model's).
    #[arg(long, value_name = "K")]
    pub draft_layers: Option<usize>,
    /// Speculative rows: runs of each measurement (plain and drafters alternating); the fastest
    /// is reported.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Optimal sampling's mixing overhead (θ and teacher = two instances of the model, α by
    /// kl_symmetry) against the two forwards alone, per batch size; `none` to skip.
    #[arg(long, default_value = "kl_symmetry")]
    pub optimal_method: String,
}

fn chain() -> Pipeline {
    let s = |n: &str, p: &[(&str, f64)]| StageSpec::new(n, p);
    let spec = PipelineSpec {
        name: "top_k40_top_p0.95_min_p0.05_temp0.8".into(),
        weight: 1.0,
        processors: vec![
            s("top_k", &[("top_k", 40.0)]),
            s("top_p", &[("top_p", 0.95)]),
            s("min_p", &[("min_p", 0.05)]),
            s("temperature", &[("temperature", 0.8)]),
        ],
    };
    Pipeline::from_spec(spec).expect("valid chain")
}

/// The greedy arg-max pipeline.
pub(crate) fn greedy() -> Pipeline {
    Pipeline::from_spec(PipelineSpec {
        name: "greedy".into(),
        weight: 1.0,
        processors: vec![StageSpec::new("greedy", &[])],
    })
    .expect("valid")
}

/// Short instructions used as prompts by the generation and serving benchmarks.
pub(crate) const PROMPTS: [&str; 8] = [
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain how photosynthesis works to a ten-year-old.",
    "List five tips for writing clean code, with one sentence each.",
    "What are the main causes of the French Revolution?",
    "Describe the water cycle in a few sentences.",
    "Give me a recipe for a simple tomato soup.",
    "Why is the sky blue? Answer briefly.",
    "Summarise the plot of a classic adventure novel of your choice.",
];

/// Runs the benchmark.
pub fn run(a: &BenchGenerateArgs) -> Result<()> {
    if a.batch.contains(&0) || a.new_tokens == 0 || a.repeats == 0 {
        bail!("batch sizes, --new-tokens and --repeats must be at least 1");
    }
    let mut table = String::new();
    if a.speculative {
        speculative_rows(a, &mut table)?;
        if let Some(out) = &a.output {
            adasamp_engine::files::write_atomic(out, table.as_bytes())?;
        }
        return Ok(());
    }
    writeln!(table, "| backend | batch | sampler | prefill tok/s | decode tok/s (aggregate) | sampling share of a step | decode vs greedy |")?;
    writeln!(table, "|---|---:|---|---:|---:|---:|---:|")?;
    println!("{}", table.trim_end());
    let variants: Vec<(BackendChoice, bool)> = a
        .backends
        .iter()
        .flat_map(|&b| [(b, false), (b, true)])
        .collect();
    for (backend, requant) in variants {
        let opts = adasamp_engine::LoadOptions {
            max_seq_len: Some(a.max_seq_len),
            requant_q8: requant,
            threads: a.threads,
            max_sequences: a.batch.iter().copied().max(),
            device: a.device,
            ..Default::default()
        };
        let mut lm = adasamp_engine::load(a.model.as_deref(), backend, opts, &mut |m: &str| {
            eprintln!("{m}")
        })?;
        let name = format!(
            "{}{}",
            lm.model.info().backend,
            if requant { " (Q8_0 re-quant)" } else { "" }
        );
        // Warm-up (first-touch allocations, caches).
        let warm = GenerationRequest {
            prompt: lm.prompt_tokens(PROMPTS[0], None, false)?,
            pipeline: greedy(),
            seed: 0,
            max_new_tokens: 4,
            stop: vec![],
            logprobs: 0,
        };
        generate(lm.model.as_mut(), &lm.tokenizer, vec![warm], &mut |_, _| {})?;
        for &b in &a.batch {
            let mut greedy_rate = None;
            for (label, pipe) in [
                ("greedy arg-max", greedy()),
                ("top_k 40 → top_p 0.95 → min_p 0.05 → T 0.8", chain()),
            ] {
                let reqs = fixed_length_requests(&lm, &pipe, b, a.new_tokens)?;
                let (gens, t) = generate(lm.model.as_mut(), &lm.tokenizer, reqs, &mut |_, _| {})?;
                let generated: usize = gens.iter().map(|g| g.usage.completion_tokens).sum();
                let step = (t.decode + t.sampling).as_secs_f64();
                let decode_rate = generated as f64 / step.max(1e-9);
                let prefill_rate = t.prefill_tokens as f64 / t.prefill.as_secs_f64().max(1e-9);
                let share = t.sampling.as_secs_f64() / step.max(1e-9);
                let ratio = match greedy_rate {
                    None => {
                        greedy_rate = Some(decode_rate);
                        "1.00×".to_string()
                    }
                    Some(g) => format!("{:.2}×", decode_rate / g),
                };
                let line = format!("| {name} | {b} | {label} | {prefill_rate:.0} | {decode_rate:.1} | {:.1} % | {ratio} |", share * 100.0);
                println!("{line}");
                writeln!(table, "{line}")?;
            }
        }
    }
    optimal_rows(a, &mut table)?;
    if let Some(out) = &a.output {
        adasamp_engine::files::write_atomic(out, table.as_bytes())?;
    }
    Ok(())
}

/// `batch` requests over [`PROMPTS`] (seeds 0, 1, …) that each generate exactly `new_tokens`
/// tokens with `pipe`: EOS is banned (logit bias −∞) and there are no stop strings.
pub(crate) fn fixed_length_requests(
    lm: &adasamp_engine::LoadedModel,
    pipe: &Pipeline,
    batch: usize,
    new_tokens: usize,
) -> Result<Vec<GenerationRequest>> {
    (0..batch)
        .map(|i| -> Result<GenerationRequest> {
            let mut p = pipe.spec().clone();
            p.processors.insert(
                0,
                StageSpec::new("logit_bias", &[]).with(
                    "bias",
                    bias_map(
                        &lm.tokenizer
                            .eos_ids()
                            .iter()
                            .map(|&e| (e, f64::NEG_INFINITY))
                            .collect::<Vec<_>>(),
                    ),
                ),
            );
            Ok(GenerationRequest {
                prompt: lm.prompt_tokens(PROMPTS[i % PROMPTS.len()], None, false)?,
                pipeline: Pipeline::from_spec(p)?,
                seed: i as u64,
                max_new_tokens: new_tokens,
                stop: vec![],
                logprobs: 0,
            })
        })
        .collect()
}

/// Speculative rows: per backend, batch size and pipeline, plain decoding timed first, then each
/// drafter on the same requests; speedup = plain wall time / speculative wall time (prefill
/// included in both).
fn speculative_rows(a: &BenchGenerateArgs, table: &mut String) -> Result<()> {
    let head = "| backend | batch | sampler | drafter | G | tok/s (wall, prefill incl.) | acceptance | tokens / target forward | speedup vs plain |";
    let rule = "|---|---:|---|---|---:|---:|---:|---:|---:|";
    println!("{head}\n{rule}");
    writeln!(table, "{head}\n{rule}")?;
    let batch_max = a.batch.iter().copied().max().unwrap_or(1);
    for &backend in &a.backends {
        let opts = adasamp_engine::LoadOptions {
            max_seq_len: Some(a.max_seq_len),
            threads: a.threads,
            // Early exit drafts on a second sequence of the target per request.
            max_sequences: Some(2 * batch_max),
            ..Default::default()
        };
        let mut log = |m: &str| eprintln!("{m}");
        let mut lm = adasamp_engine::load(a.model.as_deref(), backend, opts, &mut log)?;
        let mut draft = if backend == BackendChoice::LlamaCpp {
            let path = a.draft.as_deref().or(a.model.as_deref());
            Some(adasamp_engine::load(path, backend, opts, &mut log)?)
        } else {
            None
        };
        let name = lm.model.info().backend.to_string();
        let layers = a
            .draft_layers
            .unwrap_or(lm.model.info().n_layers / 2)
            .max(1);
        let warm = fixed_length_requests(&lm, &greedy(), 1, 4)?;
        generate(lm.model.as_mut(), &lm.tokenizer, warm, &mut |_, _| {})?;
        for &b in &a.batch {
            for (label, pipe) in [
                ("greedy arg-max", greedy()),
                ("top_k 40 → top_p 0.95 → min_p 0.05 → T 0.8", chain()),
            ] {
                let reqs = fixed_length_requests(&lm, &pipe, b, a.new_tokens)?;
                let second = match backend {
                    BackendChoice::LlamaCpp => format!(
                        "model {}",
                        draft
                            .as_ref()
                            .map(|d| d
                                .model
                                .info()
                                .source
                                .rsplit('/')
                                .next()
                                .unwrap_or("")
                                .to_string())
                            .unwrap_or_default()
                    ),
                    _ => format!("early exit K = {layers}"),
                };
                let names = [
                    "none (plain)".to_string(),
                    format!("n-gram N = {}", a.draft_ngram),
                    second,
                ];
                // Fastest of `repeats` runs each, the three kinds alternating (load spikes hit
                // every kind alike rather than one).
                let mut best = [f64::INFINITY; 3];
                let mut stats = [SpeculationStats::default(); 3];
                for _ in 0..a.repeats {
                    for (k, (best, stats)) in best.iter_mut().zip(stats.iter_mut()).enumerate() {
                        let drafter = match (k, backend, draft.as_mut()) {
                            (0, _, _) => None,
                            (1, _, _) => Some(Drafter::Ngram { n: a.draft_ngram }),
                            (_, BackendChoice::LlamaCpp, Some(d)) => {
                                Some(Drafter::Model(d.model.as_mut()))
                            }
                            _ => Some(Drafter::EarlyExit { layers }),
                        };
                        let t0 = Instant::now();
                        let st = match drafter {
                            None => {
                                let (gens, _) = generate(
                                    lm.model.as_mut(),
                                    &lm.tokenizer,
                                    reqs.clone(),
                                    &mut |_, _| {},
                                )?;
                                let n: usize = gens.iter().map(|g| g.usage.completion_tokens).sum();
                                SpeculationStats {
                                    generated: n,
                                    ..Default::default()
                                }
                            }
                            Some(d) => {
                                let out = generate_speculative(
                                    lm.model.as_mut(),
                                    d,
                                    &lm.tokenizer,
                                    reqs.clone(),
                                    a.draft_tokens,
                                    &mut |_, _| {},
                                )?;
                                let mut st = SpeculationStats::default();
                                out.iter().for_each(|g| st.add(&g.stats));
                                st
                            }
                        };
                        let secs = t0.elapsed().as_secs_f64();
                        if secs < *best {
                            *best = secs;
                            *stats = st;
                        }
                    }
                }
                for k in 0..3 {
                    let st = &stats[k];
                    let (g, acc, tpf) = if k == 0 {
                        ("–".to_string(), "–".to_string(), "1.00".to_string())
                    } else {
                        (
                            a.draft_tokens.to_string(),
                            format!("{:.1} %", 100.0 * st.acceptance_rate()),
                            format!("{:.2}", st.tokens_per_forward()),
                        )
                    };
                    let line = format!(
                        "| {name} | {b} | {label} | {} | {g} | {:.1} | {acc} | {tpf} | {:.2}× |",
                        names[k],
                        st.generated as f64 / best[k].max(1e-9),
                        best[0] / best[k].max(1e-9)
                    );
                    println!("{line}");
                    writeln!(table, "{line}")?;
                }
            }
        }
    }
    Ok(())
}

/// The optimal-sampling rows (see [`crate::optimal_bench`]), on the first backend.
fn optimal_rows(a: &BenchGenerateArgs, table: &mut String) -> Result<()> {
    if a.optimal_method == "none" {
        return Ok(());
    }
    let method = adasamp_sampling::optimal::AlphaMethod::parse(&a.optimal_method)?;
    let Some(&backend) = a.backends.first() else {
        return Ok(());
    };
    let opts = adasamp_engine::LoadOptions {
        max_seq_len: Some(a.max_seq_len),
        threads: a.threads,
        max_sequences: a.batch.iter().copied().max(),
        ..Default::default()
    };
    let (name, rows) = crate::optimal_bench::measure(
        a.model.as_deref(),
        backend,
        opts,
        &a.batch,
        a.new_tokens,
        &PROMPTS,
        &chain(),
        method,
    )?;
    let head = format!(
        "\n| backend | batch | optimal sampling ({}) s | θ + teacher forwards alone s | mixing overhead (target ≤ 10 %) |\n|---|---:|---:|---:|---:|",
        a.optimal_method
    );
    println!("{head}");
    writeln!(table, "{head}")?;
    for r in rows {
        let line = format!(
            "| {name} | {} | {:.3} | {:.3} | {:+.1} % ({} tokens) |",
            r.batch,
            r.optimal_s,
            r.forwards_s,
            r.overhead() * 100.0,
            r.tokens
        );
        println!("{line}");
        writeln!(table, "{line}")?;
    }
    Ok(())
}

/// A YAML mapping `{id: bias}` for the `logit_bias` stage.
pub(crate) fn bias_map(pairs: &[(u32, f64)]) -> adasamp_sampling::spec::Value {
    let mut m = adasamp_sampling::spec::Mapping::new();
    for &(id, b) in pairs {
        m.insert(
            adasamp_sampling::spec::Value::Number((id as u64).into()),
            adasamp_sampling::spec::Value::Number(b.into()),
        );
    }
    adasamp_sampling::spec::Value::Mapping(m)
}
