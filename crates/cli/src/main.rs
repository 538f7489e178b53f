//! `adasamp`: thin subcommands over the adasamp libraries. This file only parses the command line
//! and dispatches to [`commands`] (one module per subcommand).

mod commands;
mod loadgen;
mod logits_io;
mod omp_wait;
mod optimal_args;
mod optimal_bench;
mod pipeline_args;
mod plots;
mod soft_args;
mod speculative_args;

use anyhow::Result;
use clap::{Parser, Subcommand};

use commands::*;

/// adasamp: token sampling for language models as a first-class, measurable component.
#[derive(Debug, Parser)]
#[command(name = "adasamp", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply a pipeline to every row of a logits file; removed tokens become exactly -inf.
    Apply(apply::ApplyArgs),
    /// Sample one token per row of a logits file; prints one JSON line per row.
    Sample(sample::SampleArgs),
    /// Write a heuristic grid (SPEC 1.4) as a pipeline YAML file.
    Grid(grid::GridArgs),
    /// List every stage with its parameters.
    Stages,
    /// Write a small example: synthetic logits rows and a pipeline file to try `apply` and `sample` on.
    Example(example::ExampleArgs),
    /// Time every sampling chain against a full-sort baseline; prints a table.
    BenchSampling(bench_sampling::BenchArgs),
    /// Time optimal sampling's α per row (each method, one thread) against a plain 12-step
    /// bisection in the same run, both checked by substitution.
    BenchAlpha(bench_alpha::BenchAlphaArgs),
    /// Time the learned samplers' fast CPU path (one thread) against the candle forward.
    BenchSampler(bench_sampler::BenchSamplerArgs),
    /// Training throughput (positions/s) of the learned samplers: fast engine vs candle engine in
    /// the same run, with a PyTorch CPU reference beside them.
    BenchTrain(bench_train::BenchTrainArgs),
    /// Generate text with a base model and any sampling pipeline.
    Generate(Box<generate::GenerateArgs>),
    /// Train a learned sampler on replayed base-model logits of candidate records.
    Train(Box<train::TrainArgs>),
    /// Train a model's LM head with the soft-sampling objective (guidance α schedule).
    SoftTrain(Box<soft_train::SoftTrainArgs>),
    /// Prefill/decode throughput per backend and batch size, with the sampling share of a step.
    BenchGenerate(bench_generate::BenchGenerateArgs),
    /// Decode tokens/s at batch 1/8/32 of the default model and random Llama-3.2-1B/3B models on
    /// each backend, on the GPU of a `cuda` build (or the CPU), each row against a same-run
    /// reference, with the CPU sampling's and the logits copy's share of a step.
    BenchGpu(bench_gpu::BenchGpuArgs),
    /// Load an OpenAI-compatible server with concurrent streamed requests: requests/s, generated
    /// tokens/s, time to first token and inter-token latency per concurrency level.
    BenchServe(bench_serve::BenchServeArgs),
    /// Write a model's raw logits for every position of a prompt (teacher-forced) as safetensors
    /// (tensor `logits`, F32 [positions, V]): real rows for `bench-sampling --real` and `apply`.
    Logits(logits::LogitsArgs),
    /// Manage models: fetch the default model or the sentence embedder, show a model's facts,
    /// write a random Llama-shaped model for benchmarks.
    Model(model::ModelArgs),
    /// Learned samplers: create one with seeded initial weights.
    Sampler(sampler::SamplerArgs),
    /// Compare a learned sampler with its target pipeline on real rows: per-position KL and
    /// truncated mass vs the identity, tables, CSV and plots (SPEC 2 "Analysis").
    Analyze(Box<analyze::AnalyzeArgs>),
    /// OpenAI-compatible HTTP server: /v1/completions, /v1/chat/completions (streaming, n,
    /// logprobs, every sampling field, named and learned samplers), /v1/models, /v1/samplers,
    /// /health, /metrics.
    Serve(Box<serve::ServeArgs>),
    /// Label candidate records for curation (SPEC 4).
    Label(label::LabelArgs),
    /// Prompt files from public data for curation: MT-Bench, HumanEval, GSM-Symbolic,
    /// IFEval-style prompts, or a mixture.
    Prompts(prompts::PromptsArgs),
    /// Suffix-array index over a token corpus: build one, show it, count n-grams in it.
    Index(index::IndexArgs),
    /// Suffix-array build speed and count / longest-match latency of the token index.
    BenchIndex(bench_index::BenchIndexArgs),
    /// Curation: generate every (prompt, pipeline, seed) of a prompt file × a grid once, on this
    /// machine or on OpenAI-compatible servers; resumable JSONL.
    Candidates(Box<candidates::CandidatesArgs>),
    /// Curation: keep the prompts whose candidates are complete (every pipeline × every seed,
    /// each once) in a clean file; report what is missing or duplicated per prompt.
    Verify(verify::VerifyArgs),
    /// Combine the labels into one score per generation and keep the top k per (prompt, seed):
    /// the training file `train` reads.
    Score(Box<score::ScoreArgs>),
    /// The whole loop on the default model in one run directory: prompts → candidates over a
    /// small heuristic grid → verify → labels → score → train a learned sampler → eval on
    /// held-out prompts against the best single heuristic and `balanced`.
    Demo(Box<demo::DemoArgs>),
    /// Does a sampler win? Every contender (pipeline, preset or learned sampler) on the same
    /// held-out prompts and seeds: judge rating among them, accuracy, diversity, length and, for
    /// learned samplers, KL to the pipeline they imitate, with 95 % bootstrap intervals;
    /// report.md, report.json and plots.
    Eval(Box<eval::EvalArgs>),
}

fn main() {
    // The `learned` pipeline stage (adasamp-nets) joins the sampling core's stage registry.
    adasamp_nets::register_learned_stage();
    let cli = Cli::parse();
    // llama.cpp's OpenMP threads spin at barriers for a bounded time, then sleep: as fast as
    // libgomp's default on an idle machine, and no stall when the cores are shared (`omp_wait`).
    omp_wait::ensure_bounded_spin();
    if let Err(e) = run(cli) {
        eprintln!("error: {}", error_text(&e));
        if let Some(hint) = backend_hint(&e) {
            eprintln!("hint: {hint}");
        }
        std::process::exit(1);
    }
}

/// The error and its causes on one line, `: `-separated — a cause is left out when the message
/// before it already ends with it (errors that print their source as part of their own message).
fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// What to try when an engine error says a backend lacks something.
fn backend_hint(e: &anyhow::Error) -> Option<&'static str> {
    use adasamp_engine::{Backend, EngineError};
    match e.chain().find_map(|c| c.downcast_ref::<EngineError>())? {
        EngineError::Unsupported { .. }
        | EngineError::BackendNotBuilt {
            backend: Backend::LlamaCpp,
        } => Some("use --backend candle"),
        EngineError::BadRequest {
            field: "backend", ..
        } => Some("drop --backend llama.cpp"),
        EngineError::CudaNotBuilt { .. } => {
            Some("use --device cpu, or a build with --features cuda")
        }
        _ => None,
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Apply(a) => apply::run(&a),
        Command::Sample(a) => sample::run(&a),
        Command::Grid(a) => grid::run(&a),
        Command::Stages => stages::run(),
        Command::Example(a) => example::run(&a),
        Command::BenchSampling(a) => bench_sampling::run(&a),
        Command::BenchAlpha(a) => bench_alpha::run(&a),
        Command::BenchSampler(a) => bench_sampler::run(&a),
        Command::BenchTrain(a) => bench_train::run(&a),
        Command::Generate(a) => generate::run(&a),
        Command::Train(a) => train::run(&a),
        Command::SoftTrain(a) => soft_train::run(&a),
        Command::BenchGenerate(a) => bench_generate::run(&a),
        Command::BenchGpu(a) => bench_gpu::run(&a),
        Command::BenchServe(a) => bench_serve::run(&a),
        Command::Logits(a) => logits::run(&a),
        Command::Model(a) => model::run(&a),
        Command::Sampler(a) => sampler::run(&a),
        Command::Analyze(a) => analyze::run(&a),
        Command::Serve(a) => serve::run(&a),
        Command::Label(a) => label::run(&a),
        Command::Prompts(a) => prompts::run(&a),
        Command::Index(a) => index::run(&a),
        Command::BenchIndex(a) => bench_index::run(&a),
        Command::Candidates(a) => candidates::run(&a),
        Command::Verify(a) => verify::run(&a),
        Command::Score(a) => score::run(&a),
        Command::Demo(a) => demo::run(&a),
        Command::Eval(a) => eval::run(&a),
    }
}

#[cfg(test)]
mod tests {
    use super::error_text;

    #[derive(Debug, thiserror::Error)]
    #[error("f.jsonl: {source}")]
    struct WithSource {
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_the_message_is_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = anyhow::Error::new(WithSource { source: io }).context("reading");
        assert_eq!(error_text(&e), "reading: f.jsonl: gone");
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_text(&e), "outer: inner");
    }
}
