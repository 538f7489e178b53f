//! `xtc` (exclude top choices).

use rand_chacha::ChaCha20Rng;

use crate::error::Result;
use crate::rng;
use crate::row::Row;
use crate::spec::ParamReader;
use crate::stage::{state_mismatch, Context, Stage, StageState};

/// llama.cpp XTC: with probability π (own seeded RNG), remove every token with `p ≥ threshold`
/// except the least likely of them; a no-op when fewer than two tokens reach the threshold, when
/// `threshold > 0.5`, or when fewer than `min_keep` tokens would remain.
///
/// The uniform deciding a step is drawn ahead (`pending`): `apply` reads it, `accept` draws the
/// next one if `apply` used it — so the stream is the same as drawing in `apply`, and applying
/// twice before an `accept` decides the same way twice.
#[derive(Debug, Clone)]
pub struct Xtc {
    /// Probability threshold.
    pub threshold: f64,
    /// Chance π of acting at a step.
    pub probability: f64,
    /// Minimum number of tokens that must remain.
    pub min_keep: usize,
    seed: u64,
    rng: ChaCha20Rng,
    /// The uniform the next `apply` uses.
    pending: f64,
    /// Whether an `apply` used `pending` since the last `accept`.
    used: bool,
    ids: Vec<u32>,
    vals: Vec<f32>,
    entries: Vec<usize>,
}

impl Xtc {
    /// The stage name in pipeline files.
    pub const NAME: &'static str = "xtc";

    /// Reads `{threshold ∈ [0, 1], probability ∈ [0, 1], seed (default 0), min_tokens_to_keep}`.
    pub fn from_params(p: &mut ParamReader) -> Result<Self> {
        let threshold = p.f64_checked(
            "threshold",
            Some(0.1),
            |v| (0.0..=1.0).contains(&v),
            "must be in [0, 1]",
        )?;
        let probability = p.f64_checked(
            "probability",
            Some(0.5),
            |v| (0.0..=1.0).contains(&v),
            "must be in [0, 1]",
        )?;
        let seed = p.u64_or("seed", 0)?;
        let min_keep = p.min_keep()?;
        let mut rng = rng::seeded(seed, 0);
        Ok(Self {
            threshold,
            probability,
            min_keep,
            seed,
            pending: rng::uniform(&mut rng),
            used: false,
            rng,
            ids: Vec::new(),
            vals: Vec::new(),
            entries: Vec::new(),
        })
    }
}

impl Stage for Xtc {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn apply(&mut self, row: &mut Row, _: &Context<'_>) -> Result<()> {
        if self.probability <= 0.0 || self.threshold > 0.5 || row.kept() < 2 {
            return Ok(());
        }
        self.used = true;
        if self.pending >= self.probability {
            return Ok(());
        }
        // p ≥ threshold ⇔ z ≥ lse + ln(threshold)
        let t = (row.lse() + self.threshold.ln()) as f32;
        // At most 1/threshold tokens reach it: gather their positions, not the whole row.
        self.ids.clear();
        self.vals.clear();
        crate::math::gather_ge(row.values(), t, &mut self.ids, &mut self.vals);
        if self.ids.len() < 2 {
            return Ok(());
        }
        let least = self.vals.iter().copied().fold(f32::INFINITY, f32::min);
        self.entries.clear();
        self.entries.extend(
            self.ids
                .iter()
                .zip(&self.vals)
                .filter(|(_, &v)| v > least)
                .map(|(&i, _)| i as usize),
        );
        if row.kept() - self.entries.len() < self.min_keep {
            return Ok(());
        }
        row.remove_entries(&self.entries);
        Ok(())
    }
    fn accept(&mut self, _token: u32) {
        if self.used {
            self.pending = rng::uniform(&mut self.rng);
            self.used = false;
        }
    }
    fn reset(&mut self) {
        self.rng = rng::seeded(self.seed, 0);
        self.pending = rng::uniform(&mut self.rng);
        self.used = false;
    }
    fn snapshot(&self) -> StageState {
        StageState::Rng {
            word_pos: self.rng.get_word_pos(),
            pending: self.pending,
            used: self.used,
        }
    }
    fn restore(&mut self, state: &StageState) -> Result<()> {
        match state {
            StageState::Rng {
                word_pos,
                pending,
                used,
            } => {
                self.rng.set_word_pos(*word_pos);
                self.pending = *pending;
                self.used = *used;
                Ok(())
            }
            other => Err(state_mismatch(self.name(), "rng", other)),
        }
    }
    fn clone_box(&self) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}
