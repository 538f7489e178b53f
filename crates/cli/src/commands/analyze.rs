//! `adasamp analyze` (SPEC §2 "Analysis"): how close a learned sampler comes to its target
//! pipeline on real rows of the base model.
//!
//! The base model generates `--tokens` tokens from the prompt on the step-wise scheduler,
//! **sampling with the target pipeline** (seeded exactly as `adasamp generate --seed S` samples
//! its first sample, so the text is the same one `generate` would produce on the same backend).
//! A step observer keeps each position's rows. At every generated position the
//! raw logits row (the identity prediction), the target (the pipeline applied to the raw row with
//! the prompt + tokens so far as history, so penalties and stateful stages see what they would
//! during decoding) and the learned sampler's output for the raw row are compared:
//! `KL(target ‖ ·)` and the predicted mass on truncated tokens
//! ([`adasamp_nets::analysis`]). Writes `positions.csv`, `summary.md`, `kl.png` and one
//! `pos_XXX.png` per position into `--out`.

use std::fmt::Write as _;
use std::path::PathBuf;

use adasamp_engine::{BackendChoice, GenerationRequest, LoadOptions, Scheduler};
use adasamp_nets::analysis::{
    analyze_position, format_value, sampler_logits, summarize, top_tokens, PositionStats,
};
use adasamp_nets::LearnedSampler;
use adasamp_sampling::PipelineSet;
use anyhow::{bail, Context as _, Result};
use candle_core::{DType, Device};
use clap::Args;

use crate::plots::{self, visible_token, PositionPlot};

/// Options of `analyze`.
#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Learned sampler checkpoint directory (config.json + model.safetensors).
    #[arg(long, value_name = "DIR")]
    pub sampler: PathBuf,
    /// Pipeline file (ASN YAML) holding the target pipeline.
    #[arg(long, value_name = "FILE")]
    pub pipeline: PathBuf,
    /// Name of the target pipeline in --pipeline (needed when the file holds several).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The prompt (a user message; the chat template is applied unless --raw).
    #[arg(long)]
    pub prompt: String,
    /// System prompt.
    #[arg(long)]
    pub system: Option<String>,
    /// Use the prompt as-is, without the chat template.
    #[arg(long)]
    pub raw: bool,
    /// Number of tokens to generate and analyse (fewer if the model emits end-of-sequence).
    #[arg(long, default_value_t = 32)]
    pub tokens: usize,
    /// Tokens per position plot: the K most likely raw tokens (plus the target's kept tokens when
    /// it keeps at most K).
    #[arg(long, value_name = "K", default_value_t = 20)]
    pub top_k: usize,
    /// Output directory (created).
    #[arg(long, value_name = "DIR", default_value = "analysis")]
    pub out: PathBuf,
    /// Model: a .gguf file or a Hugging Face directory (default: the default model).
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// Backend: auto, candle or llama.cpp.
    #[arg(long, default_value = "auto")]
    pub backend: BackendChoice,
    /// Seed of the target pipeline's sampling (as `generate --seed`).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Skip the per-position plots (the summary plot is still drawn).
    #[arg(long)]
    pub no_position_plots: bool,
}

/// One analysed position.
struct Position {
    token: u32,
    text: String,
    raw: Vec<f32>,
    target: Vec<f32>,
    stats: Option<PositionStats>,
}

/// Quotes a CSV field when needed (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Runs `analyze`.
pub fn run(a: &AnalyzeArgs) -> Result<()> {
    if a.tokens == 0 {
        bail!("--tokens must be at least 1");
    }
    if a.top_k == 0 {
        bail!("--top-k must be at least 1");
    }
    let set = PipelineSet::from_path(&a.pipeline)?;
    let pipeline = set.select(a.name.as_deref())?.clone();
    let sampler = LearnedSampler::load(&a.sampler, DType::F32, &Device::Cpu)
        .with_context(|| format!("loading the learned sampler {}", a.sampler.display()))?;
    eprintln!(
        "sampler: {} ({}, {} parameters); target pipeline: `{}`",
        a.sampler.display(),
        sampler.config().architecture(),
        sampler.parameter_count(),
        pipeline.name()
    );

    let mut log = |m: &str| eprintln!("{m}");
    let opts = LoadOptions {
        max_sequences: Some(1),
        ..Default::default()
    };
    let mut lm = adasamp_engine::load(a.model.as_deref(), a.backend, opts, &mut log)?;
    let info = lm.model.info().clone();
    eprintln!(
        "model: {} ({}, vocab {}) on backend {}",
        info.source, info.arch, info.vocab_size, info.backend
    );
    let prompt = lm.prompt_tokens(&a.prompt, a.system.as_deref(), a.raw)?;
    if prompt.is_empty() {
        bail!("the prompt tokenizes to nothing");
    }

    // Decode on the scheduler, keeping each position's raw and target rows.
    let request = GenerationRequest {
        prompt: prompt.clone(),
        pipeline: pipeline.clone(),
        seed: a.seed,
        max_new_tokens: a.tokens,
        stop: Vec::new(),
        logprobs: 0,
    };
    let mut rows: Vec<(u32, Vec<f32>, Vec<f32>)> = Vec::with_capacity(a.tokens);
    let mut generation = None;
    {
        let mut sched = Scheduler::new(lm.model.as_mut(), &lm.tokenizer, 1);
        sched.add(request)?;
        while !sched.is_idle() {
            sched.step_observed(&mut |o| {
                rows.push((o.token, o.logits.to_vec(), o.distribution.row().to_dense()))
            })?;
            for f in sched.take_finished() {
                generation = Some(f.result.with_context(|| {
                    format!("position {}: applying `{}`", rows.len(), pipeline.name())
                })?);
            }
        }
    }
    let Some(generation) = generation else {
        bail!("the scheduler went idle without reporting the generation");
    };
    let mut positions = Vec::with_capacity(rows.len());
    for (token, raw, target) in rows {
        positions.push(Position {
            token,
            text: lm.tokenizer.decode(&[token], false)?,
            raw,
            target,
            stats: None,
        });
    }
    let generated = lm.tokenizer.decode(&generation.tokens, false)?;
    eprintln!("generated {} tokens: {generated:?}", positions.len());

    // Compare, write the table and the CSV.
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let mut preds = Vec::with_capacity(positions.len());
    for (i, p) in positions.iter_mut().enumerate() {
        let pred = sampler_logits(&sampler, &p.raw, p.raw.len())
            .with_context(|| format!("position {i}: running the sampler"))?;
        p.stats = Some(
            analyze_position(&p.raw, &p.target, &pred)
                .with_context(|| format!("position {i}: comparing rows"))?,
        );
        preds.push(pred);
    }
    let stats: Vec<PositionStats> = positions.iter().filter_map(|p| p.stats).collect();
    let summary = summarize(&stats)?;

    let mut csv = String::from(
        "index,token_id,token,kl_identity,kl_sampler,mass_identity,mass_sampler,kept\n",
    );
    for (i, p) in positions.iter().enumerate() {
        let s = &stats[i];
        writeln!(
            csv,
            "{i},{},{},{},{},{},{},{}",
            p.token,
            csv_field(&visible_token(&p.text, usize::MAX)),
            s.kl_identity,
            s.kl_sampler,
            s.mass_identity,
            s.mass_sampler,
            s.kept
        )?;
    }
    let csv_path = a.out.join("positions.csv");
    std::fs::write(&csv_path, csv)
        .with_context(|| format!("cannot write {}", csv_path.display()))?;

    let table = summary.to_markdown();
    let mut md = String::from("# adasamp analyze\n\n");
    let model_name = a
        .model
        .as_ref()
        .map_or_else(|| info.source.clone(), |m| m.display().to_string());
    writeln!(
        md,
        "- sampler: `{}` ({}, {} parameters)",
        a.sampler.display(),
        sampler.config().architecture(),
        sampler.parameter_count()
    )?;
    writeln!(
        md,
        "- target pipeline: `{}` from `{}`",
        pipeline.name(),
        a.pipeline.display()
    )?;
    writeln!(md, "- model: `{model_name}` (backend {})", info.backend)?;
    writeln!(md, "- prompt: {:?}; seed {}", a.prompt, a.seed)?;
    writeln!(
        md,
        "- generated (sampled with the target pipeline): {generated:?}\n"
    )?;
    md.push_str(&table);
    let md_path = a.out.join("summary.md");
    std::fs::write(&md_path, md).with_context(|| format!("cannot write {}", md_path.display()))?;
    println!("{table}");

    // Plots.
    plots::summary_plot(&a.out.join("kl.png"), &stats)?;
    if !a.no_position_plots {
        for (i, (p, pred)) in positions.iter().zip(&preds).enumerate() {
            let tokens = top_tokens(&p.raw, &p.target, pred, a.top_k, a.top_k, &[p.token])?
                .into_iter()
                .map(|t| {
                    let text = lm.tokenizer.decode(&[t.id], false)?;
                    Ok((t, visible_token(&text, 18)))
                })
                .collect::<Result<Vec<_>>>()?;
            let plot = PositionPlot {
                index: i,
                sampled: p.token,
                sampled_text: &visible_token(&p.text, 24),
                stats: &stats[i],
                tokens: &tokens,
            };
            plots::position_plot(&a.out.join(format!("pos_{i:03}.png")), &plot)?;
        }
    }
    eprintln!(
        "wrote {}/positions.csv, summary.md, kl.png{} (KL mean: identity {}, sampler {})",
        a.out.display(),
        if a.no_position_plots {
            String::new()
        } else {
            format!(" and {} position plots", positions.len())
        },
        format_value(summary.kl_identity.mean),
        format_value(summary.kl_sampler.mean)
    );
    Ok(())
}
