//! `adasamp bench-train`: training throughput (positions per second) of the learned samplers, the
//! fast engine against the candle engine measured in the same run, with a PyTorch CPU reference
//! of the same step beside them (run from `benches/reference/train_step.py` when Python can
//! import torch, otherwise the issue's figures, labelled as not measured in this run).
//!
//! A step is the trainer's own: forward, TruncatedLogitsLoss, backward and AdamW on one
//! micro-batch of synthetic positions ([`adasamp_nets::train::bench`]).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use adasamp_nets::train::bench::{
    positions_per_second, replay_rate, synthetic_dataset, synthetic_records, ReplayRate,
};
use adasamp_nets::train::{Engine, RowPrecision};
use adasamp_nets::SamplerConfig;
use anyhow::{bail, Context, Result};
use clap::Args;

/// Options of `bench-train`.
#[derive(Debug, Args)]
pub struct BenchTrainArgs {
    /// Vocabulary size of the synthetic positions.
    #[arg(long, default_value_t = 49152)]
    pub vocab: usize,
    /// Positions per optimizer step (token batch).
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Thread counts (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub threads: Vec<usize>,
    /// Timed steps of the fast engine (after one warm-up step).
    #[arg(long, default_value_t = 3)]
    pub steps: u64,
    /// Timed steps of the candle engine (after one warm-up step).
    #[arg(long, default_value_t = 1)]
    pub candle_steps: u64,
    /// Sampler configuration files (default: configs/samplers/{local,simple_dynamic,
    /// sampling_network}.yaml when present, else the same configurations built in).
    #[arg(long, value_name = "CONFIG.yaml")]
    pub config: Vec<PathBuf>,
    /// Skip the candle engine.
    #[arg(long)]
    pub no_candle: bool,
    /// The PyTorch reference script (run with `python3` when torch imports).
    #[arg(long, default_value = "benches/reference/train_step.py")]
    pub pytorch_script: PathBuf,
    /// Smoke run: V = 2048, batch 4, one timed step, one thread.
    #[arg(long)]
    pub quick: bool,
    /// Write the table (markdown) to this file as well.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Skip the replay measurement (replay of candidate records vs prefill of the same tokens).
    #[arg(long)]
    pub no_replay: bool,
    /// Candidate records (JSONL) to replay (default: synthetic records, see --replay-records).
    #[arg(long, value_name = "RECORDS.jsonl")]
    pub replay_data: Option<PathBuf>,
    /// Synthetic records to replay when no --replay-data is given (chat prompts + 48 generated
    /// tokens each).
    #[arg(long, default_value_t = 12)]
    pub replay_records: usize,
    /// Rounds of (prefill, replay): each phase's fastest round is reported.
    #[arg(long, default_value_t = 3)]
    pub replay_rounds: usize,
    /// Base model for the replay (default: the default model).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Backend for the replay: auto, candle or llama.cpp.
    #[arg(long, default_value = "llama.cpp")]
    pub backend: adasamp_engine::BackendChoice,
}

/// The built-in configurations (names as in configs/samplers).
pub(crate) fn default_configs() -> Result<Vec<(String, SamplerConfig)>> {
    let builtin = [
        ("local", "architecture: local_probability_transform\nhidden: 64\n"),
        (
            "simple_dynamic",
            "architecture: simple_distribution_aware_transform\nhidden: 64\ndynamic_truncation: true\n",
        ),
        (
            "sampling_network",
            "architecture: sampling_network\nd_model: 32\nd_ff: 64\nn_blocks: 4\nn_heads: 4\nscale: true\n",
        ),
    ];
    builtin
        .iter()
        .map(|(name, yaml)| {
            let file = PathBuf::from("configs/samplers").join(format!("{name}.yaml"));
            let c = if file.is_file() {
                SamplerConfig::from_yaml_file(&file)?
            } else {
                SamplerConfig::from_yaml_str(yaml, name)?
            };
            Ok((name.to_string(), c))
        })
        .collect()
}

/// The issue's PyTorch CPU figures (2 threads, V = 49152, 16 positions per step, forward + loss
/// + backward + AdamW), measured on the development machine before this command existed.
fn issue_reference(c: &SamplerConfig) -> Option<f64> {
    match c {
        SamplerConfig::SimpleDistributionAwareTransform(_) => Some(12.3),
        SamplerConfig::SamplingNetwork(_) => Some(1.2),
        SamplerConfig::LocalProbabilityTransform(_) => None,
    }
}

/// The issue's targets at 2 threads: `(network, positions/s)`.
fn target(c: &SamplerConfig) -> Option<f64> {
    match c {
        SamplerConfig::SimpleDistributionAwareTransform(_) => Some(60.0),
        SamplerConfig::SamplingNetwork(_) => Some(6.0),
        SamplerConfig::LocalProbabilityTransform(_) => None,
    }
}

/// Runs the PyTorch reference for one configuration if Python can import torch: positions/s.
fn pytorch(
    args: &BenchTrainArgs,
    config_json: &str,
    threads: usize,
    batch: usize,
    vocab: usize,
    steps: u64,
) -> Option<f64> {
    if !args.pytorch_script.is_file() {
        return None;
    }
    let out = Command::new("python3")
        .arg(&args.pytorch_script)
        .args(["--config-json", config_json])
        .args(["--threads", &threads.to_string()])
        .args(["--batch", &batch.to_string()])
        .args(["--vocab", &vocab.to_string()])
        .args(["--steps", &steps.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(text.lines().last()?).ok()?;
    v.get("positions_per_s")?.as_f64()
}

/// Replays the records of `--replay-data` (or synthetic ones) through the base model and times
/// it against the prefill of the same tokens.
fn replay(args: &BenchTrainArgs, scratch: &std::path::Path) -> Result<ReplayRate> {
    let mut log = |m: &str| eprintln!("{m}");
    let mut lm = adasamp_engine::load(
        args.model.as_deref(),
        args.backend,
        adasamp_engine::LoadOptions::with_max_seq_len(None),
        &mut log,
    )?;
    let vocab = lm.model.info().vocab_size;
    let cap = lm.model.info().max_seq_len;
    let records = match &args.replay_data {
        Some(p) => adasamp_nets::train::read_records(p)
            .with_context(|| format!("--replay-data {}", p.display()))?,
        None => {
            let n = if args.quick { 2 } else { args.replay_records };
            synthetic_records(n, 48, vocab, 11)?
        }
    };
    eprintln!(
        "replay: {} records through {}",
        records.len(),
        lm.model.info().backend
    );
    Ok(replay_rate(
        &mut lm,
        &records,
        cap,
        RowPrecision::F16,
        if args.quick { 1 } else { args.replay_rounds },
        &scratch.join("replay"),
    )?)
}

/// Runs the benchmark and prints (and optionally writes) the markdown table.
pub fn run(args: &BenchTrainArgs) -> Result<()> {
    let (vocab, batch, threads, steps, candle_steps) = if args.quick {
        (2048, 4, vec![1], 1, 1)
    } else {
        (
            args.vocab,
            args.batch,
            args.threads.clone(),
            args.steps,
            args.candle_steps,
        )
    };
    if vocab == 0 || batch == 0 || steps == 0 || candle_steps == 0 || threads.contains(&0) {
        bail!("--vocab, --batch, --threads, --steps and --candle-steps must be ≥ 1");
    }
    let configs = if args.config.is_empty() {
        default_configs()?
    } else {
        args.config
            .iter()
            .map(|p| {
                let c = SamplerConfig::from_yaml_file(p)
                    .with_context(|| format!("--config {}", p.display()))?;
                let name = p
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| c.architecture().to_string());
                Ok((name, c))
            })
            .collect::<Result<Vec<_>>>()?
    };
    let rows = batch * (steps.max(candle_steps) as usize + 1);
    eprintln!("synthetic positions: {rows} × V {vocab} (temperature 0.8 → min_p 0.1 targets)");
    // The same logits stored as f16 (the replay cache's default: the fast engine groups equal
    // logits) and as f32 (all distinct: the engine's per-token speed).
    let dataset = synthetic_dataset(vocab, rows, 7, RowPrecision::F16)?;
    let dataset32 = synthetic_dataset(vocab, rows, 7, RowPrecision::F32)?;
    let scratch = std::env::temp_dir().join(format!("adasamp-bench-train-{}", std::process::id()));
    let mut table = String::new();
    writeln!(
        table,
        "Positions per second of one training step (forward + TruncatedLogitsLoss + backward + \
         AdamW, the trainer's own), V = {vocab}, {batch} positions per step, synthetic \
         LM-like rows; fast and candle measured in this run ({steps} and {candle_steps} timed \
         steps after a warm-up step). The fast engine on rows stored as f16 (the replay cache's \
         default: tokens with equal logits computed once; ~12,300 distinct values per row here) \
         and as f32 (every token computed); ratios as f16 / f32. PyTorch: \
         `benches/reference/train_step.py` in this run when torch imports, else the issue's \
         figures (2 threads, same step and sizes, *not this run*).\n"
    )?;
    writeln!(
        table,
        "| network | params | threads | fast pos/s, f16 rows | fast pos/s, f32 rows | candle pos/s | fast ÷ candle | PyTorch pos/s | fast ÷ PyTorch | target (2 threads, f16 rows) |"
    )?;
    writeln!(table, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")?;
    for (name, config) in &configs {
        let params = adasamp_nets::parameter_count(config)?;
        for &t in &threads {
            let dir = scratch.join(format!("{name}-{t}"));
            let fast = positions_per_second(
                &dataset,
                config,
                Engine::Fast,
                t,
                batch,
                steps,
                &dir.join("fast"),
            )?;
            let fast32 = positions_per_second(
                &dataset32,
                config,
                Engine::Fast,
                t,
                batch,
                steps,
                &dir.join("fast32"),
            )?;
            let candle = if args.no_candle {
                None
            } else {
                Some(positions_per_second(
                    &dataset,
                    config,
                    Engine::Candle,
                    t,
                    batch,
                    candle_steps,
                    &dir.join("candle"),
                )?)
            };
            let json = serde_json::to_string(config)?;
            let torch = match pytorch(args, &json, t, batch, vocab, steps) {
                Some(p) => Some((p, "this run")),
                None if t == 2 && vocab == 49152 && batch == 16 => {
                    issue_reference(config).map(|p| (p, "issue, not this run"))
                }
                None => None,
            };
            let fmt = |x: Option<f64>| x.map_or("—".to_string(), |v| format!("{v:.2}"));
            let ratio = |b: Option<f64>| {
                b.map_or("—".to_string(), |b| {
                    format!("{:.1}× / {:.1}×", fast / b, fast32 / b)
                })
            };
            let target = match (target(config), t) {
                (Some(goal), 2) if vocab == 49152 && batch == 16 => {
                    let verdict = |ok: Option<bool>| match ok {
                        Some(true) => "met",
                        Some(false) => "missed",
                        None => "not measured",
                    };
                    format!(
                        "≥ {goal}: {}; ≥ 20× candle: {}; ≥ 3× PyTorch: {}",
                        verdict(Some(fast >= goal)),
                        verdict(candle.map(|c| fast >= 20.0 * c)),
                        verdict(torch.map(|(p, _)| fast >= 3.0 * p)),
                    )
                }
                _ => String::new(),
            };
            let line = format!(
                "| {name} | {params} | {t} | {fast:.2} | {fast32:.2} | {} | {} | {} | {} | {target} |",
                fmt(candle),
                ratio(candle),
                torch.map_or("—".to_string(), |(p, src)| format!("{p:.2} ({src})")),
                ratio(torch.map(|(p, _)| p)),
            );
            eprintln!("{line}");
            writeln!(table, "{line}")?;
        }
    }
    if !args.no_replay {
        let r = replay(args, &scratch)?;
        let ratio = r.replay_tokens_per_s() / r.prefill_tokens_per_s();
        writeln!(
            table,
            "\nReplay ({} records, {} positions, {} fed tokens; `OMP_WAIT_POLICY={}`, \
             `GOMP_SPINCOUNT={}`; fastest of {} rounds): the \
             trainer's replay (all-position logits, f16 cache shards, then the cache loaded with \
             the targets of temperature 0.8 → min_p 0.1) against the prefill of the same tokens \
             (last-position logits), same model and process.\n",
            r.records,
            r.positions,
            r.fed_tokens,
            std::env::var("OMP_WAIT_POLICY").unwrap_or_else(|_| "unset".into()),
            std::env::var("GOMP_SPINCOUNT").unwrap_or_else(|_| "unset".into()),
            if args.quick { 1 } else { args.replay_rounds },
        )?;
        writeln!(
            table,
            "| prefill tokens/s | replay tokens/s | replay positions/s | replay ÷ prefill | replay s | load + targets s | target (≥ 50 % of prefill) |"
        )?;
        writeln!(table, "|---:|---:|---:|---:|---:|---:|---|")?;
        let line = format!(
            "| {:.1} | {:.1} | {:.1} | {:.0} % | {:.2} | {:.2} | {} |",
            r.prefill_tokens_per_s(),
            r.replay_tokens_per_s(),
            r.replay_positions_per_s(),
            ratio * 100.0,
            r.replay_s,
            r.load_s,
            if ratio >= 0.5 { "met" } else { "missed" },
        );
        eprintln!("{line}");
        writeln!(table, "{line}")?;
    }
    // Only checkpoints of throwaway runs: failing to remove them is not an error.
    let _ = std::fs::remove_dir_all(&scratch);
    print!("{table}");
    if let Some(p) = &args.output {
        adasamp_engine::files::write_atomic(p, table.as_bytes())?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}
