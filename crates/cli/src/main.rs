//! `adasamp`: thin subcommands over the adasamp libraries.

mod analyze;
mod bench_generate;
mod bench_sampler;
mod bench_sampling;
mod generate;
mod logits_io;
mod pipeline_args;
mod plots;
mod sampler_cmd;
mod sampler_init;
mod train;

use std::io::Write;
use std::path::PathBuf;

use adasamp_sampling::grid::{filtered_grid, full_grid, Family};
use adasamp_sampling::stages::STAGES;
use adasamp_sampling::synth::{self, RowKind};
use adasamp_sampling::{sample_batch, Context, PipelineFile, Row, StageSpec};
use anyhow::{bail, Result};
use clap::{Parser, Subcommand};

use logits_io::Logits;
use pipeline_args::PipelineArgs;

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
    Apply {
        #[command(flatten)]
        pipeline: PipelineArgs,
        /// Input safetensors file with tensor `logits` (F32 [N, V]).
        #[arg(long, value_name = "IN.safetensors")]
        input: PathBuf,
        /// Output safetensors file; receives tensor `logits` (F32 [N, V]).
        #[arg(long, value_name = "OUT.safetensors")]
        output: PathBuf,
    },
    /// Sample one token per row of a logits file; prints one JSON line per row.
    Sample {
        #[command(flatten)]
        pipeline: PipelineArgs,
        /// Input safetensors file with tensor `logits` (F32 [N, V]).
        #[arg(long, value_name = "IN.safetensors")]
        input: PathBuf,
        /// RNG seed; row r uses stream r of this seed, so results do not depend on batching.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Also print the N most likely tokens of each row's final distribution.
        #[arg(long, value_name = "N", default_value_t = 0)]
        top_n: usize,
    },
    /// Write a heuristic grid (SPEC 1.4) as a pipeline YAML file.
    Grid {
        /// Model family whose official defaults join the grid: llama, gemma, qwen or none.
        #[arg(long, default_value = "none")]
        family: Family,
        /// The filtered grid (143 pipelines with a family) instead of the full one (396 / 384).
        #[arg(long)]
        filtered: bool,
        /// Output file (default: standard output).
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// List every stage with its parameters.
    Stages,
    /// Write a small example: synthetic logits rows and a pipeline file to try `apply` and `sample` on.
    Example {
        /// Directory to write `logits.safetensors` and `pipelines.yaml` into.
        #[arg(long, default_value = "example")]
        output: PathBuf,
        /// Vocabulary size of the example rows.
        #[arg(long, default_value_t = 49152)]
        vocab: usize,
    },
    /// Time every sampling chain against a full-sort baseline; prints a table.
    BenchSampling(bench_sampling::BenchArgs),
    /// Time the learned samplers' fast CPU path (one thread) against the candle forward.
    BenchSampler(bench_sampler::BenchSamplerArgs),
    /// Generate text with a base model and any sampling pipeline.
    Generate(Box<generate::GenerateArgs>),
    /// Train a learned sampler on replayed base-model logits of candidate records.
    Train(Box<train::TrainArgs>),
    /// Prefill/decode throughput per backend and batch size, with the sampling share of a step.
    BenchGenerate(bench_generate::BenchGenerateArgs),
    /// Write a model's raw logits for every position of a prompt (teacher-forced) as safetensors
    /// (tensor `logits`, F32 [positions, V]): real rows for `bench-sampling --real` and `apply`.
    Logits {
        /// The text (the chat template is applied unless --raw).
        #[arg(long)]
        prompt: String,
        /// Use the prompt as-is.
        #[arg(long)]
        raw: bool,
        /// Model (default: the default model).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Output safetensors file.
        #[arg(long)]
        output: PathBuf,
    },
    /// Manage models: fetch the default model, show a model's facts.
    Model {
        #[command(subcommand)]
        action: ModelAction,
    },
    /// Learned samplers: create one with seeded initial weights.
    Sampler {
        #[command(subcommand)]
        action: SamplerAction,
    },
    /// Compare a learned sampler with its target pipeline on real rows: per-position KL and
    /// truncated mass vs the identity, tables, CSV and plots (SPEC 2 "Analysis").
    Analyze(Box<analyze::AnalyzeArgs>),
}

#[derive(Debug, Subcommand)]
enum SamplerAction {
    /// Write a sampler with seeded initial weights (an untrained baseline) as a checkpoint.
    Init(sampler_init::InitArgs),
    /// Print a learned sampler's architecture, parameter counts per module and layer, and FLOPs
    /// per token, from a config YAML or a checkpoint directory.
    Info {
        /// A sampler config (`configs/samplers/*.yaml`) or a checkpoint directory.
        #[arg(value_name = "CONFIG.yaml|CHECKPOINT_DIR")]
        path: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ModelAction {
    /// Fetch (or verify) the default model SmolLM2-135M-Instruct into $ADASAMP_HOME.
    Fetch,
    /// Load a model and print its facts as JSON.
    Info {
        /// A .gguf file or Hugging Face directory (default: the default model).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Backend: auto, candle or llama.cpp.
        #[arg(long, default_value = "auto")]
        backend: adasamp_engine::BackendChoice,
    },
}

fn main() {
    // The `learned` pipeline stage (adasamp-nets) joins the sampling core's stage registry.
    adasamp_nets::register_learned_stage();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        if let Some(hint) = backend_hint(&e) {
            eprintln!("hint: {hint}");
        }
        std::process::exit(1);
    }
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
        _ => None,
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Apply {
            pipeline,
            input,
            output,
        } => apply(&pipeline, &input, &output),
        Command::Sample {
            pipeline,
            input,
            seed,
            top_n,
        } => sample(&pipeline, &input, seed, top_n),
        Command::Grid {
            family,
            filtered,
            output,
        } => {
            let g = if filtered {
                filtered_grid(family)
            } else {
                full_grid(family)
            };
            let yaml = g.to_yaml();
            match output {
                Some(p) => {
                    logits_io::write_atomic(&p, yaml.as_bytes())?;
                    eprintln!("wrote {} pipelines to {}", g.pipelines.len(), p.display());
                }
                None => print!("{yaml}"),
            }
            Ok(())
        }
        Command::Stages => {
            for (name, params) in STAGES {
                println!("{name:<22} {params}");
            }
            for s in adasamp_sampling::stages::external_stages() {
                println!("{:<22} {}", s.name, s.params_help);
            }
            Ok(())
        }
        Command::Example { output, vocab } => example(&output, vocab),
        Command::BenchSampling(args) => bench_sampling::run(&args),
        Command::BenchSampler(args) => bench_sampler::run(&args),
        Command::Generate(args) => generate::run(&args),
        Command::Train(args) => train::run(&args),
        Command::BenchGenerate(args) => bench_generate::run(&args),
        Command::Logits {
            prompt,
            raw,
            model,
            output,
        } => {
            let mut lm = adasamp_engine::load(
                model.as_deref(),
                adasamp_engine::BackendChoice::Candle,
                Default::default(),
                &mut |m: &str| eprintln!("{m}"),
            )?;
            let ids = lm.prompt_tokens(&prompt, None, raw)?;
            let seq = lm.model.new_sequence()?;
            let l = lm
                .model
                .forward(&[adasamp_engine::Feed::tokens(seq, &ids).with_all_logits()])?
                .logits;
            logits_io::write(
                &output,
                &Logits {
                    rows: l.rows,
                    vocab: l.vocab,
                    data: l.data,
                },
            )?;
            eprintln!(
                "wrote {} rows × {} logits to {}",
                l.rows,
                l.vocab,
                output.display()
            );
            Ok(())
        }
        Command::Sampler { action } => match action {
            SamplerAction::Init(args) => sampler_init::run(&args),
            SamplerAction::Info { path } => sampler_cmd::info(&path),
        },
        Command::Analyze(args) => analyze::run(&args),
        Command::Model { action } => match action {
            ModelAction::Fetch => {
                let p =
                    adasamp_engine::fetch::ensure_default_model(&mut |m: &str| eprintln!("{m}"))?;
                println!("{}", p.display());
                Ok(())
            }
            ModelAction::Info { model, backend } => {
                let lm = adasamp_engine::load(
                    model.as_deref(),
                    backend,
                    Default::default(),
                    &mut |m: &str| eprintln!("{m}"),
                )?;
                let info = serde_json::json!({
                    "model": lm.model.info(),
                    "tokenizer": {
                        "vocab_size": lm.tokenizer.vocab_size(),
                        "bos_id": lm.tokenizer.bos_id(),
                        "eos_ids": lm.tokenizer.eos_ids(),
                    },
                    "chat_template": lm.chat.is_some(),
                });
                println!("{}", serde_json::to_string_pretty(&info)?);
                Ok(())
            }
        },
    }
}

fn apply(args: &PipelineArgs, input: &std::path::Path, output: &std::path::Path) -> Result<()> {
    let mut p = args.build()?;
    let l = logits_io::read(input)?;
    let mut out = Logits {
        rows: l.rows,
        vocab: l.vocab,
        data: vec![0.0; l.data.len()],
    };
    let mut row = Row::new();
    for r in 0..l.rows {
        p.reset();
        p.apply_dense(
            l.row(r),
            r,
            &Context::default(),
            &mut row,
            &mut out.data[r * l.vocab..(r + 1) * l.vocab],
        )?;
    }
    logits_io::write(output, &out)?;
    eprintln!(
        "applied `{}` to {} rows × {} tokens → {}",
        p.name(),
        l.rows,
        l.vocab,
        output.display()
    );
    Ok(())
}

fn sample(args: &PipelineArgs, input: &std::path::Path, seed: u64, top_n: usize) -> Result<()> {
    let p = args.build()?;
    let l = logits_io::read(input)?;
    let samples = sample_batch(&p, &l.data, l.vocab, seed, top_n)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for (r, s) in samples.iter().enumerate() {
        let line = serde_json::json!({
            "row": r,
            "token": s.token,
            "prob": s.prob,
            "logprob": s.logprob,
            "top": s.top,
        });
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn example(dir: &std::path::Path, vocab: usize) -> Result<()> {
    if vocab < 2 {
        bail!("--vocab must be at least 2 (got {vocab})");
    }
    let data: Vec<f32> = RowKind::ALL
        .iter()
        .enumerate()
        .flat_map(|(i, &k)| synth::row(k, vocab, i as u64))
        .collect();
    let rows = RowKind::ALL.len();
    logits_io::write(
        &dir.join("logits.safetensors"),
        &Logits { rows, vocab, data },
    )?;
    let pipelines = PipelineFile {
        pipelines: vec![
            adasamp_sampling::PipelineSpec {
                name: "min_p0.05".into(),
                weight: 1.0,
                processors: vec![StageSpec::new("min_p", &[("min_p", 0.05)])],
            },
            adasamp_sampling::PipelineSpec {
                name: "temp0.8_top_p0.95".into(),
                weight: 1.0,
                processors: vec![
                    StageSpec::new("temperature", &[("temperature", 0.8)]),
                    StageSpec::new("top_p", &[("top_p", 0.95)]),
                ],
            },
            adasamp_sampling::PipelineSpec {
                name: "llama_cpp_default".into(),
                weight: 1.0,
                processors: vec![
                    StageSpec::new("top_k", &[("top_k", 40.0)]),
                    StageSpec::new("top_p", &[("top_p", 0.95)]),
                    StageSpec::new("min_p", &[("min_p", 0.05)]),
                    StageSpec::new("temperature", &[("temperature", 0.8)]),
                ],
            },
        ],
    };
    logits_io::write_atomic(&dir.join("pipelines.yaml"), pipelines.to_yaml().as_bytes())?;
    eprintln!(
        "wrote {}/logits.safetensors ({rows} rows: {}; V = {vocab}) and {}/pipelines.yaml",
        dir.display(),
        RowKind::ALL
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", "),
        dir.display()
    );
    Ok(())
}
