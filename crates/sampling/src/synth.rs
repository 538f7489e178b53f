//! Deterministic synthetic logits rows for tests and benchmarks: heavy-tailed (LM-like), flat,
//! one dominant token, pre-masked.

use crate::rng;

/// Shape of a synthetic row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    /// `2·N(0,1)` bulk plus ~20 tokens boosted 5–12 above it: like a language model's logits.
    HeavyTailed,
    /// Near-uniform: `0.01·N(0,1)`.
    Flat,
    /// One token 25 above a `1.5·N(0,1)` bulk.
    Dominant,
    /// Heavy-tailed with 30% of the entries `-inf` (never the arg-max).
    Masked,
}

impl RowKind {
    /// All kinds.
    pub const ALL: [RowKind; 4] = [
        RowKind::HeavyTailed,
        RowKind::Flat,
        RowKind::Dominant,
        RowKind::Masked,
    ];

    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            RowKind::HeavyTailed => "heavy-tailed",
            RowKind::Flat => "flat",
            RowKind::Dominant => "dominant",
            RowKind::Masked => "masked",
        }
    }
}

fn normal(r: &mut rng::ChaCha20Rng) -> f32 {
    // Box–Muller on two uniforms in (0, 1].
    let u1 = 1.0 - rng::uniform(r);
    let u2 = rng::uniform(r);
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// A synthetic logits row of `vocab` entries, reproducible for `seed`.
pub fn row(kind: RowKind, vocab: usize, seed: u64) -> Vec<f32> {
    let mut r = rng::seeded(seed, 7);
    let mut z: Vec<f32> = match kind {
        RowKind::Flat => (0..vocab).map(|_| 0.01 * normal(&mut r)).collect(),
        RowKind::Dominant => (0..vocab).map(|_| 1.5 * normal(&mut r)).collect(),
        _ => (0..vocab).map(|_| 2.0 * normal(&mut r)).collect(),
    };
    let pick = |r: &mut rng::ChaCha20Rng| (rng::uniform(r) * vocab as f64) as usize % vocab.max(1);
    match kind {
        RowKind::HeavyTailed | RowKind::Masked => {
            let top = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            for _ in 0..20.min(vocab) {
                let i = pick(&mut r);
                z[i] = top + 5.0 + 7.0 * rng::uniform(&mut r) as f32;
            }
            if kind == RowKind::Masked {
                let am = crate::math::argmax(&z).unwrap_or(0);
                for (i, v) in z.iter_mut().enumerate() {
                    if i != am && rng::uniform(&mut r) < 0.3 {
                        *v = f32::NEG_INFINITY;
                    }
                }
            }
        }
        RowKind::Dominant => {
            let i = pick(&mut r);
            z[i] += 25.0;
        }
        RowKind::Flat => {}
    }
    z
}
