//! A safeguarded Newton root finder on a bracket: Newton steps where they stay inside the
//! bracket and shrink the residual fast enough, bisection otherwise; the bracket always keeps a
//! sign change, so it converges whenever the ends have opposite signs.

use super::AlphaStatus;

/// The residual `g(α)` and its derivative `g'(α)` at one point.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Point {
    pub alpha: f64,
    pub value: f64,
    pub slope: f64,
    /// A bound of the evaluation's rounding in `value`: a point is a root when
    /// `|value| + noise ≤ tol`.
    pub noise: f64,
}

/// Where the search ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome {
    pub alpha: f64,
    pub residual: f64,
    pub status: AlphaStatus,
}

/// Iterations at most (each one evaluation; bisection alone would need ~50 for f64 precision).
const MAX_ITER: usize = 100;

/// The root of `g` on `[lo.alpha, hi.alpha]` to `|g| ≤ tol`, given `g` at both ends.
///
/// - both ends within `tol` (the two distributions agree: every α is a root): 0.5 clamped into
///   the bracket ([`AlphaStatus::Equal`]) if it is within `tol` too;
/// - an end within `tol`: that end ([`AlphaStatus::Root`]);
/// - no sign change: the end with the smaller `|g|` ([`AlphaStatus::BracketEnd`]);
/// - else safeguarded Newton until `|g| ≤ tol` ([`AlphaStatus::Root`]), or, if the bracket
///   shrinks to nothing first, the point with the smallest `|g|` ([`AlphaStatus::Unconverged`]).
pub(crate) fn find_root(
    lo: Point,
    hi: Point,
    tol: f64,
    mut eval: impl FnMut(f64) -> Point,
) -> Outcome {
    let done = |p: Point, status| Outcome {
        alpha: p.alpha,
        residual: p.value,
        status,
    };
    let ok = |p: &Point| p.value.abs() + p.noise <= tol;
    if ok(&lo) && ok(&hi) {
        let mid = 0.5f64.clamp(lo.alpha, hi.alpha);
        let p = if mid == lo.alpha {
            lo
        } else if mid == hi.alpha {
            hi
        } else {
            eval(mid)
        };
        if ok(&p) {
            return done(p, AlphaStatus::Equal);
        }
        return done(
            if lo.value.abs() <= hi.value.abs() {
                lo
            } else {
                hi
            },
            AlphaStatus::Root,
        );
    }
    if ok(&lo) {
        return done(lo, AlphaStatus::Root);
    }
    if ok(&hi) {
        return done(hi, AlphaStatus::Root);
    }
    if lo.value.signum() == hi.value.signum() || lo.alpha >= hi.alpha {
        let end = if lo.value.abs() <= hi.value.abs() {
            lo
        } else {
            hi
        };
        return done(end, AlphaStatus::BracketEnd);
    }
    // `neg` keeps the end where g < 0, `pos` the end where g > 0.
    let (mut neg, mut pos) = if lo.value < 0.0 { (lo, hi) } else { (hi, lo) };
    let mut best = if lo.value.abs() <= hi.value.abs() {
        lo
    } else {
        hi
    };
    // Start with the Newton step from the steeper end (for a convex or concave residual it
    // does not overshoot the root), else the secant of the two ends, else the middle.
    let steep = if hi.slope.abs() >= lo.slope.abs() {
        hi
    } else {
        lo
    };
    let inside = |x: f64| x > lo.alpha && x < hi.alpha;
    let mut x = steep.alpha - steep.value / steep.slope;
    if !inside(x) {
        x = lo.alpha - lo.value * (hi.alpha - lo.alpha) / (hi.value - lo.value);
    }
    if !inside(x) {
        x = 0.5 * (lo.alpha + hi.alpha);
    }
    let mut last_step = hi.alpha - lo.alpha;
    // Illinois weights of the two ends' values for false position (halved when an end is kept
    // twice in a row, so false position does not stall at one end).
    let (mut w_neg, mut w_pos) = (1.0f64, 1.0f64);
    for _ in 0..MAX_ITER {
        let p = eval(x);
        if p.value.abs() < best.value.abs() {
            best = p;
        }
        if ok(&p) {
            return done(p, AlphaStatus::Root);
        }
        if p.value < 0.0 {
            neg = p;
            w_neg = 1.0;
            w_pos *= 0.5;
        } else {
            pos = p;
            w_pos = 1.0;
            w_neg *= 0.5;
        }
        let (a, b) = if neg.alpha < pos.alpha {
            (neg.alpha, pos.alpha)
        } else {
            (pos.alpha, neg.alpha)
        };
        if b - a <= 4.0 * f64::EPSILON * b.abs().max(1e-300) {
            break;
        }
        let newton = x - p.value / p.slope;
        let step = (newton - x).abs();
        let (vn, vp) = (neg.value * w_neg, pos.value * w_pos);
        let false_position = neg.alpha - vn * (pos.alpha - neg.alpha) / (vp - vn);
        x = if newton.is_finite() && newton > a && newton < b && step <= 0.5 * last_step {
            newton
        } else if false_position > a && false_position < b {
            false_position
        } else {
            0.5 * (a + b)
        };
        last_step = (x - p.alpha).abs();
    }
    done(best, AlphaStatus::Unconverged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(g: &dyn Fn(f64) -> (f64, f64), a: f64) -> Point {
        let (value, slope) = g(a);
        Point {
            alpha: a,
            value,
            slope,
            noise: 0.0,
        }
    }

    #[test]
    fn finds_roots_of_smooth_and_kinked_functions() {
        type Residual = Box<dyn Fn(f64) -> (f64, f64)>;
        let fs: Vec<Residual> = vec![
            Box::new(|a| (a - 0.3, 1.0)),
            Box::new(|a| ((a - 0.71).powi(3), 3.0 * (a - 0.71).powi(2))),
            Box::new(|a| {
                (
                    (5.0 * (a - 0.2)).tanh(),
                    5.0 / (5.0 * (a - 0.2)).cosh().powi(2),
                )
            }),
            // A wrong derivative: Newton is useless, bisection must still get there.
            Box::new(|a| (0.9 - a, 1.0)),
        ];
        for f in &fs {
            let out = find_root(point(f, 0.0), point(f, 1.0), 1e-9, |a| point(f, a));
            assert_eq!(out.status, AlphaStatus::Root);
            assert!(f(out.alpha).0.abs() <= 1e-9);
            assert_eq!(out.residual, f(out.alpha).0);
        }
    }

    #[test]
    fn no_sign_change_returns_the_closer_end() {
        let f = |a: f64| (a + 0.5, 1.0);
        let out = find_root(point(&f, 0.0), point(&f, 1.0), 1e-9, |a| point(&f, a));
        assert_eq!(out.status, AlphaStatus::BracketEnd);
        assert_eq!(out.alpha, 0.0);
        let f = |a: f64| (a - 3.0, 1.0);
        let out = find_root(point(&f, 0.2), point(&f, 0.8), 1e-9, |a| point(&f, a));
        assert_eq!((out.alpha, out.status), (0.8, AlphaStatus::BracketEnd));
    }

    #[test]
    fn a_flat_zero_gives_the_clamped_middle() {
        let f = |_: f64| (0.0, 0.0);
        let out = find_root(point(&f, 0.0), point(&f, 1.0), 1e-9, |a| point(&f, a));
        assert_eq!((out.alpha, out.status), (0.5, AlphaStatus::Equal));
        let out = find_root(point(&f, 0.6), point(&f, 0.9), 1e-9, |a| point(&f, a));
        assert_eq!((out.alpha, out.status), (0.6, AlphaStatus::Equal));
    }
}
