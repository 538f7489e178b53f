//! A verified piecewise-cubic table of a smooth scalar function `y = f(x)` on `[lo, hi]`.
//!
//! The LocalProbabilityTransform's whole output — `gate(lp + SwiGLU(lp))` with fixed weights —
//! is a scalar function of `lp` alone, so after loading it can be tabulated once and each token
//! then costs one cubic instead of `f` hidden units' silu. The table is cubic Hermite
//! interpolation on knots `x_i = lo + i·h` from exact (f64) values and derivatives:
//!
//! `y(x_i + t·h) = c0 + t·(c1 + t·(c2 + t·c3))`, `t ∈ [0, 1)`, with
//! `c0 = y_i`, `c1 = h·y'_i`, `c2 = 3(y_{i+1} − y_i) − 2h·y'_i − h·y'_{i+1}`,
//! `c3 = 2(y_i − y_{i+1}) + h·y'_i + h·y'_{i+1}`.
//!
//! [`ScalarTable::build`] halves `h` until the table agrees with the exact function at three
//! interior points of every interval to `tolerance·max(1, |y|)` (the exact f32 evaluation's own
//! rounding is of that order), and gives up (returns `None`) when even the finest step fails —
//! the caller then keeps the exact evaluation. Arguments outside `[lo, hi]` are not tabulated
//! ([`ScalarTable::eval`] returns `None`).

/// A piecewise-cubic table of a scalar function, verified against it when built.
#[derive(Debug, Clone)]
pub(crate) struct ScalarTable {
    lo: f32,
    hi: f32,
    inv_h: f32,
    /// `[c0, c1, c2, c3]` per interval.
    coeffs: Vec<[f32; 4]>,
}

impl ScalarTable {
    /// Tabulates `f` (returning `(y, dy/dx)` in f64) on `[lo, hi]`, starting at step `h_max` and
    /// halving down to `h_min`; `None` if no step meets `tolerance`.
    pub(crate) fn build(
        f: impl Fn(f64) -> (f64, f64),
        lo: f32,
        hi: f32,
        h_max: f32,
        h_min: f32,
        tolerance: f64,
    ) -> Option<Self> {
        let mut h = h_max;
        while h >= h_min {
            let table = Self::with_step(&f, lo, hi, h);
            if table.max_error(&f, tolerance) <= 1.0 {
                return Some(table);
            }
            h *= 0.5;
        }
        None
    }

    fn with_step(f: &impl Fn(f64) -> (f64, f64), lo: f32, hi: f32, h: f32) -> Self {
        let n = ((hi - lo) / h).ceil() as usize;
        let hd = h as f64;
        let knots: Vec<(f64, f64)> = (0..=n).map(|i| f(lo as f64 + i as f64 * hd)).collect();
        let coeffs = knots
            .windows(2)
            .map(|w| {
                let ((y0, d0), (y1, d1)) = (w[0], w[1]);
                let (d0, d1) = (hd * d0, hd * d1);
                [
                    y0 as f32,
                    d0 as f32,
                    (3.0 * (y1 - y0) - 2.0 * d0 - d1) as f32,
                    (2.0 * (y0 - y1) + d0 + d1) as f32,
                ]
            })
            .collect();
        Self {
            lo,
            hi: lo + n as f32 * h,
            inv_h: 1.0 / h,
            coeffs,
        }
    }

    /// Largest `|table − f| / (tolerance·max(1, |f|))` over three interior points per interval.
    fn max_error(&self, f: &impl Fn(f64) -> (f64, f64), tolerance: f64) -> f64 {
        let h = 1.0 / self.inv_h as f64;
        let mut worst = 0.0f64;
        for i in 0..self.coeffs.len() {
            for frac in [0.25, 0.5, 0.75] {
                let x = (self.lo as f64 + (i as f64 + frac) * h) as f32;
                let Some(y) = self.eval(x) else { continue };
                let exact = f(x as f64).0;
                let err = (y as f64 - exact).abs() / (tolerance * exact.abs().max(1.0));
                if !err.is_finite() {
                    return f64::INFINITY;
                }
                worst = worst.max(err);
            }
        }
        worst
    }

    /// The tabulated value at `x`, or `None` outside `[lo, hi]` (and for NaN).
    #[inline(always)]
    pub(crate) fn eval(&self, x: f32) -> Option<f32> {
        if !(x >= self.lo && x <= self.hi) {
            return None;
        }
        let u = (x - self.lo) * self.inv_h;
        let i = (u as usize).min(self.coeffs.len() - 1);
        let t = u - i as f32;
        let [c0, c1, c2, c3] = self.coeffs[i];
        Some(t.mul_add(t.mul_add(t.mul_add(c3, c2), c1), c0))
    }

    /// Number of intervals (for reports and tests).
    pub(crate) fn intervals(&self) -> usize {
        self.coeffs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabulates_a_smooth_function_within_tolerance() {
        let f = |x: f64| (x.sin() * 3.0 + 0.1 * x * x, x.cos() * 3.0 + 0.2 * x);
        let t = ScalarTable::build(f, -20.0, 0.0, 0.25, 1.0 / 1024.0, 1e-6).unwrap();
        for k in 0..10_000 {
            let x = -20.0 + 20.0 * (k as f32 + 0.37) / 10_000.0;
            let exact = f(x as f64).0;
            let y = t.eval(x).unwrap() as f64;
            assert!(
                (y - exact).abs() <= 2e-6 * exact.abs().max(1.0),
                "x {x}: {y} vs {exact}"
            );
        }
        assert_eq!(t.eval(0.5), None);
        assert_eq!(t.eval(-20.5), None);
        assert_eq!(t.eval(f32::NAN), None);
        assert_eq!(t.eval(f32::NEG_INFINITY), None);
    }

    #[test]
    fn refines_the_step_for_fast_varying_functions_and_gives_up_when_it_must() {
        let slow = ScalarTable::build(|x| (x.sin(), x.cos()), -8.0, 0.0, 0.5, 1e-3, 1e-6).unwrap();
        let fast = ScalarTable::build(
            |x| ((20.0 * x).sin(), 20.0 * (20.0 * x).cos()),
            -8.0,
            0.0,
            0.5,
            1e-3,
            1e-6,
        )
        .unwrap();
        assert!(fast.intervals() > 8 * slow.intervals());
        // A kink (|x|) cannot be met by a cubic across it at any step above h_min.
        let kink = ScalarTable::build(
            |x: f64| (x.abs() * 100.0, 100.0 * x.signum()),
            -1.0 - 1.0 / 3.0,
            1.0,
            0.5,
            0.01,
            1e-6,
        );
        assert!(kink.is_none());
    }
}
