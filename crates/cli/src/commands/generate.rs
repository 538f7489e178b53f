//! `adasamp generate`: text generation on a base model with any sampling pipeline — streamed to
//! the terminal for one prompt, or one JSONL record per (prompt, sample) for a prompts file.
//! With `--teacher`, optimal sampling: θ (`--model`) and the teacher mixed per step (see
//! [`crate::optimal_args`]); records then carry the mixing options and the means of the
//! per-step diagnostics under `optimal`. With `--draft`, `--draft-layers` or `--draft-ngram`,
//! exact speculative decoding (see [`crate::speculative_args`]): the same output distribution,
//! fewer target forwards; records then carry the drafter and its counts under `speculative`.
//! With `--soft`, soft sampling: every decode step feeds the embedding mixture of a
//! distribution instead of the sampled token (see [`crate::soft_args`]); records then carry the
//! soft pipeline under `soft`.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use adasamp_engine::optimal::{
    check_vocabularies, generate_optimal, OptimalGeneration, OptimalOptions, OptimalRequest,
};
use adasamp_engine::record::{resume_jsonl, write_record, CandidateRecord, SamplerInfo};
use adasamp_engine::soft::{generate_soft, SoftRequest};
use adasamp_engine::speculative::{check_drafter, generate_speculative};
use adasamp_engine::{generate, BackendChoice, Generation, GenerationRequest, LoadedModel};
use adasamp_sampling::optimal::MixSummary;
use adasamp_sampling::speculative::SpeculationStats;
use adasamp_sampling::PipelineSet;
use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Deserialize;

use crate::optimal_args::{write_diagnostics, TeacherArgs};
use crate::pipeline_args::PipelineArgs;
use crate::soft_args::{load_with_head, SoftArgs, SoftMode};
use crate::speculative_args::{summary_line, DraftArgs};

/// Options of `generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The prompt (a user message; the model's chat template is applied unless --raw).
    #[arg(long, conflicts_with = "prompts", required_unless_present = "prompts")]
    pub prompt: Option<String>,
    /// A JSONL file of prompts: one `{"prompt": ..., "id"?: ..., "system_prompt"?: ...}` per line.
    #[arg(long, value_name = "FILE.jsonl")]
    pub prompts: Option<PathBuf>,
    /// Model: a .gguf file or a Hugging Face directory (default: the embedded SmolLM2-135M-Instruct,
    /// fetched into $ADASAMP_HOME on first use).
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// Backend: auto, candle or llama.cpp.
    #[arg(long, default_value = "auto")]
    pub backend: BackendChoice,
    #[command(flatten)]
    pub sampling: PipelineArgs,
    /// Seed; sample k of a prompt uses seed + k.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Samples per prompt.
    #[arg(long, default_value_t = 1)]
    pub n: usize,
    /// Maximum number of generated tokens.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Stop strings (repeatable); the generation ends before the first occurrence.
    #[arg(long)]
    pub stop: Vec<String>,
    /// System prompt.
    #[arg(long)]
    pub system: Option<String>,
    /// Use the prompt as-is, without the chat template.
    #[arg(long)]
    pub raw: bool,
    /// Write JSONL records here (prompts-file mode; resumes: pairs already present are skipped).
    #[arg(long, value_name = "OUT.jsonl")]
    pub output: Option<PathBuf>,
    /// Record the top-K tokens of each step's final distribution.
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub logprobs: usize,
    /// Sequences decoded together.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// candle backend: re-quantize Q4_1/Q5_x weights to Q8_0 (~2× faster decoding, slightly
    /// different numerics; see docs/performance.md).
    #[arg(long)]
    pub requant_q8: bool,
    /// Cap on prompt + generation length (default: the model's context).
    #[arg(long)]
    pub max_seq_len: Option<usize>,
    /// Where the model runs: cpu, cuda or cuda:N (a build with the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    pub device: adasamp_engine::ComputeDevice,
    #[command(flatten)]
    pub optimal: TeacherArgs,
    #[command(flatten)]
    pub draft: DraftArgs,
    #[command(flatten)]
    pub soft: SoftArgs,
}

/// Speculative decoding's drafter: the `--draft` model when one was given.
struct Speculation {
    model: Option<LoadedModel>,
}

/// The teacher of optimal sampling, loaded, with its mixing options.
struct Teacher {
    model: LoadedModel,
    options: OptimalOptions,
    diagnostics: Option<std::fs::File>,
}

/// One generation and, with a teacher, its per-step diagnostics.
struct Outcome {
    generation: Generation,
    optimal: Option<OptimalGeneration>,
    /// With speculative decoding, its counts.
    speculative: Option<SpeculationStats>,
}

/// One request: θ's request and the user/system text the teacher renders its own prompt from.
struct Job<'a> {
    request: GenerationRequest,
    user: &'a str,
    system: Option<&'a str>,
}

/// How a batch is decoded: θ alone, θ and the teacher mixed, θ verifying drafts, or θ fed soft
/// inputs.
enum Mode<'t> {
    Plain,
    Optimal(&'t mut Teacher),
    Speculative(&'t mut Speculation),
    Soft(&'t SoftMode),
}

impl<'t> Mode<'t> {
    /// The mode of a teacher (optimal sampling), a drafter (speculative decoding) or a soft
    /// mode (at most one is given), else plain decoding.
    fn of(
        teacher: Option<&'t mut Teacher>,
        speculation: Option<&'t mut Speculation>,
        soft: Option<&'t SoftMode>,
    ) -> Self {
        match (teacher, speculation, soft) {
            (Some(t), _, _) => Mode::Optimal(t),
            (None, Some(s), _) => Mode::Speculative(s),
            (None, None, Some(s)) => Mode::Soft(s),
            (None, None, None) => Mode::Plain,
        }
    }
}

/// Runs a batch: θ alone, θ and the teacher mixed, θ verifying drafts, or θ with soft inputs.
fn run_batch(
    a: &GenerateArgs,
    lm: &mut LoadedModel,
    mode: Mode<'_>,
    jobs: Vec<Job<'_>>,
    on_text: &mut dyn FnMut(usize, &str),
) -> Result<Vec<Outcome>> {
    let plain = |gens: Vec<Generation>| -> Vec<Outcome> {
        gens.into_iter()
            .map(|generation| Outcome {
                generation,
                optimal: None,
                speculative: None,
            })
            .collect()
    };
    let t = match mode {
        Mode::Optimal(t) => t,
        Mode::Speculative(s) => {
            let drafter = a
                .draft
                .drafter(s.model.as_mut())
                .context("speculative decoding without a drafter")?;
            let reqs = jobs.into_iter().map(|j| j.request).collect();
            let gens = generate_speculative(
                lm.model.as_mut(),
                drafter,
                &lm.tokenizer,
                reqs,
                a.draft.draft_tokens,
                on_text,
            )?;
            return Ok(gens
                .into_iter()
                .map(|g| Outcome {
                    generation: g.generation,
                    optimal: None,
                    speculative: Some(g.stats),
                })
                .collect());
        }
        Mode::Soft(s) => {
            let reqs = jobs
                .into_iter()
                .map(|j| SoftRequest {
                    request: j.request,
                    soft_pipeline: s.pipeline.clone(),
                })
                .collect();
            return Ok(plain(generate_soft(
                lm.model.as_mut(),
                &lm.tokenizer,
                reqs,
                on_text,
            )?));
        }
        Mode::Plain => {
            let reqs = jobs.into_iter().map(|j| j.request).collect();
            let (gens, _) = generate(lm.model.as_mut(), &lm.tokenizer, reqs, on_text)?;
            return Ok(plain(gens));
        }
    };
    let reqs = jobs
        .into_iter()
        .map(|j| {
            Ok(OptimalRequest {
                teacher_prompt: a.optimal.prompt(&t.model, j.user, j.system, a.raw)?,
                theta: j.request,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let gens = generate_optimal(
        lm.model.as_mut(),
        t.model.model.as_mut(),
        &lm.tokenizer,
        reqs,
        &t.options,
        on_text,
    )?;
    Ok(gens
        .into_iter()
        .map(|g| Outcome {
            generation: g.generation.clone(),
            optimal: Some(g),
            speculative: None,
        })
        .collect())
}

/// The record's `optimal` field: the teacher, the mixing options and the diagnostics' means.
fn optimal_extra(a: &GenerateArgs, summary: &MixSummary) -> Result<serde_json::Value> {
    Ok(serde_json::json!({
        "teacher": a.optimal.teacher.as_ref().map(|p| p.display().to_string()),
        "alpha_method": a.optimal.alpha_method,
        "alpha": a.optimal.alpha,
        "alpha_min": a.optimal.alpha_min,
        "alpha_max": a.optimal.alpha_max,
        "teacher_system": a.optimal.teacher_system,
        "teacher_prompt_template": a.optimal.teacher_prompt_template,
        "teacher_top_k": a.optimal.teacher_top_k,
        "teacher_top_p": a.optimal.teacher_top_p,
        "force_teacher_special": a.optimal.force_teacher_special,
        "force_teacher_first": a.optimal.force_teacher_first,
        "summary": serde_json::to_value(summary)?,
    }))
}

/// Writes `o`'s diagnostics (when asked for) under `id`.
fn diagnostics(teacher: Option<&mut Teacher>, id: &str, o: &Outcome) -> Result<()> {
    if let (Some(t), Some(g)) = (teacher, &o.optimal) {
        if let Some(f) = t.diagnostics.as_mut() {
            write_diagnostics(f, id, g)?;
        }
    }
    Ok(())
}

/// One line of a prompts file.
#[derive(Debug, Clone, Deserialize)]
struct PromptLine {
    #[serde(default)]
    id: Option<serde_json::Value>,
    prompt: String,
    #[serde(default)]
    system_prompt: Option<String>,
}

/// The candidate record of generation `g` of `prompt` (sampled with `seed`).
#[allow(clippy::too_many_arguments)]
fn record(
    a: &GenerateArgs,
    soft: Option<&SoftMode>,
    pipelines: &PipelineSet,
    id: String,
    prompt: &str,
    system_prompt: Option<&str>,
    seed: u64,
    o: &Outcome,
) -> Result<CandidateRecord> {
    let p = pipelines.choose(seed)?;
    let g = &o.generation;
    let mut extra = serde_json::Map::new();
    if let Some(opt) = &o.optimal {
        extra.insert("optimal".into(), optimal_extra(a, &opt.summary)?);
    }
    if let Some(stats) = &o.speculative {
        extra.insert("speculative".into(), a.draft.record_extra(stats));
    }
    if let Some(s) = soft {
        extra.insert("soft".into(), s.record_extra());
    }
    if let Some(h) = &a.soft.lm_head {
        extra.insert("lm_head".into(), h.display().to_string().into());
    }
    Ok(CandidateRecord {
        id: Some(id),
        prompt: prompt.to_string(),
        system_prompt: system_prompt.map(str::to_string),
        raw: a.raw,
        generation: g.text.clone(),
        generation_tokens: Some(g.tokens.clone()),
        sampler_info: SamplerInfo {
            name: p.name().to_string(),
            config: p.spec().clone(),
            extra: Default::default(),
        },
        seed: Some(seed),
        finish_reason: Some(g.finish_reason),
        usage: Some(g.usage),
        logprobs: (a.logprobs > 0).then(|| g.logprobs.clone()),
        extra,
    })
}

/// Runs `generate`.
pub fn run(a: &GenerateArgs) -> Result<()> {
    if a.n == 0 || a.batch_size == 0 {
        bail!("--n and --batch-size must be at least 1");
    }
    let pipelines = a.sampling.build_set()?;
    if a.optimal.teacher.is_some() {
        a.optimal.validate()?;
    }
    let soft = a.soft.mode()?;
    let mut log = |m: &str| eprintln!("{m}");
    // A single prompt's --n samples decode as one batch; a prompts file in --batch-size chunks.
    let batch = if a.prompt.is_some() {
        a.n
    } else {
        a.batch_size
    };
    let early_exit = a.draft.draft_layers.is_some();
    let opts = adasamp_engine::LoadOptions {
        max_seq_len: a.max_seq_len,
        requant_q8: a.requant_q8,
        // Self-speculative drafts run on a second sequence of the target per request.
        max_sequences: Some(if early_exit { 2 * batch } else { batch }),
        needs: adasamp_engine::Capabilities {
            early_exit,
            ..Default::default()
        },
        device: a.device,
        ..Default::default()
    };
    let mut lm = match &a.soft.lm_head {
        Some(dir) => {
            if a.backend == BackendChoice::LlamaCpp {
                bail!("--lm-head runs on candle: leave --backend at auto or candle");
            }
            load_with_head(a.model.as_deref(), dir, opts)?
        }
        None => adasamp_engine::load(a.model.as_deref(), a.backend, opts, &mut log)?,
    };
    let info = lm.model.info().clone();
    eprintln!(
        "model: {} ({}, {} blocks, vocab {}) on backend {}",
        info.source, info.arch, info.n_layers, info.vocab_size, info.backend
    );
    let mut teacher = match &a.optimal.teacher {
        Some(path) => {
            let options = a.optimal.options(&lm)?;
            let t = adasamp_engine::load(Some(path), a.backend, opts, &mut log)?;
            let ti = t.model.info();
            check_vocabularies(info.vocab_size, ti.vocab_size)?;
            eprintln!(
                "teacher: {} ({}, {} blocks, vocab {}) on backend {}; α by {}",
                ti.source, ti.arch, ti.n_layers, ti.vocab_size, ti.backend, a.optimal.alpha_method
            );
            let diagnostics = match &a.optimal.diagnostics {
                Some(d) => Some(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(d)
                        .with_context(|| format!("opening {}", d.display()))?,
                ),
                None => None,
            };
            Some(Teacher {
                model: t,
                options,
                diagnostics,
            })
        }
        None => None,
    };
    let mut speculation = if a.draft.enabled() {
        let model = match &a.draft.draft {
            Some(path) => {
                let d = adasamp_engine::load(Some(path), a.backend, opts, &mut log)?;
                let di = d.model.info();
                eprintln!(
                    "draft: {} ({}, {} blocks, vocab {}) on backend {}",
                    di.source, di.arch, di.n_layers, di.vocab_size, di.backend
                );
                Some(d)
            }
            None => None,
        };
        let mut s = Speculation { model };
        let drafter = a
            .draft
            .drafter(s.model.as_mut())
            .context("speculative decoding without a drafter")?;
        check_drafter(lm.model.as_ref(), &drafter, a.draft.draft_tokens)?;
        eprintln!(
            "speculative decoding: {} drafter, {} tokens per round",
            drafter.kind(),
            a.draft.draft_tokens
        );
        Some(s)
    } else {
        None
    };
    match (&a.prompt, &a.prompts) {
        (Some(p), _) => single(
            a,
            &mut lm,
            teacher.as_mut(),
            speculation.as_mut(),
            soft.as_ref(),
            &pipelines,
            p,
        ),
        (None, Some(file)) => many(
            a,
            &mut lm,
            teacher.as_mut(),
            speculation.as_mut(),
            soft.as_ref(),
            &pipelines,
            file,
        ),
        (None, None) => bail!("give --prompt TEXT or --prompts FILE.jsonl"),
    }
}

fn request(
    a: &GenerateArgs,
    lm: &LoadedModel,
    pipelines: &PipelineSet,
    user: &str,
    system: Option<&str>,
    seed: u64,
) -> Result<GenerationRequest> {
    let pipeline = pipelines.choose(seed)?.clone();
    Ok(GenerationRequest {
        prompt: lm.prompt_tokens(user, system, a.raw)?,
        pipeline,
        seed,
        max_new_tokens: a.max_new_tokens,
        stop: a.stop.clone(),
        logprobs: a.logprobs,
    })
}

fn single(
    a: &GenerateArgs,
    lm: &mut LoadedModel,
    mut teacher: Option<&mut Teacher>,
    mut speculation: Option<&mut Speculation>,
    soft: Option<&SoftMode>,
    pipelines: &PipelineSet,
    prompt: &str,
) -> Result<()> {
    let reqs = (0..a.n)
        .map(|k| {
            request(
                a,
                lm,
                pipelines,
                prompt,
                a.system.as_deref(),
                a.seed + k as u64,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let stdout = std::io::stdout();
    let t0 = Instant::now();
    let mut gens = Vec::new();
    for (ci, chunk) in reqs.chunks(a.batch_size).enumerate() {
        let streaming = a.n == 1;
        let mut on_text = |_: usize, piece: &str| {
            if streaming {
                let mut o = stdout.lock();
                let _ = o.write_all(piece.as_bytes());
                let _ = o.flush();
            }
        };
        let jobs = chunk
            .iter()
            .map(|r| Job {
                request: r.clone(),
                user: prompt,
                system: a.system.as_deref(),
            })
            .collect();
        let g = run_batch(
            a,
            lm,
            Mode::of(teacher.as_deref_mut(), speculation.as_deref_mut(), soft),
            jobs,
            &mut on_text,
        )?;
        for (k, o) in g.iter().enumerate() {
            let i = ci * a.batch_size + k;
            if !streaming {
                println!(
                    "--- sample {i} (seed {}) ---\n{}",
                    a.seed + i as u64,
                    o.generation.text
                );
            }
            if let Some(opt) = &o.optimal {
                let s = &opt.summary;
                if streaming {
                    println!();
                }
                eprintln!(
                    "[sample {i}: mean α {:.3}, ESS_θ {:.3}, ESS_t {:.3}, ratio {:.3}, KL(q‖θ) {:.4}, KL(q‖t) {:.4}; {} bracket-end, {} forced steps of {}]",
                    s.alpha_mean, s.ess_theta_mean, s.ess_teacher_mean, s.ess_ratio_mean,
                    s.kl_q_theta_mean, s.kl_q_teacher_mean, s.bracket_end_steps, s.forced_steps, s.steps
                );
            }
            diagnostics(teacher.as_deref_mut(), &format!("prompt-s{i}"), o)?;
        }
        gens.extend(g);
    }
    if a.n == 1 {
        println!();
    }
    if speculation.is_some() {
        let mut total = SpeculationStats::default();
        gens.iter()
            .filter_map(|o| o.speculative.as_ref())
            .for_each(|s| total.add(s));
        eprintln!("{}", summary_line(&total));
    }
    let toks: usize = gens
        .iter()
        .map(|o| o.generation.usage.completion_tokens)
        .sum();
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "[{} tokens in {:.2}s, {:.1} tokens/s, finish: {:?}]",
        toks,
        secs,
        toks as f64 / secs.max(1e-9),
        gens.iter()
            .map(|o| o.generation.finish_reason)
            .collect::<Vec<_>>()
    );
    if let Some(out) = &a.output {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(out)
            .with_context(|| format!("opening {}", out.display()))?;
        for (k, g) in gens.iter().enumerate() {
            let seed = a.seed + k as u64;
            let rec = record(
                a,
                soft,
                pipelines,
                format!("prompt-s{k}"),
                prompt,
                a.system.as_deref(),
                seed,
                g,
            )?;
            write_record(&mut f, &rec).with_context(|| format!("writing {}", out.display()))?;
        }
    }
    Ok(())
}

/// Reads a prompts file; errors name the line.
fn read_prompts(path: &Path) -> Result<Vec<(String, PromptLine)>> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("{}: reading line {}", path.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let p: PromptLine = serde_json::from_str(&line).with_context(|| {
            format!(
                "{}: line {}: expected {{\"prompt\": string, \"id\"?, \"system_prompt\"?}}",
                path.display(),
                i + 1
            )
        })?;
        let id = match &p.id {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => format!("p{}", out.len()),
        };
        out.push((id, p));
    }
    Ok(out)
}

/// `(id)`s already in an output file; a torn last line from a crash is cut off first (its
/// record is generated again), so every record ends up in the file exactly once.
fn done_ids(out: &Path) -> Result<HashSet<String>> {
    let resumed = resume_jsonl(out)
        .context("the output file holds something else; refusing to append to it")?;
    if resumed.dropped_torn_line {
        eprintln!(
            "{}: dropped an incomplete last line (interrupted run)",
            out.display()
        );
    }
    Ok(resumed
        .records
        .into_iter()
        .filter_map(|r| r.record.id)
        .collect())
}

fn many(
    a: &GenerateArgs,
    lm: &mut LoadedModel,
    mut teacher: Option<&mut Teacher>,
    mut speculation: Option<&mut Speculation>,
    soft: Option<&SoftMode>,
    pipelines: &PipelineSet,
    file: &Path,
) -> Result<()> {
    let prompts = read_prompts(file)?;
    let done = match &a.output {
        Some(o) => done_ids(o)?,
        None => HashSet::new(),
    };
    // Every (prompt, sample) pair not yet written.
    let mut todo = Vec::new();
    for (pi, (id, _)) in prompts.iter().enumerate() {
        for k in 0..a.n {
            let rid = format!("{id}-s{k}");
            if !done.contains(&rid) {
                todo.push((pi, k, rid));
            }
        }
    }
    if !done.is_empty() {
        eprintln!(
            "resuming: {} of {} records already written",
            prompts.len() * a.n - todo.len(),
            prompts.len() * a.n
        );
    }
    let mut sink: Box<dyn Write> = match &a.output {
        Some(o) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(o)
                .with_context(|| format!("opening {}", o.display()))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let bar = indicatif::ProgressBar::new(todo.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} generations  {msg}  [{elapsed_precise} < {eta}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let t0 = Instant::now();
    let mut tokens = 0usize;
    let mut spec_total = SpeculationStats::default();
    for chunk in todo.chunks(a.batch_size) {
        let jobs = chunk
            .iter()
            .map(|(pi, k, _)| {
                let p = &prompts[*pi].1;
                let system = p.system_prompt.as_deref().or(a.system.as_deref());
                Ok(Job {
                    request: request(a, lm, pipelines, &p.prompt, system, a.seed + *k as u64)?,
                    user: &p.prompt,
                    system,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let gens = run_batch(
            a,
            lm,
            Mode::of(teacher.as_deref_mut(), speculation.as_deref_mut(), soft),
            jobs,
            &mut |_, _| {},
        )?;
        for ((pi, k, rid), g) in chunk.iter().zip(&gens) {
            let p = &prompts[*pi].1;
            let rec = record(
                a,
                soft,
                pipelines,
                rid.clone(),
                &p.prompt,
                p.system_prompt.as_deref().or(a.system.as_deref()),
                a.seed + *k as u64,
                g,
            )?;
            // Diagnostics first: a record in the output means its diagnostics are written.
            diagnostics(teacher.as_deref_mut(), rid, g)?;
            // One whole line per write, flushed: a crash leaves at most one torn line.
            write_record(sink.as_mut(), &rec)?;
            tokens += g.generation.usage.completion_tokens;
            if let Some(s) = &g.speculative {
                spec_total.add(s);
            }
        }
        bar.inc(chunk.len() as u64);
        let spec = if speculation.is_some() {
            format!(
                ", {:.1} % accepted, {:.2} tokens/forward",
                100.0 * spec_total.acceptance_rate(),
                spec_total.tokens_per_forward()
            )
        } else {
            String::new()
        };
        bar.set_message(format!(
            "{:.1} tokens/s{spec}",
            tokens as f64 / t0.elapsed().as_secs_f64().max(1e-9)
        ));
    }
    bar.finish();
    if speculation.is_some() {
        eprintln!("{}", summary_line(&spec_total));
    }
    Ok(())
}
