//! Training-step throughput on synthetic positions: what `adasamp bench-train` measures.
//!
//! A step is exactly the trainer's ([`crate::train::train`]): forward, [`crate::TruncatedLogitsLoss`],
//! backward and AdamW on one micro-batch, with the chosen [`Engine`] and thread count; evaluation
//! is off and the only checkpoint is written after the timed steps.

use std::path::Path;
use std::time::Instant;

use adasamp_sampling::{PipelineSpec, StageSpec};
use candle_core::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::SamplerConfig;
use crate::error::{NetsError, Result};
use crate::train::data::{Dataset, RowPrecision};
use crate::train::trainer::{train, Engine, StepMetrics, TrainConfig, TrainObserver};

/// `rows` synthetic positions over a vocabulary of `vocab` (one record), stored at `precision`:
/// LM-like logits — a Gaussian bulk `N(0, σ²)`, `σ ∈ [1.5, 3.5)` per row, with 32 random tokens
/// boosted by up to +12 — and targets of the pipeline temperature 0.8 → min_p 0.1 (the docs'
/// quality run). Stored as f16, a row holds ~12,300 distinct values at V = 49,152 (real rows of
/// the default model: 1,200–12,600, median ~8,900), which is what the fast engine's grouping
/// of equal logits sees; stored as f32 every value is distinct. The same `seed` gives the same
/// logits at either precision.
pub fn synthetic_dataset(
    vocab: usize,
    rows: usize,
    seed: u64,
    precision: RowPrecision,
) -> Result<Dataset> {
    if vocab == 0 || rows == 0 {
        return Err(NetsError::bad_request(
            "synthetic dataset",
            format!("{rows} rows × V {vocab}"),
            "needs at least one row and one token",
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut raw = Vec::with_capacity(rows * vocab);
    let mut generation = Vec::with_capacity(rows);
    for _ in 0..rows {
        let sigma: f64 = rng.random_range(1.5..3.5);
        let start = raw.len();
        raw.extend((0..vocab).map(|_| {
            // Box–Muller.
            let u1: f64 = rng.random::<f64>().max(1e-300);
            let u2: f64 = rng.random::<f64>();
            (sigma * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
        }));
        let row = &mut raw[start..];
        for k in 0..32 {
            let i = rng.random_range(0..vocab);
            row[i] += rng.random_range(2.0f32..12.0) * (1.0 - k as f32 / 32.0);
        }
        let best = (0..vocab)
            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
            .unwrap_or(0);
        generation.push(best as u32);
    }
    let spec = PipelineSpec {
        name: "t0.8_min_p0.1".into(),
        weight: 1.0,
        processors: vec![
            StageSpec::new("temperature", &[("temperature", 0.8)]),
            StageSpec::new("min_p", &[("min_p", 0.1)]),
        ],
    };
    let mut ds = Dataset::new(vocab, precision);
    ds.add_record("synthetic", &[0], &generation, &raw, &spec)?;
    Ok(ds)
}

/// Records the time of every completed step.
struct StepClock(Vec<Instant>);

impl TrainObserver for StepClock {
    fn step(&mut self, _: &StepMetrics) {
        self.0.push(Instant::now());
    }
}

/// Positions per second of `steps` optimizer steps of `batch` positions each (after one untimed
/// warm-up step), training `config` on `dataset` with `engine` on `threads` threads (CPU); the
/// run's files go to `scratch`. `dataset` needs `batch · (steps + 1)` positions.
pub fn positions_per_second(
    dataset: &Dataset,
    config: &SamplerConfig,
    engine: Engine,
    threads: usize,
    batch: usize,
    steps: u64,
    scratch: &Path,
) -> Result<f64> {
    positions_per_second_on(
        &Device::Cpu,
        dataset,
        config,
        engine,
        threads,
        batch,
        steps,
        scratch,
    )
}

/// [`positions_per_second`] with the sampler on `device` (the candle engine on a GPU: rows are
/// copied to it per micro-batch, as `adasamp train --device cuda` does).
#[allow(clippy::too_many_arguments)]
pub fn positions_per_second_on(
    device: &Device,
    dataset: &Dataset,
    config: &SamplerConfig,
    engine: Engine,
    threads: usize,
    batch: usize,
    steps: u64,
    scratch: &Path,
) -> Result<f64> {
    if steps == 0 || batch == 0 {
        return Err(NetsError::bad_request(
            "benchmark steps",
            format!("{steps} steps of {batch}"),
            "needs at least one step of one position",
        ));
    }
    let needed = batch * (steps as usize + 1);
    if dataset.num_rows() < needed {
        return Err(NetsError::bad_request(
            "benchmark dataset",
            dataset.num_rows(),
            format!(
                "{} steps of {batch} positions need {needed} positions",
                steps + 1
            ),
        ));
    }
    let cfg = TrainConfig {
        token_batch: batch,
        grad_accum: 1,
        warmup_steps: 0,
        epochs: 1,
        save_every: 0,
        eval_every: 0,
        eval_fraction: 0.0,
        threads,
        engine,
        stop_after: Some(steps + 1),
        ..TrainConfig::default()
    };
    let mut clock = StepClock(Vec::new());
    train(
        dataset,
        "benchmark",
        config,
        &cfg,
        device,
        scratch,
        false,
        &mut clock,
    )?;
    let (Some(first), Some(last)) = (clock.0.first(), clock.0.last()) else {
        return Err(NetsError::NoData {
            what: "timed benchmark steps".into(),
        });
    };
    let secs = last.duration_since(*first).as_secs_f64().max(1e-9);
    Ok((clock.0.len() - 1) as f64 * batch as f64 / secs)
}

/// Replay throughput against the backend's prefill of the same tokens (`adasamp bench-train`'s
/// replay row).
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayRate {
    /// Records replayed.
    pub records: usize,
    /// Positions replayed (rows with a target: one per generated token).
    pub positions: usize,
    /// Tokens fed to the model (prompt + generation minus its last token, per record).
    pub fed_tokens: usize,
    /// Seconds of the prefill reference (the fastest round): each record's fed tokens in one forward with
    /// last-position logits only, a fresh sequence per record.
    pub prefill_s: f64,
    /// Seconds of the replay into a cache directory ([`crate::train::cache::build`]:
    /// all-position logits, f16 rows, shard writes).
    pub replay_s: f64,
    /// Seconds of loading that cache back with the targets computed
    /// ([`crate::train::cache::load_dataset`]).
    pub load_s: f64,
}

impl ReplayRate {
    /// Prefill tokens per second.
    pub fn prefill_tokens_per_s(&self) -> f64 {
        self.fed_tokens as f64 / self.prefill_s.max(1e-9)
    }

    /// Replay (replay + load with targets) fed tokens per second.
    pub fn replay_tokens_per_s(&self) -> f64 {
        self.fed_tokens as f64 / (self.replay_s + self.load_s).max(1e-9)
    }

    /// Replay (replay + load with targets) positions per second.
    pub fn replay_positions_per_s(&self) -> f64 {
        self.positions as f64 / (self.replay_s + self.load_s).max(1e-9)
    }
}

/// `n` synthetic candidate records for timing a replay: chat prompts of a few dozen tokens and
/// `generation_len` generated token ids drawn (ChaCha8 from `seed`) from `0..vocab`, each
/// claiming the pipeline temperature 0.8 → min_p 0.1. The forward's cost does not depend on
/// which tokens are fed, so random generations time the replay as real ones do.
pub fn synthetic_records(
    n: usize,
    generation_len: usize,
    vocab: usize,
    seed: u64,
) -> Result<Vec<adasamp_engine::record::NumberedRecord>> {
    const PROMPTS: [&str; 4] = [
        "Write a short story about a lighthouse keeper who finds a message in a bottle.",
        "Explain how vaccines train the immune system, in simple terms for a teenager.",
        "List five practical tips for keeping a small vegetable garden healthy in summer.",
        "Describe the water cycle and why it matters for weather on every continent.",
    ];
    if vocab == 0 || generation_len == 0 {
        return Err(NetsError::bad_request(
            "synthetic records",
            format!("{generation_len} generated tokens over V {vocab}"),
            "need at least one generated token and one vocabulary entry",
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let tokens: Vec<u32> = (0..generation_len)
                .map(|_| rng.random_range(0..vocab as u32))
                .collect();
            let json = serde_json::json!({
                "id": format!("bench-{i}"),
                "prompt": PROMPTS[i % PROMPTS.len()],
                "generation": "",
                "generation_tokens": tokens,
                "sampler_info": {"name": "t0.8_min_p0.1", "config": {
                    "name": "t0.8_min_p0.1", "weight": 1.0,
                    "processors": [
                        {"name": "temperature", "params": {"temperature": 0.8}},
                        {"name": "min_p", "params": {"min_p": 0.1}}]}},
            });
            let record = serde_json::from_value(json).map_err(|e| NetsError::Serialize {
                what: "synthetic record".into(),
                reason: e.to_string(),
            })?;
            Ok(adasamp_engine::record::NumberedRecord {
                line: i + 1,
                record,
            })
        })
        .collect()
}

/// Feeds `tokens` to a fresh sequence of `lm` in one forward (last-position logits), then frees it.
fn prefill(lm: &mut adasamp_engine::LoadedModel, tokens: &[u32]) -> Result<()> {
    let seq = lm
        .model
        .new_sequence()
        .map_err(|e| NetsError::model("prefill: new sequence", e))?;
    let out = lm
        .model
        .forward(&[adasamp_engine::Feed::tokens(seq, tokens)]);
    lm.model.free_sequence(seq);
    out.map(|_| ())
        .map_err(|e| NetsError::model("prefill: forward", e))
}

/// Times the replay of `records` through `lm` (at most `max_seq_len` tokens each) exactly as
/// `adasamp train` replays them — [`crate::train::cache::build`] into `scratch` at `precision`,
/// then [`crate::train::cache::load_dataset`] — against the prefill of the same tokens, run just
/// before it; `rounds` times in turn (prefill, replay, load), keeping each phase's fastest round
/// (on a shared machine the least disturbed one). One untimed forward warms the model up first.
pub fn replay_rate(
    lm: &mut adasamp_engine::LoadedModel,
    records: &[adasamp_engine::record::NumberedRecord],
    max_seq_len: usize,
    precision: RowPrecision,
    rounds: usize,
    scratch: &Path,
) -> Result<ReplayRate> {
    use crate::train::cache;
    use crate::train::replay::record_tokens;

    // The fed tokens of every record, cut to the length cap as the replay cuts them.
    let mut fed = Vec::new();
    let mut positions = 0;
    for rec in records {
        let (mut tokens, generation) = record_tokens(lm, rec)?;
        if tokens.is_empty() || tokens.len() > max_seq_len || generation.is_empty() {
            continue;
        }
        let n = generation.len().min(max_seq_len - tokens.len() + 1);
        tokens.extend_from_slice(&generation[..n - 1]);
        positions += n;
        fed.push(tokens);
    }
    if fed.is_empty() {
        return Err(NetsError::NoData {
            what: "record with anything to replay".into(),
        });
    }
    prefill(lm, &fed[0])?;
    let key = cache::CacheKey {
        model_sha256: "bench".into(),
        data_sha256: "bench".into(),
        precision,
        max_seq_len,
    };
    let dir = cache::cache_dir(scratch, &key);
    let (mut prefill_s, mut replay_s, mut load_s) = (f64::INFINITY, f64::INFINITY, f64::INFINITY);
    let mut ds = None;
    for _ in 0..rounds.max(1) {
        let t0 = Instant::now();
        for tokens in &fed {
            prefill(lm, tokens)?;
        }
        prefill_s = prefill_s.min(t0.elapsed().as_secs_f64());
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| NetsError::io("cannot remove", &dir, e))?;
        }
        let t1 = Instant::now();
        let index = cache::build(
            &dir,
            &key,
            "bench",
            "bench",
            records,
            lm,
            &mut |_, _| {},
            max_seq_len,
        )?;
        replay_s = replay_s.min(t1.elapsed().as_secs_f64());
        let t2 = Instant::now();
        ds = Some(cache::load_dataset(&dir, &index, records)?);
        load_s = load_s.min(t2.elapsed().as_secs_f64());
    }
    let rows = ds.as_ref().map_or(0, Dataset::num_rows);
    if rows != positions {
        return Err(NetsError::shape(
            "replayed positions",
            positions.to_string(),
            rows.to_string(),
        ));
    }
    // Only a throwaway cache: failing to remove it is not an error.
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ReplayRate {
        records: fed.len(),
        positions,
        fed_tokens: fed.iter().map(Vec::len).sum(),
        prefill_s,
        replay_s,
        load_s,
    })
}
