//! Latency statistics: percentiles and a small summary of a set of measurements.

use serde::Serialize;

/// The `p`-th percentile (0 ≤ p ≤ 100) of `sorted` (ascending) by linear interpolation between
/// the closest ranks: with r = p/100 · (n − 1), the value x_⌊r⌋ + (r − ⌊r⌋) · (x_⌈r⌉ − x_⌊r⌋)
/// (numpy's default). `None` for no values or a `p` outside [0, 100].
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() || !(0.0..=100.0).contains(&p) {
        return None;
    }
    let r = p / 100.0 * (sorted.len() - 1) as f64;
    let (lo, hi) = (r.floor() as usize, r.ceil() as usize);
    Some(sorted[lo] + (r - lo as f64) * (sorted[hi] - sorted[lo]))
}

/// Count, mean, median, 99th percentile and maximum of a set of measurements.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Number of measurements.
    pub count: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// 50th percentile ([`percentile`]).
    pub p50: f64,
    /// 99th percentile ([`percentile`]).
    pub p99: f64,
    /// Largest measurement.
    pub max: f64,
}

/// The [`Summary`] of `values` (any order; NaNs are ignored); `None` when there are none.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    v.sort_by(f64::total_cmp);
    Some(Summary {
        count: v.len(),
        mean: v.iter().sum::<f64>() / v.len().max(1) as f64,
        p50: percentile(&v, 50.0)?,
        p99: percentile(&v, 99.0)?,
        max: *v.last()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_between_ranks() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&v, 100.0), Some(4.0));
        assert_eq!(percentile(&v, 50.0), Some(2.5));
        // r = 0.99 · 3 = 2.97 → 3 + 0.97 · 1
        assert!((percentile(&v, 99.0).unwrap() - 3.97).abs() < 1e-12);
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        // r = 0.99 · 99 = 98.01 → 99 + 0.01
        assert!((percentile(&hundred, 99.0).unwrap() - 99.01).abs() < 1e-9);
        assert_eq!(percentile(&hundred, 50.0), Some(50.5));
    }

    #[test]
    fn percentile_edge_cases() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7.0], 50.0), Some(7.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[1.0, 2.0], -1.0), None);
        assert_eq!(percentile(&[1.0, 2.0], 100.5), None);
        assert_eq!(percentile(&[1.0, 2.0], f64::NAN), None);
    }

    #[test]
    fn summary_sorts_and_ignores_nan() {
        let s = summarize(&[5.0, f64::NAN, 1.0, 3.0]).unwrap();
        assert_eq!(s.count, 3);
        assert_eq!(s.mean, 3.0);
        assert_eq!(s.p50, 3.0);
        assert_eq!(s.max, 5.0);
        assert!((s.p99 - 4.96).abs() < 1e-12);
        assert_eq!(summarize(&[]), None);
        assert_eq!(summarize(&[f64::NAN]), None);
    }
}
