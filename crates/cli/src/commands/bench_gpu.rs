//! `adasamp bench-gpu`: one table of decode throughput (tokens/s at batch 1, 8, 32) for the
//! default model and random Llama-3.2-1B/3B-shaped models on each backend, on the GPU of a
//! `cuda` build (or the CPU, with small models, anywhere). Every row names the reference it is
//! compared with, measured in the same run. Each decode row also gives the share of a step taken
//! by the CPU sampling and by copying the step's `[batch, V]` f32 logits to the host. With
//! `--pytorch-reference`, the learned-sampler rows are also compared with PyTorch (fp32 eager and
//! bf16 `torch.compile`) run in the same call.

// Running the reference and its rows are used by the `cuda` build only (the CPU build measures
// no learned-sampler rows to compare with); its tests run on every build.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
mod pytorch;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use adasamp_engine::random_model::{ModelFormat, Preset, RandomModelSpec, WeightType};
use adasamp_engine::{generate, BackendChoice, ComputeDevice, GenerationRequest, LoadOptions};
use anyhow::{bail, Context, Result};
use clap::Args;

use self::pytorch::{ReferenceChoice, ReferenceCommand};
use super::bench_generate::{fixed_length_requests, greedy, PROMPTS};

/// Options of `bench-gpu`.
#[derive(Debug, Args)]
pub struct BenchGpuArgs {
    /// Models (comma-separated): `default` (the default model), `tiny`, `1b`, `3b` (random
    /// Llama models written into --random-dir once), or paths to .gguf files.
    #[arg(long, value_delimiter = ',', default_value = "default,1b,3b")]
    pub models: Vec<String>,
    /// Backends (comma-separated; the first is the reference of the others).
    #[arg(long, value_delimiter = ',', default_value = "llama.cpp,candle")]
    pub backends: Vec<BackendChoice>,
    /// Batch sizes (comma-separated; the first is the reference of the reference backend).
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    pub batch: Vec<usize>,
    /// Tokens generated per sequence.
    #[arg(long, default_value_t = 64)]
    pub new_tokens: usize,
    /// Where the models run: cpu, cuda or cuda:N (default: cuda:0 on a `cuda` build, else cpu).
    #[arg(long)]
    pub device: Option<ComputeDevice>,
    /// Vocabulary of the random models.
    #[arg(long, default_value_t = 128_256)]
    pub vocab: usize,
    /// Weight type of the random models (f16, q8_0, q4_0).
    #[arg(long, default_value = "q8_0")]
    pub random_weights: String,
    /// Directory of the random models (default: $ADASAMP_HOME/random-models).
    #[arg(long)]
    pub random_dir: Option<PathBuf>,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Timed calls per learned-sampler measurement (the SamplingNetwork's fused kernels against
    /// plain candle, on a GPU of a `cuda` build; 0 skips them).
    #[arg(long, default_value_t = 5)]
    pub sampler_iters: usize,
    /// Also compare the learned-sampler rows with the PyTorch reference of the SamplingNetwork
    /// (fp32 eager and bf16 torch.compile, forward and training step), run in the same call:
    /// the path of benches/reference/gpu_sampler.py, or `auto` (that script under the current
    /// directory if present and --python imports torch, else a note saying why not). Default:
    /// no PyTorch rows.
    #[arg(long)]
    pub pytorch_reference: Option<ReferenceChoice>,
    /// The Python interpreter of --pytorch-reference.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Write the table (markdown) here as well.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// One row of the table. Decode rows come from this command; rows of other measurements (the
/// learned samplers' fused kernels against plain candle, training positions/s) are the same
/// plain data, appended before the table is printed.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchRow {
    /// What is measured (`decode tok/s`, `sampler forward ms`, …).
    pub measure: String,
    /// The model (or the learned sampler and its V).
    pub model: String,
    /// The backend or implementation.
    pub backend: String,
    /// Batch size (sequences or positions).
    pub batch: usize,
    /// The measured value.
    pub value: f64,
    /// The same-run reference it is compared with, by name.
    pub reference: String,
    /// The reference's value, measured in the same run.
    pub reference_value: f64,
    /// `true` for times (ms), where less is faster; `false` for rates (tokens/s, positions/s).
    pub lower_is_better: bool,
    /// Share of a decode step spent in the CPU sampling (decode rows).
    pub sampling_share: Option<f64>,
    /// Share of a decode step spent copying the `[batch, V]` f32 logits to the host (decode rows).
    pub copy_share: Option<f64>,
}

impl BenchRow {
    /// How many times faster than the reference: `value / reference_value` for rates,
    /// `reference_value / value` for times.
    pub fn ratio(&self) -> f64 {
        if self.lower_is_better {
            self.reference_value / self.value
        } else {
            self.value / self.reference_value
        }
    }

    /// The row as a markdown table line.
    pub fn markdown(&self) -> String {
        let pct = |s: Option<f64>| s.map_or("—".to_string(), |s| format!("{:.1} %", 100.0 * s));
        format!(
            "| {} | {} | {} | {} | {} | {} ({}) | {:.2}× | {} | {} |",
            self.measure,
            self.model,
            self.backend,
            self.batch,
            figure(self.value),
            self.reference,
            figure(self.reference_value),
            self.ratio(),
            pct(self.sampling_share),
            pct(self.copy_share)
        )
    }
}

/// `x` with 4 to 5 significant digits (one decimal from 100 up, two from 1, three below):
/// 1420.3, 10.14, 0.256.
fn figure(x: f64) -> String {
    let decimals = if x.abs() >= 100.0 {
        1
    } else if x.abs() >= 1.0 {
        2
    } else {
        3
    };
    format!("{x:.decimals$}")
}

/// The table's header lines.
pub const TABLE_HEADER: &str = "| measure | model | backend | batch | value | same-run reference (value) | ratio (× faster) | CPU sampling share of a step | logits copy share of a step |\n|---|---|---|---:|---:|---|---:|---:|---:|";

/// One decode measurement before its reference is known.
struct Decode {
    model: String,
    backend: String,
    batch: usize,
    tokens_per_s: f64,
    sampling_share: f64,
    copy_share: f64,
}

/// Runs the benchmark.
pub fn run(a: &BenchGpuArgs) -> Result<()> {
    if a.batch.is_empty() || a.batch.contains(&0) || a.new_tokens == 0 {
        bail!("--batch sizes and --new-tokens must be at least 1");
    }
    if a.backends.is_empty() || a.models.is_empty() {
        bail!("--backends and --models must name at least one");
    }
    let device = match a.device {
        Some(d) => d.check_built()?,
        None if ComputeDevice::cuda_built() => ComputeDevice::Cuda(0),
        None => ComputeDevice::Cpu,
    };
    let random_dir = a
        .random_dir
        .clone()
        .unwrap_or_else(|| adasamp_engine::fetch::home().join("random-models"));
    let weights = WeightType::parse(&a.random_weights)?;
    let max_batch = a.batch.iter().copied().max().unwrap_or(1);
    let skipped = sampler_rows_skipped(device, a.sampler_iters);
    // Resolved before the decode rows, so that a wrong path fails at once (also where there is
    // nothing to compare with).
    if let Some(choice) = &a.pytorch_reference {
        pytorch::check_script(choice).map_err(anyhow::Error::msg)?;
    }
    let reference = match (&a.pytorch_reference, skipped) {
        (None, _) => Ok(None),
        (Some(_), Some(why)) => Err(format!(
            "PyTorch reference not run: no learned-sampler rows to compare with ({why})"
        )),
        (Some(choice), None) => {
            let cwd = std::env::current_dir().context("the current directory")?;
            pytorch::resolve(choice, &a.python, &cwd)
                .map_err(anyhow::Error::msg)?
                .map(Some)
        }
    };
    eprintln!("bench-gpu on {device}");
    let mut decodes = Vec::new();
    for m in &a.models {
        let (label, path) = model_path(m, a.vocab, weights, &random_dir)?;
        for &backend in &a.backends {
            let opts = LoadOptions {
                max_seq_len: Some(256 + a.new_tokens),
                max_sequences: Some(max_batch),
                threads: a.threads,
                device,
                ..Default::default()
            };
            let mut lm = adasamp_engine::load(path.as_deref(), backend, opts, &mut |m: &str| {
                eprintln!("{m}")
            })
            .with_context(|| format!("loading {label} on {backend:?}"))?;
            let backend_name = lm.model.info().backend.to_string();
            let vocab = lm.model.info().vocab_size;
            // Warm-up (first-touch allocations, kernel JIT, caches).
            let warm = GenerationRequest {
                prompt: lm.prompt_tokens(PROMPTS[0], None, false)?,
                pipeline: greedy(),
                seed: 0,
                max_new_tokens: 4,
                stop: vec![],
                logprobs: 0,
            };
            generate(lm.model.as_mut(), &lm.tokenizer, vec![warm], &mut |_, _| {})?;
            let bar = indicatif::ProgressBar::new(a.batch.len() as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} {bar:20} {pos}/{len} batch sizes [{elapsed_precise}]",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_message(format!("{label} on {backend_name}"));
            for &b in &a.batch {
                let reqs = fixed_length_requests(&lm, &greedy(), b, a.new_tokens)?;
                let (gens, t) = generate(lm.model.as_mut(), &lm.tokenizer, reqs, &mut |_, _| {})?;
                let generated: usize = gens.iter().map(|g| g.usage.completion_tokens).sum();
                let busy = (t.decode + t.sampling).as_secs_f64().max(1e-9);
                let steps = (generated as f64 / b as f64).max(1.0);
                let copy = logits_copy_seconds(device, b, vocab)?;
                decodes.push(Decode {
                    model: label.clone(),
                    backend: backend_name.clone(),
                    batch: b,
                    tokens_per_s: generated as f64 / busy,
                    sampling_share: t.sampling.as_secs_f64() / busy,
                    copy_share: (copy * steps / busy).min(1.0),
                });
                bar.inc(1);
            }
            bar.finish_and_clear();
        }
    }
    let mut rows = decode_rows(&decodes, device);
    let (sampler, mut notes) = match (skipped, &reference) {
        (Some(_), _) => (vec![], vec![]),
        (None, Ok(command)) => sampler_rows(device, a.sampler_iters, command.as_ref())?,
        (None, Err(_)) => sampler_rows(device, a.sampler_iters, None)?,
    };
    if let Err(note) = reference {
        notes.push(note);
    }
    rows.extend(sampler);
    let mut table = String::new();
    writeln!(table, "{TABLE_HEADER}")?;
    for r in &rows {
        writeln!(table, "{}", r.markdown())?;
    }
    for n in notes {
        writeln!(table, "\n{n}")?;
    }
    print!("{table}");
    if let Some(out) = &a.output {
        adasamp_engine::files::write_atomic(out, table.as_bytes())?;
    }
    Ok(())
}

/// Why the learned-sampler rows are not measured for `device` and `iters`, or `None` when they
/// are (a GPU of a `cuda` build, at least one timed call).
fn sampler_rows_skipped(device: ComputeDevice, iters: usize) -> Option<&'static str> {
    if !cfg!(feature = "cuda") {
        Some("this build has no CUDA support")
    } else if device == ComputeDevice::Cpu {
        Some("the device is the CPU")
    } else if iters == 0 {
        Some("--sampler-iters is 0")
    } else {
        None
    }
}

/// The learned-sampler rows on a GPU: the reference SamplingNetwork's forward at V = 128,256
/// (batch 1 / 16 / 64) and its training step at V = 49,152 with 32 positions, fused kernels
/// against plain candle on the same device in the same run, plus notes for what has no fused
/// figure; with `pytorch`, every fused figure also against the PyTorch reference's fp32 eager
/// and bf16 compiled figures of the same measurement, run after the fused ones. Empty on the
/// CPU or for `iters` = 0.
#[cfg(feature = "cuda")]
fn sampler_rows(
    device: ComputeDevice,
    iters: usize,
    pytorch: Option<&ReferenceCommand>,
) -> Result<(Vec<BenchRow>, Vec<String>)> {
    use adasamp_nets::gpu::bench::{FORWARD_BATCHES, FORWARD_VOCAB, TRAIN_POSITIONS, TRAIN_VOCAB};
    use pytorch::{FusedFigure, FusedKind, ReferenceSetup};
    if sampler_rows_skipped(device, iters).is_some() {
        return Ok((vec![], vec![]));
    }
    let (name, config) = super::bench_train::default_configs()?
        .into_iter()
        .find(|(n, _)| n == "sampling_network")
        .context("the built-in sampling_network configuration")?;
    let scratch = adasamp_engine::fetch::home().join("bench-gpu-scratch");
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let measured = adasamp_nets::gpu::gpu_bench_rows(&device.candle()?, &config, iters, &scratch)?;
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut figures = Vec::new();
    for r in measured {
        let lower_is_better = r.unit == "ms";
        let measure = format!(
            "learned sampler, {} ({} is better)",
            r.unit,
            if lower_is_better { "lower" } else { "higher" }
        );
        let model = format!("{name}: {}", r.what);
        match r.fused {
            Some(fused) => {
                figures.push(FusedFigure {
                    measure: measure.clone(),
                    model: model.clone(),
                    kind: match r.batch {
                        Some(b) if lower_is_better => FusedKind::ForwardMs(b),
                        _ => FusedKind::TrainPositionsPerS(TRAIN_POSITIONS),
                    },
                    value: fused,
                });
                rows.push(BenchRow {
                    measure,
                    model,
                    backend: "fused kernels".into(),
                    batch: r.batch.unwrap_or(TRAIN_POSITIONS),
                    value: fused,
                    reference: r.reference_name.into(),
                    reference_value: r.reference,
                    lower_is_better,
                    sampling_share: None,
                    copy_share: None,
                })
            }
            None => notes.push(format!(
                "{name}: {}: {} {:.1} {} (no fused implementation to compare)",
                r.what, r.reference_name, r.reference, r.unit
            )),
        }
    }
    if let Some(command) = pytorch {
        let setup = ReferenceSetup {
            config_json: serde_json::to_string(&config)?,
            forward_vocab: FORWARD_VOCAB,
            batches: FORWARD_BATCHES.to_vec(),
            train_vocab: TRAIN_VOCAB,
            train_positions: TRAIN_POSITIONS,
            iters,
        };
        eprintln!("PyTorch reference: {command}");
        let reference = command.run(&setup)?;
        rows.extend(pytorch::pytorch_rows(&figures, &reference).map_err(anyhow::Error::msg)?);
        notes.push(pytorch::source_note(command, &reference));
    }
    Ok((rows, notes))
}

/// Without the `cuda` feature there are no fused kernels to measure.
#[cfg(not(feature = "cuda"))]
fn sampler_rows(
    _device: ComputeDevice,
    _iters: usize,
    _pytorch: Option<&ReferenceCommand>,
) -> Result<(Vec<BenchRow>, Vec<String>)> {
    Ok((vec![], vec![]))
}

/// The label and path of a `--models` entry; random presets are written into `dir` on first use.
fn model_path(
    m: &str,
    vocab: usize,
    weights: WeightType,
    dir: &Path,
) -> Result<(String, Option<PathBuf>)> {
    if m == "default" {
        return Ok(("default (SmolLM2-135M Q4_1)".into(), None));
    }
    if let Ok(preset) = Preset::parse(m) {
        let spec = RandomModelSpec {
            preset,
            vocab,
            format: ModelFormat::Gguf,
            weights,
            seed: 0,
        };
        spec.validate()?;
        let path = dir.join(format!(
            "random-llama-{}-v{vocab}-{}.gguf",
            preset.name(),
            weights.name()
        ));
        if !path.is_file() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            super::model::write_random_model(&spec, &path)?;
        }
        let label = format!("random {} ({}, V {vocab})", preset.name(), weights.name());
        return Ok((label, Some(path)));
    }
    let p = PathBuf::from(m);
    if !p.is_file() {
        bail!("--models entry `{m}`: not default, tiny, 1b, 3b or an existing .gguf file");
    }
    Ok((m.to_string(), Some(p)))
}

/// Seconds to copy one step's `[batch, vocab]` f32 logits from `device` to a host vector (the
/// median of 21 copies after a warm-up). On the CPU this is a host-to-host copy.
fn logits_copy_seconds(device: ComputeDevice, batch: usize, vocab: usize) -> Result<f64> {
    let dev = device.candle()?;
    let t = candle_core::Tensor::zeros((batch, vocab), candle_core::DType::F32, &dev)?;
    let _ = t.to_vec2::<f32>()?;
    let mut times: Vec<f64> = (0..21)
        .map(|_| -> Result<f64> {
            let t0 = Instant::now();
            let v = t.to_vec2::<f32>()?;
            let s = t0.elapsed().as_secs_f64();
            std::hint::black_box(v);
            Ok(s)
        })
        .collect::<Result<_>>()?;
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Decode rows with their references: the first backend of a model is compared with its own
/// first batch size (batch scaling); every other backend with the first backend at the same
/// batch size.
fn decode_rows(decodes: &[Decode], device: ComputeDevice) -> Vec<BenchRow> {
    decodes
        .iter()
        .map(|d| {
            let same_model = decodes.iter().filter(|r| r.model == d.model);
            let first_backend = same_model.clone().next().map(|r| r.backend.clone());
            let reference = if first_backend.as_deref() == Some(d.backend.as_str()) {
                same_model.clone().find(|r| r.backend == d.backend)
            } else {
                same_model
                    .clone()
                    .find(|r| Some(&r.backend) == first_backend.as_ref() && r.batch == d.batch)
            }
            .unwrap_or(d);
            BenchRow {
                measure: "decode tok/s".into(),
                model: d.model.clone(),
                backend: format!("{} on {device}", d.backend),
                batch: d.batch,
                value: d.tokens_per_s,
                reference: format!("{}, batch {}", reference.backend, reference.batch),
                reference_value: reference.tokens_per_s,
                lower_is_better: false,
                sampling_share: Some(d.sampling_share),
                copy_share: Some(d.copy_share),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_keep_four_significant_digits() {
        assert_eq!(figure(1420.31), "1420.3");
        assert_eq!(figure(10.144), "10.14");
        assert_eq!(figure(0.2561), "0.256");
    }

    fn d(backend: &str, batch: usize, tps: f64) -> Decode {
        Decode {
            model: "m".into(),
            backend: backend.into(),
            batch,
            tokens_per_s: tps,
            sampling_share: 0.1,
            copy_share: 0.01,
        }
    }

    #[test]
    fn references_are_batch_one_of_the_first_backend_or_the_first_backend_at_the_same_batch() {
        let rows = decode_rows(
            &[
                d("llama.cpp", 1, 100.0),
                d("llama.cpp", 8, 400.0),
                d("candle", 1, 50.0),
                d("candle", 8, 100.0),
            ],
            ComputeDevice::Cpu,
        );
        let refs: Vec<(&str, f64)> = rows
            .iter()
            .map(|r| (r.reference.as_str(), r.ratio()))
            .collect();
        assert_eq!(
            refs,
            vec![
                ("llama.cpp, batch 1", 1.0),
                ("llama.cpp, batch 1", 4.0),
                ("llama.cpp, batch 1", 0.5),
                ("llama.cpp, batch 8", 0.25),
            ]
        );
        assert!(
            rows[1].markdown().contains("| 4.00× | 10.0 % | 1.0 % |"),
            "{}",
            rows[1].markdown()
        );
    }
}
