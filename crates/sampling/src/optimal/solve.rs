//! A safeguarded root finder on a bracket that uses the residual's derivative: each step goes to
//! the root of the cubic Hermite interpolant (values and slopes) of the last two points, else of
//! the bracket's ends, where that stays inside the bracket and the last step made progress
//! (halved |g| or its own length), bisection otherwise; the bracket always keeps a sign change,
//! so it converges whenever the ends have opposite signs.

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
/// - else Hermite steps under the bisection safeguard (see the module doc) until `|g| ≤ tol`
///   ([`AlphaStatus::Root`]), or, if the bracket shrinks to nothing first, the point with the
///   smallest `|g|` ([`AlphaStatus::Unconverged`]).
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
    // The last two evaluated points (the ends at first) and the step that led to the last: a
    // step after one that halved neither |g| nor the step before it (convergence slower than
    // bisection's) is replaced by bisection.
    let (mut last, mut prev) = if best.alpha == lo.alpha {
        (lo, hi)
    } else {
        (hi, lo)
    };
    let mut last_step = f64::INFINITY;
    for _ in 0..MAX_ITER {
        let (a, b) = if neg.alpha < pos.alpha {
            (neg, pos)
        } else {
            (pos, neg)
        };
        let w = b.alpha - a.alpha;
        if w <= 4.0 * f64::EPSILON * b.alpha.abs().max(1e-300) {
            break;
        }
        // A step is taken when it stays inside the bracket and the last one made progress:
        // it halved |g| or its length.
        let progress = last.value.abs() <= 0.5 * prev.value.abs();
        let guarded = |x: f64| {
            x > a.alpha && x < b.alpha && (progress || (x - last.alpha).abs() <= 0.5 * last_step)
        };
        // The cubic through the last two points near the last, else the cubic on the bracket.
        let mut x = hermite_near(&prev, &last);
        if !guarded(x) {
            x = a.alpha + hermite_root(a.value, a.slope * w, b.value, b.slope * w) * w;
        }
        if !guarded(x) {
            x = 0.5 * (a.alpha + b.alpha);
        }
        last_step = (x - last.alpha).abs();
        let p = eval(x);
        if p.value.abs() < best.value.abs() {
            best = p;
        }
        if ok(&p) {
            return done(p, AlphaStatus::Root);
        }
        if p.value < 0.0 {
            neg = p;
        } else {
            pos = p;
        }
        (prev, last) = (last, p);
    }
    done(best, AlphaStatus::Unconverged)
}

/// The root nearest to `p` of the cubic Hermite interpolant through `q` and `p` (values and
/// slopes), by Newton on the cubic from `p` (NaN when it does not converge).
fn hermite_near(q: &Point, p: &Point) -> f64 {
    let w = p.alpha - q.alpha;
    let (f0, m0, f1, m1) = (q.value, q.slope * w, p.value, p.slope * w);
    // H(t) = f0 + m0·t + c2·t² + c3·t³ with t = (x − q.alpha) / w.
    let c2 = 3.0 * (f1 - f0) - 2.0 * m0 - m1;
    let c3 = 2.0 * (f0 - f1) + m0 + m1;
    let mut t = 1.0f64;
    for _ in 0..32 {
        let h = t.mul_add(t.mul_add(t.mul_add(c3, c2), m0), f0);
        let dh = t.mul_add(t.mul_add(3.0 * c3, 2.0 * c2), m0);
        let step = h / dh;
        t -= step;
        if !t.is_finite() {
            return f64::NAN;
        }
        if step.abs() <= 1e-15 * t.abs().max(1.0) {
            return q.alpha + t * w;
        }
    }
    f64::NAN
}

/// The root in (0, 1) of the cubic Hermite interpolant `H` with `H(0) = f0`, `H'(0) = m0`,
/// `H(1) = f1`, `H'(1) = m1`, for `f0`, `f1` of opposite signs (a root exists): Newton on `H`
/// kept inside a bracket of its sign change, bisection where Newton leaves it. Slopes that are
/// not finite give the secant's root.
fn hermite_root(f0: f64, m0: f64, f1: f64, m1: f64) -> f64 {
    let secant = f0 / (f0 - f1);
    if !(m0.is_finite() && m1.is_finite()) {
        return secant;
    }
    // H(t) = f0 + m0·t + c2·t² + c3·t³.
    let c2 = 3.0 * (f1 - f0) - 2.0 * m0 - m1;
    let c3 = 2.0 * (f0 - f1) + m0 + m1;
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    let mut t = secant;
    for _ in 0..64 {
        let h = t.mul_add(t.mul_add(t.mul_add(c3, c2), m0), f0);
        if h == 0.0 {
            break;
        }
        if (h > 0.0) == (f0 > 0.0) {
            lo = t;
        } else {
            hi = t;
        }
        let dh = t.mul_add(t.mul_add(3.0 * c3, 2.0 * c2), m0);
        let next = t - h / dh;
        let next = if next > lo && next < hi {
            next
        } else {
            0.5 * (lo + hi)
        };
        if (next - t).abs() <= 1e-15 || hi - lo <= 1e-15 {
            t = next;
            break;
        }
        t = next;
    }
    t
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
