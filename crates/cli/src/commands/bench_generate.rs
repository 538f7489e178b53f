//! `adasamp bench-generate`: prefill and decode throughput of a model per backend and batch size,
//! with the sampling chain's share of each decode step and a greedy-argmax row beside it.

use std::fmt::Write as _;
use std::path::PathBuf;

use adasamp_engine::{generate, BackendChoice, GenerationRequest};
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
