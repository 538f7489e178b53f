//! 95 % percentile bootstrap over prompts, seeded.
//!
//! A resample draws `n` prompts with replacement from the `n` eval prompts (every seed of a
//! drawn prompt comes with it), as multiplicities `counts[i]` (Σ counts = n); each statistic is
//! recomputed on the resample. The interval of a statistic is the 2.5th and 97.5th percentiles
//! of its resampled values (linear interpolation between order statistics: the value at rank
//! `q·(m − 1)` of the `m` sorted values), beside its value on the full data (Efron & Tibshirani
//! 1993, ch. 13). Resamples on which a statistic is undefined (e.g. no prompt with an answer
//! drawn) are left out of that statistic's percentiles.
//!
//! The draws come from ChaCha8 seeded with `seed`, so the same seed gives the same intervals.

use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Lower percentile of the 95 % interval.
pub const LOWER: f64 = 0.025;
/// Upper percentile of the 95 % interval.
pub const UPPER: f64 = 0.975;

/// A value with its 95 % bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The statistic on the full data.
    pub value: f64,
    /// 2.5th percentile of the resampled values.
    pub lo: f64,
    /// 97.5th percentile of the resampled values.
    pub hi: f64,
}

impl Interval {
    /// Whether the whole interval is above 0.
    pub fn above_zero(&self) -> bool {
        self.lo > 0.0
    }

    /// Whether the whole interval is below 0.
    pub fn below_zero(&self) -> bool {
        self.hi < 0.0
    }
}

/// The `q`-quantile (0 ≤ q ≤ 1) of `sorted` (ascending, non-empty): linear interpolation at
/// rank `q·(m − 1)`.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let m = sorted.len();
    if m == 1 {
        return sorted[0];
    }
    let rank = q.clamp(0.0, 1.0) * (m - 1) as f64;
    let below = rank.floor() as usize;
    let above = (below + 1).min(m - 1);
    let frac = rank - below as f64;
    sorted[below] + frac * (sorted[above] - sorted[below])
}

/// The interval of a statistic with value `value` on the full data and `samples` on the
/// resamples (non-finite samples ignored); with no finite sample the interval is the value
/// itself.
pub fn percentile_interval(value: f64, samples: &[f64]) -> Interval {
    let mut s: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return Interval {
            value,
            lo: value,
            hi: value,
        };
    }
    s.sort_by(f64::total_cmp);
    Interval {
        value,
        lo: quantile(&s, LOWER),
        hi: quantile(&s, UPPER),
    }
}

/// Multiplicities of one resample of `n` units drawn with replacement.
pub fn resample_counts(n: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut counts = vec![0usize; n];
    for _ in 0..n {
        counts[rng.random_range(0..n)] += 1;
    }
    counts
}

/// Runs `statistics` on the full data (every count 1) and on `resamples` resamples of `n`
/// units (seeded by `seed`); `statistics(counts)` returns one value per statistic, `None`
/// where undefined. Returns each statistic's interval, `None` where undefined on the full data.
pub fn bootstrap(
    n: usize,
    resamples: usize,
    seed: u64,
    mut statistics: impl FnMut(&[usize]) -> Vec<Option<f64>>,
) -> Vec<Option<Interval>> {
    let full = statistics(&vec![1; n]);
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(resamples); full.len()];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    if n > 0 {
        for _ in 0..resamples {
            let counts = resample_counts(n, &mut rng);
            for (k, v) in statistics(&counts).into_iter().enumerate() {
                if let (Some(v), Some(s)) = (v, samples.get_mut(k)) {
                    s.push(v);
                }
            }
        }
    }
    full.iter()
        .zip(&samples)
        .map(|(v, s)| v.map(|v| percentile_interval(v, s)))
        .collect()
}

/// The mean of `values[i]` weighted by `counts[i]` over the units that have a value; `None`
/// when no counted unit has one.
pub fn weighted_mean(values: &[Option<f64>], counts: &[usize]) -> Option<f64> {
    let (mut sum, mut weight) = (0.0, 0usize);
    for (v, &c) in values.iter().zip(counts) {
        if let Some(v) = v {
            sum += v * c as f64;
            weight += c;
        }
    }
    (weight > 0).then(|| sum / weight as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn quantiles_interpolate_linearly() {
        let s = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&s, 0.0), 1.0);
        assert_eq!(quantile(&s, 1.0), 5.0);
        assert_eq!(quantile(&s, 0.5), 3.0);
        assert!((quantile(&s, 0.1) - 1.4).abs() < 1e-12);
        assert_eq!(quantile(&[7.0], 0.3), 7.0);
        let i = percentile_interval(2.0, &[f64::NAN, 3.0, 1.0, 2.0]);
        assert_eq!((i.lo, i.hi), (1.05, 2.95));
        let none = percentile_interval(2.0, &[]);
        assert_eq!((none.lo, none.hi), (2.0, 2.0));
    }

    #[test]
    fn resamples_draw_n_units_and_are_seeded() {
        let mut a = ChaCha8Rng::seed_from_u64(3);
        let mut b = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..20 {
            let c = resample_counts(7, &mut a);
            assert_eq!(c.iter().sum::<usize>(), 7);
            assert_eq!(c, resample_counts(7, &mut b));
        }
        let mut other = ChaCha8Rng::seed_from_u64(4);
        let x: Vec<Vec<usize>> = (0..5).map(|_| resample_counts(7, &mut a)).collect();
        let y: Vec<Vec<usize>> = (0..5).map(|_| resample_counts(7, &mut other)).collect();
        assert_ne!(x, y);
    }

    #[test]
    fn the_mean_of_a_known_sample() {
        // 40 units, values 0 or 1 half and half: the mean's bootstrap interval is about
        // 0.5 ± 1.96·sqrt(0.25/40) = 0.5 ± 0.155
        let values: Vec<Option<f64>> = (0..40).map(|i| Some(f64::from(i % 2))).collect();
        let out = bootstrap(40, 2000, 1, |c| vec![weighted_mean(&values, c)]);
        let i = out[0].unwrap();
        assert_eq!(i.value, 0.5);
        assert!(
            (i.lo - 0.345).abs() < 0.03 && (i.hi - 0.655).abs() < 0.03,
            "{i:?}"
        );
        // the same seed, the same interval
        let again = bootstrap(40, 2000, 1, |c| vec![weighted_mean(&values, c)]);
        assert_eq!(again[0], out[0]);
    }

    #[test]
    fn undefined_statistics_are_left_out() {
        // only unit 0 has a value: resamples without it do not count
        let values = [Some(1.0), None, None];
        let out = bootstrap(3, 200, 0, |c| vec![weighted_mean(&values, c), None]);
        assert_eq!(
            out[0].unwrap(),
            Interval {
                value: 1.0,
                lo: 1.0,
                hi: 1.0
            }
        );
        assert_eq!(out[1], None);
        assert_eq!(weighted_mean(&values, &[0, 2, 1]), None);
    }

    proptest! {
        #[test]
        fn the_interval_holds_the_resampled_means(
            values in proptest::collection::vec(-10.0f64..10.0, 1..30),
            seed in 0u64..1000,
        ) {
            let v: Vec<Option<f64>> = values.iter().copied().map(Some).collect();
            let i = bootstrap(v.len(), 100, seed, |c| vec![weighted_mean(&v, c)])[0].unwrap();
            let min = values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            prop_assert!(min - 1e-9 <= i.lo && i.lo <= i.hi && i.hi <= max + 1e-9, "{:?}", i);
        }
    }
}
