//! `adasamp bench-generate`: prefill and decode throughput of a model per backend and batch size,
//! with the sampling chain's share of each decode step and a greedy-argmax row beside it; with
//! `--speculative`, rows for exact speculative decoding (each drafter) with their speedup over
//! plain decoding of the same requests measured in the same run.

use std::fmt::Write as _;
use std::path::PathBuf;

use std::time::Instant;

use adasamp_engine::speculative::{generate_speculative, Drafter};
use adasamp_engine::{generate, BackendChoice, GenerationRequest, LoadedModel};
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
    /// Write the table (markdown) here as well.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Also measure speculative decoding: n-gram and draft-model drafters on llama.cpp, early
    /// exit on candle (each against plain decoding of the same requests, in the same run).
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

fn greedy() -> Pipeline {
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
    if a.batch.contains(&0) || a.new_tokens == 0 {
        bail!("batch sizes and --new-tokens must be at least 1");
    }
    let mut table = String::new();
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
                let reqs = (0..b)
                    .map(|i| -> Result<GenerationRequest> {
                        // Every sequence generates exactly `new_tokens` (no EOS, no stop).
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
                            max_new_tokens: a.new_tokens,
                            stop: vec![],
                            logprobs: 0,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
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
    if a.speculative {
        speculative_rows(a, &mut table)?;
    }
    if let Some(out) = &a.output {
        adasamp_engine::files::write_atomic(out, table.as_bytes())?;
    }
    Ok(())
}

/// The requests of one measurement: `b` prompts, `new_tokens` each (EOS banned), `pipe`.
fn bench_requests(
    lm: &LoadedModel,
    pipe: &Pipeline,
    b: usize,
    new_tokens: usize,
) -> Result<Vec<GenerationRequest>> {
    (0..b)
        .map(|i| -> Result<GenerationRequest> {
            let mut p = pipe.spec().clone();
            let bans: Vec<(u32, f64)> = lm
                .tokenizer
                .eos_ids()
                .iter()
                .map(|&e| (e, f64::NEG_INFINITY))
                .collect();
            p.processors.insert(
                0,
                StageSpec::new("logit_bias", &[]).with("bias", bias_map(&bans)),
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
    println!("\n{head}\n{rule}");
    writeln!(table, "\n{head}\n{rule}")?;
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
        let warm = bench_requests(&lm, &greedy(), 1, 4)?;
        generate(lm.model.as_mut(), &lm.tokenizer, warm, &mut |_, _| {})?;
        for &b in &a.batch {
            for (label, pipe) in [
                ("greedy arg-max", greedy()),
                ("top_k 40 → top_p 0.95 → min_p 0.05 → T 0.8", chain()),
            ] {
                let reqs = bench_requests(&lm, &pipe, b, a.new_tokens)?;
                let t0 = Instant::now();
                let (gens, _) = generate(
                    lm.model.as_mut(),
                    &lm.tokenizer,
                    reqs.clone(),
                    &mut |_, _| {},
                )?;
                let plain_s = t0.elapsed().as_secs_f64();
                let plain_tokens: usize = gens.iter().map(|g| g.usage.completion_tokens).sum();
                let line = format!(
                    "| {name} | {b} | {label} | none (plain) | – | {:.1} | – | 1.00 | 1.00× |",
                    plain_tokens as f64 / plain_s.max(1e-9)
                );
                println!("{line}");
                writeln!(table, "{line}")?;
                let drafters: Vec<(String, Drafter<'_>)> = match (backend, draft.as_mut()) {
                    (BackendChoice::LlamaCpp, Some(d)) => vec![
                        (
                            format!("n-gram N = {}", a.draft_ngram),
                            Drafter::Ngram { n: a.draft_ngram },
                        ),
                        (
                            format!(
                                "model {}",
                                d.model.info().source.rsplit('/').next().unwrap_or("")
                            ),
                            Drafter::Model(d.model.as_mut()),
                        ),
                    ],
                    _ => vec![
                        (
                            format!("n-gram N = {}", a.draft_ngram),
                            Drafter::Ngram { n: a.draft_ngram },
                        ),
                        (
                            format!("early exit K = {layers}"),
                            Drafter::EarlyExit { layers },
                        ),
                    ],
                };
                for (dname, drafter) in drafters {
                    let t0 = Instant::now();
                    let out = generate_speculative(
                        lm.model.as_mut(),
                        drafter,
                        &lm.tokenizer,
                        reqs.clone(),
                        a.draft_tokens,
                        &mut |_, _| {},
                    )?;
                    let secs = t0.elapsed().as_secs_f64();
                    let mut st = SpeculationStats::default();
                    out.iter().for_each(|g| st.add(&g.stats));
                    let line = format!(
                        "| {name} | {b} | {label} | {dname} | {} | {:.1} | {:.1} % | {:.2} | {:.2}× |",
                        a.draft_tokens,
                        st.generated as f64 / secs.max(1e-9),
                        100.0 * st.acceptance_rate(),
                        st.tokens_per_forward(),
                        plain_s / secs.max(1e-9)
                    );
                    println!("{line}");
                    writeln!(table, "{line}")?;
                }
            }
        }
    }
    Ok(())
}

/// A YAML mapping `{id: bias}` for the `logit_bias` stage.
fn bias_map(pairs: &[(u32, f64)]) -> adasamp_sampling::spec::Value {
    let mut m = adasamp_sampling::spec::Mapping::new();
    for &(id, b) in pairs {
        m.insert(
            adasamp_sampling::spec::Value::Number((id as u64).into()),
            adasamp_sampling::spec::Value::Number(b.into()),
        );
    }
    adasamp_sampling::spec::Value::Mapping(m)
}
