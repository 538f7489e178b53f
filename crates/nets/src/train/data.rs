//! The training set in memory: raw logits rows (the sampler's input) and their targets (the
//! record's pipeline applied to the row with the record's token history), grouped by record.
//!
//! Raw rows are stored as f16 (half the memory and disk of f32; replayed logits of a small LM are
//! far inside f16's range) or f32. Targets are always computed from the *stored* row, so input and
//! target agree exactly, and are kept sparse (the kept token ids and their logits) when the
//! pipeline keeps fewer than half the vocabulary — for truncating pipelines a few hundred bytes
//! per row instead of 4·V.

use adasamp_sampling::row::validate_logits;
use adasamp_sampling::{Context, Pipeline, PipelineSpec, Row};
use half::f16;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{NetsError, Result};
use crate::fast::TargetRow;

/// A target row: the pipeline's output logits, `-inf` at removed tokens.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// Only the kept tokens (ascending ids) and their logits; every other token is `-inf`.
    Sparse {
        /// Kept token ids, ascending.
        ids: Vec<u32>,
        /// Their target logits.
        logits: Vec<f32>,
    },
    /// The whole row.
    Dense(Vec<f32>),
}

impl Target {
    /// From a dense row (sparse when fewer than half the entries are finite).
    pub fn from_dense(row: &[f32]) -> Self {
        let kept = row.iter().filter(|v| **v > f32::NEG_INFINITY).count();
        if kept * 2 < row.len() {
            let (ids, logits) = row
                .iter()
                .enumerate()
                .filter(|(_, v)| **v > f32::NEG_INFINITY)
                .map(|(i, v)| (i as u32, *v))
                .unzip();
            Target::Sparse { ids, logits }
        } else {
            Target::Dense(row.to_vec())
        }
    }

    /// Writes the dense row into `out` (length V).
    pub fn write_dense(&self, out: &mut [f32]) {
        match self {
            Target::Dense(v) => out.copy_from_slice(v),
            Target::Sparse { ids, logits } => {
                out.fill(f32::NEG_INFINITY);
                for (&i, &l) in ids.iter().zip(logits) {
                    out[i as usize] = l;
                }
            }
        }
    }

    /// The target as the fast training engine's row view.
    pub fn as_row(&self) -> TargetRow<'_> {
        match self {
            Target::Dense(v) => TargetRow::Dense(v),
            Target::Sparse { ids, logits } => TargetRow::Sparse { ids, logits },
        }
    }

    /// Whether token `id` is kept (finite) in the target.
    pub fn keeps(&self, id: u32) -> bool {
        match self {
            Target::Dense(v) => v.get(id as usize).is_some_and(|x| *x > f32::NEG_INFINITY),
            Target::Sparse { ids, .. } => ids.binary_search(&id).is_ok(),
        }
    }
}

/// Storage precision of raw rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RowPrecision {
    /// IEEE half precision (default).
    #[default]
    F16,
    /// Single precision.
    F32,
}

impl RowPrecision {
    /// `f16` or `f32`.
    pub fn name(self) -> &'static str {
        match self {
            RowPrecision::F16 => "f16",
            RowPrecision::F32 => "f32",
        }
    }

    /// Parses `f16` / `f32`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "f16" => Ok(RowPrecision::F16),
            "f32" => Ok(RowPrecision::F32),
            other => Err(NetsError::bad_request(
                "row precision",
                other,
                "expected f16 or f32",
            )),
        }
    }
}

#[derive(Clone, Debug)]
enum RawRows {
    F16(Vec<f16>),
    F32(Vec<f32>),
}

/// The rows of one record.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordSpan {
    /// The record's id.
    pub id: String,
    /// First row index.
    pub start: usize,
    /// Number of rows (= generated tokens replayed).
    pub len: usize,
}

/// Raw rows, targets and record spans.
#[derive(Clone, Debug)]
pub struct Dataset {
    vocab: usize,
    raw: RawRows,
    targets: Vec<Target>,
    records: Vec<RecordSpan>,
    /// Rows whose generated token the target removes (f16 rounding at a threshold, a random
    /// stage like XTC, or records sampled by a different pipeline than they claim).
    pub tokens_outside_target: usize,
}

impl Dataset {
    /// An empty dataset of vocabulary `vocab` storing rows at `precision`.
    pub fn new(vocab: usize, precision: RowPrecision) -> Self {
        Self {
            vocab,
            raw: match precision {
                RowPrecision::F16 => RawRows::F16(Vec::new()),
                RowPrecision::F32 => RawRows::F32(Vec::new()),
            },
            targets: Vec::new(),
            records: Vec::new(),
            tokens_outside_target: 0,
        }
    }

    /// Adds one record: `raw_rows` holds `generation.len()` rows of V raw logits, row `i`
    /// predicting `generation[i]` after `prompt + generation[..i]`. The target of row `i` is
    /// `pipeline` applied with that history (`prompt_len` = `prompt.len()`); the pipeline then
    /// accepts `generation[i]`, so stateful stages follow the real sequence.
    pub fn add_record(
        &mut self,
        id: &str,
        prompt: &[u32],
        generation: &[u32],
        raw_rows: &[f32],
        pipeline: &PipelineSpec,
    ) -> Result<()> {
        let v = self.vocab;
        if raw_rows.len() != generation.len() * v {
            return Err(NetsError::shape(
                format!("raw rows of record `{id}`"),
                format!("{} generated tokens × V {v} values", generation.len()),
                raw_rows.len().to_string(),
            ));
        }
        if let Some(&bad) = generation.iter().find(|&&t| t as usize >= v) {
            return Err(NetsError::bad_request(
                format!("generated token of record `{id}`"),
                bad,
                format!("outside the vocabulary (V = {v})"),
            ));
        }
        let mut pipe =
            Pipeline::from_spec(pipeline.clone()).map_err(|source| NetsError::Target {
                id: id.to_string(),
                position: 0,
                source: Box::new(source),
            })?;
        pipe.reset();
        let mut history = prompt.to_vec();
        let mut stored = vec![0f32; v];
        let mut out = vec![0f32; v];
        let mut row = Row::new();
        let start = self.targets.len();
        for (i, &tok) in generation.iter().enumerate() {
            let src = &raw_rows[i * v..(i + 1) * v];
            let replayed = || format!("replayed row of record `{id}`");
            validate_logits(src, i).map_err(|e| NetsError::logits(replayed(), e))?;
            match &mut self.raw {
                RawRows::F16(buf) => {
                    for (s, &x) in stored.iter_mut().zip(src) {
                        let h = f16::from_f32(x);
                        buf.push(h);
                        *s = h.to_f32();
                    }
                }
                RawRows::F32(buf) => {
                    buf.extend_from_slice(src);
                    stored.copy_from_slice(src);
                }
            }
            // As stored (f16 overflows a huge finite logit to infinity).
            validate_logits(&stored, i)
                .map_err(|e| NetsError::logits(replayed() + " as stored", e))?;
            let ctx = Context::new(&history, prompt.len());
            pipe.apply_dense(&stored, i, &ctx, &mut row, &mut out)
                .map_err(|source| NetsError::Target {
                    id: id.to_string(),
                    position: i,
                    source: Box::new(source),
                })?;
            let target = Target::from_dense(&out);
            if !target.keeps(tok) {
                self.tokens_outside_target += 1;
            }
            self.targets.push(target);
            pipe.accept(tok);
            history.push(tok);
        }
        self.records.push(RecordSpan {
            id: id.to_string(),
            start,
            len: generation.len(),
        });
        Ok(())
    }

    /// Vocabulary size V.
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// Number of rows (positions).
    pub fn num_rows(&self) -> usize {
        self.targets.len()
    }

    /// The records' row spans, in insertion order.
    pub fn records(&self) -> &[RecordSpan] {
        &self.records
    }

    /// Storage precision of raw rows.
    pub fn precision(&self) -> RowPrecision {
        match self.raw {
            RawRows::F16(_) => RowPrecision::F16,
            RawRows::F32(_) => RowPrecision::F32,
        }
    }

    /// Writes raw row `i` (as stored) into `out` (length V).
    pub fn raw_row(&self, i: usize, out: &mut [f32]) {
        let v = self.vocab;
        match &self.raw {
            RawRows::F16(buf) => {
                for (o, h) in out.iter_mut().zip(&buf[i * v..(i + 1) * v]) {
                    *o = h.to_f32();
                }
            }
            RawRows::F32(buf) => out.copy_from_slice(&buf[i * v..(i + 1) * v]),
        }
    }

    /// Row `i`'s raw logits as stored, when the rows are stored as f16 (`None` for f32 rows).
    pub fn raw_row_f16(&self, i: usize) -> Option<&[f16]> {
        let v = self.vocab;
        match &self.raw {
            RawRows::F16(buf) => Some(&buf[i * v..(i + 1) * v]),
            RawRows::F32(_) => None,
        }
    }

    /// Target of row `i`.
    pub fn target(&self, i: usize) -> &Target {
        &self.targets[i]
    }

    /// Splits the rows by record into (train rows, eval rows): `ceil(eval_fraction · records)`
    /// records (at least one when the fraction is > 0, and never all of them), chosen by a
    /// ChaCha8 shuffle of the record indices seeded with `seed`, go to eval. Both lists are in
    /// ascending row order.
    pub fn split(&self, eval_fraction: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
        if !(0.0..1.0).contains(&eval_fraction) {
            return Err(NetsError::bad_request(
                "eval fraction",
                eval_fraction,
                "must be in [0, 1)",
            ));
        }
        let n = self.records.len();
        let mut n_eval = (eval_fraction * n as f64).ceil() as usize;
        if n_eval >= n {
            n_eval = n.saturating_sub(1);
        }
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_e7a1_0000_0001);
        order.shuffle(&mut rng);
        let mut is_eval = vec![false; n];
        for &r in &order[..n_eval] {
            is_eval[r] = true;
        }
        let (mut train, mut eval) = (Vec::new(), Vec::new());
        for (r, span) in self.records.iter().enumerate() {
            let dst = if is_eval[r] { &mut eval } else { &mut train };
            dst.extend(span.start..span.start + span.len);
        }
        Ok((train, eval))
    }
}
