//! Goodness of fit: Pearson's chi-square test of observed counts against a distribution, with
//! the chi-square survival function computed from the regularized incomplete gamma function.

use crate::error::{Result, SamplingError};

/// Cells whose expected count is below this are pooled into one cell (the usual validity rule of
/// the chi-square approximation).
pub const MIN_EXPECTED: f64 = 5.0;

/// The outcome of [`chi_square_test`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChiSquare {
    /// Pearson's statistic `Σ (O − E)² / E` over the (pooled) cells.
    pub statistic: f64,
    /// Degrees of freedom: cells − 1.
    pub df: usize,
    /// `P(X ≥ statistic)` for `X ~ χ²(df)`.
    pub p_value: f64,
}

/// `ln Γ(x)` for `x > 0` (Lanczos approximation, g = 7, 9 terms; relative error below 1e-13).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1−x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, &c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// The regularized upper incomplete gamma function `Q(a, x) = Γ(a, x) / Γ(a)` for `a > 0`,
/// `x ≥ 0`: the series of `P = 1 − Q` below `x < a + 1`, Lentz's continued fraction above.
pub fn gamma_q(a: f64, x: f64) -> f64 {
    const EPS: f64 = 1e-15;
    const MAX_ITER: usize = 10_000;
    if x <= 0.0 {
        return 1.0;
    }
    let ln_prefix = a * x.ln() - x - ln_gamma(a);
    if x < a + 1.0 {
        // P(a, x) = e^{−x} x^a / Γ(a+1) · Σ_n x^n / ((a+1)…(a+n)).
        let mut term = 1.0 / a;
        let mut sum = term;
        let mut ap = a;
        for _ in 0..MAX_ITER {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * EPS {
                break;
            }
        }
        (1.0 - sum * ln_prefix.exp()).clamp(0.0, 1.0)
    } else {
        // Q(a, x) = e^{−x} x^a / Γ(a) · 1/(x+1−a− 1·(1−a)/(x+3−a− 2·(2−a)/(x+5−a− …))).
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..MAX_ITER {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < EPS {
                break;
            }
        }
        (ln_prefix.exp() * h).clamp(0.0, 1.0)
    }
}

/// The chi-square survival function `P(X ≥ x)` for `X ~ χ²(df)`: `Q(df/2, x/2)`.
pub fn chi_square_sf(x: f64, df: usize) -> f64 {
    if df == 0 {
        return if x > 0.0 { 0.0 } else { 1.0 };
    }
    gamma_q(df as f64 / 2.0, x / 2.0)
}

/// Pearson's chi-square goodness of fit of `observed` counts (one per outcome) against the
/// probabilities `expected` (same length, summing to 1 within 1e-6). Outcomes whose expected
/// count is below [`MIN_EXPECTED`] are pooled into one cell (dropped if the pool's expected
/// count is 0 and nothing was observed there; an observation where the probability is 0 makes
/// the statistic `+inf` and the p-value 0). Errors ([`SamplingError::Distribution`]): lengths
/// differ, no observations, a negative or non-finite probability, probabilities not summing
/// to 1.
pub fn chi_square_test(observed: &[u64], expected: &[f64]) -> Result<ChiSquare> {
    if observed.len() != expected.len() {
        return Err(SamplingError::Distribution(format!(
            "chi-square: {} observed counts but {} expected probabilities",
            observed.len(),
            expected.len()
        )));
    }
    let n: u64 = observed.iter().sum();
    if n == 0 {
        return Err(SamplingError::Distribution(
            "chi-square: observed = 0 counts (nothing to test)".into(),
        ));
    }
    if let Some((i, &p)) = expected
        .iter()
        .enumerate()
        .find(|(_, p)| !(p.is_finite() && **p >= 0.0))
    {
        return Err(SamplingError::Distribution(format!(
            "chi-square: expected[{i}] = {p} is not a probability"
        )));
    }
    let total: f64 = expected.iter().sum();
    if (total - 1.0).abs() > 1e-6 {
        return Err(SamplingError::Distribution(format!(
            "chi-square: expected probabilities sum to {total}, not 1"
        )));
    }
    let n = n as f64;
    let mut cells: Vec<(f64, f64)> = Vec::new();
    let (mut pooled_o, mut pooled_e) = (0.0, 0.0);
    for (&o, &p) in observed.iter().zip(expected) {
        let e = p * n;
        if p == 0.0 && o > 0 {
            return Ok(ChiSquare {
                statistic: f64::INFINITY,
                df: observed.len().saturating_sub(1),
                p_value: 0.0,
            });
        }
        if e < MIN_EXPECTED {
            pooled_o += o as f64;
            pooled_e += e;
        } else {
            cells.push((o as f64, e));
        }
    }
    if pooled_e > 0.0 {
        cells.push((pooled_o, pooled_e));
    }
    let statistic: f64 = cells.iter().map(|(o, e)| (o - e) * (o - e) / e).sum();
    let df = cells.len().saturating_sub(1);
    Ok(ChiSquare {
        statistic,
        df,
        p_value: chi_square_sf(statistic, df),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_gamma_matches_factorials_and_half_integers() {
        let mut fact = 1.0f64;
        for n in 1..20 {
            // Γ(n) = (n−1)!
            assert!((ln_gamma(n as f64) - fact.ln()).abs() < 1e-10, "n = {n}");
            fact *= n as f64;
        }
        let sqrt_pi = std::f64::consts::PI.sqrt();
        assert!((ln_gamma(0.5) - sqrt_pi.ln()).abs() < 1e-12);
        assert!((ln_gamma(1.5) - (sqrt_pi / 2.0).ln()).abs() < 1e-12);
        assert!((ln_gamma(0.1) - 2.252_712_651_734_206).abs() < 1e-10);
    }

    #[test]
    fn survival_function_matches_closed_forms_and_tables() {
        // df = 2: P(X ≥ x) = e^{−x/2} exactly.
        for x in [0.1, 1.0, 3.0, 10.0, 40.0] {
            assert!(
                (chi_square_sf(x, 2) - (-x / 2.0f64).exp()).abs() < 1e-12,
                "x = {x}"
            );
        }
        // df = 1: P(X ≥ x) = erfc(√(x/2)); 5 % critical values from standard tables.
        for (x, df) in [
            (3.841_459, 1),
            (5.991_465, 2),
            (18.307_038, 10),
            (124.342_113, 100),
        ] {
            let p = chi_square_sf(x, df);
            assert!((p - 0.05).abs() < 1e-6, "df = {df}: {p}");
        }
        // 0.1 % critical values.
        for (x, df) in [(10.827_566, 1), (29.588_298, 10)] {
            let p = chi_square_sf(x, df);
            assert!((p - 0.001).abs() < 1e-7, "df = {df}: {p}");
        }
        assert_eq!(chi_square_sf(0.0, 5), 1.0);
        assert!(chi_square_sf(1e4, 5) < 1e-300);
    }

    #[test]
    fn the_test_accepts_a_fit_and_rejects_a_misfit() {
        let p = [0.5, 0.3, 0.2];
        let good = chi_square_test(&[5020, 2990, 1990], &p).unwrap();
        assert_eq!(good.df, 2);
        assert!(good.p_value > 0.5, "{good:?}");
        let bad = chi_square_test(&[5500, 2700, 1800], &p).unwrap();
        assert!(bad.p_value < 1e-6, "{bad:?}");
        // An observation where the probability is 0 is an outright misfit.
        let zero = chi_square_test(&[10, 0, 1], &[0.5, 0.5, 0.0]).unwrap();
        assert_eq!(zero.p_value, 0.0);
        // Rare outcomes are pooled.
        let pooled = chi_square_test(&[98, 1, 1], &[0.98, 0.01, 0.01]).unwrap();
        assert_eq!(pooled.df, 1);
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        for (o, e) in [
            (vec![1u64, 2], vec![1.0]),
            (vec![0, 0], vec![0.5, 0.5]),
            (vec![1, 1], vec![0.5, f64::NAN]),
            (vec![1, 1], vec![0.7, 0.7]),
            (vec![1, 1], vec![1.5, -0.5]),
        ] {
            let err = chi_square_test(&o, &e).unwrap_err();
            assert!(matches!(err, SamplingError::Distribution(_)), "{err}");
        }
    }
}
