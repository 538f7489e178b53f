//! Bradley–Terry ratings from soft pairwise outcomes (SPEC 4): the ratings `r` maximising
//!
//! ```text
//! L(r) = Σ_pairs [ s·log σ(r_a − r_b) + (1 − s)·log σ(r_b − r_a) ]
//! ```
//!
//! (`s` = a's soft outcome against b), mean-centred. Fitted by Newton's method with a
//! backtracking line search, stopped when every component of the gradient is at most
//! [`TOLERANCE`] in absolute value: `max_i |∂L/∂r_i| ≤ 1e-9`.
//!
//! The maximum is unique up to a shift when the comparisons connect every player and the
//! "has won some probability mass against" graph is strongly connected (Ford 1957); otherwise
//! some ratings grow without bound, the fit stops at the tolerance (separated groups end up
//! about `ln(1/TOLERANCE) ≈ 21` apart) and [`Ratings::identified`] is false. Players in
//! separate components of the comparison graph are each centred on their own mean.
//!
//! The reference implementation runs 1000 steps of full-batch gradient ascent (lr 0.05,
//! ratings from 0, σ's argument clamped to ±35) towards the same maximum; the tests compare
//! with it.

use super::swiss::Observation;

/// Convergence tolerance: the fit stops once `max_i |∂L/∂r_i| ≤ TOLERANCE`.
pub const TOLERANCE: f64 = 1e-9;

/// Newton iterations at most (convergence normally takes under 10; a separated group about 25).
pub const MAX_ITERATIONS: usize = 200;

/// Fitted ratings.
#[derive(Debug, Clone, PartialEq)]
pub struct Ratings {
    /// One rating per player, mean-centred (per connected component of the comparisons).
    pub ratings: Vec<f64>,
    /// Newton iterations run.
    pub iterations: usize,
    /// `max_i |∂L/∂r_i|` at the returned ratings.
    pub max_gradient: f64,
    /// Whether the maximum exists and is unique up to a shift (see the module doc).
    pub identified: bool,
}

/// `log σ(x)`, stable for large |x|.
fn log_sigmoid(x: f64) -> f64 {
    -((-x).max(0.0) + (-x.abs()).exp().ln_1p())
}

/// `σ(x)`.
fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// The log-likelihood `L(r)`.
pub fn log_likelihood(ratings: &[f64], obs: &[Observation]) -> f64 {
    obs.iter()
        .map(|o| {
            let d = ratings[o.first] - ratings[o.second];
            o.outcome * log_sigmoid(d) + (1.0 - o.outcome) * log_sigmoid(-d)
        })
        .sum()
}

/// The gradient `∂L/∂r_i = Σ_{pairs of i} ± (s − σ(r_a − r_b))`.
pub fn gradient(ratings: &[f64], obs: &[Observation]) -> Vec<f64> {
    let mut g = vec![0.0; ratings.len()];
    for o in obs {
        let e = o.outcome - sigmoid(ratings[o.first] - ratings[o.second]);
        g[o.first] += e;
        g[o.second] -= e;
    }
    g
}

/// Connected components of the comparison graph: `component[i]` for each player.
fn components(players: usize, obs: &[Observation]) -> Vec<usize> {
    let mut parent: Vec<usize> = (0..players).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for o in obs {
        let (a, b) = (root(&mut parent, o.first), root(&mut parent, o.second));
        parent[a] = b;
    }
    (0..players).map(|i| root(&mut parent, i)).collect()
}

/// Subtracts each component's mean from its members' values.
fn centre(values: &mut [f64], component: &[usize]) {
    let n = values.len();
    let mut sum = vec![0.0; n];
    let mut count = vec![0usize; n];
    for (i, &c) in component.iter().enumerate() {
        sum[c] += values[i];
        count[c] += 1;
    }
    for (i, &c) in component.iter().enumerate() {
        values[i] -= sum[c] / count[c] as f64;
    }
}

/// Whether every player can reach every other along "won some mass against" edges (a→b when
/// a's outcome against b is above 0) — the condition for a finite, unique maximum.
fn strongly_connected(players: usize, obs: &[Observation]) -> bool {
    if players <= 1 {
        return true;
    }
    let mut out = vec![Vec::new(); players];
    let mut back = vec![Vec::new(); players];
    for o in obs {
        let mut edge = |a: usize, b: usize| {
            out[a].push(b);
            back[b].push(a);
        };
        if o.outcome > 0.0 {
            edge(o.first, o.second);
        }
        if o.outcome < 1.0 {
            edge(o.second, o.first);
        }
    }
    let reaches_all = |adj: &[Vec<usize>]| {
        let mut seen = vec![false; players];
        let mut stack = vec![0];
        seen[0] = true;
        while let Some(i) = stack.pop() {
            for &j in &adj[i] {
                if !seen[j] {
                    seen[j] = true;
                    stack.push(j);
                }
            }
        }
        seen.iter().all(|&s| s)
    };
    reaches_all(&out) && reaches_all(&back)
}

/// Solves `(A + δI) x = b` for a symmetric positive semi-definite `A` (`n × n`, row-major) by
/// Cholesky, with `δ` a tiny ridge relative to A's diagonal (A is a weighted Laplacian, singular
/// along per-component constants; the caller removes that part from `b` and `x`).
fn solve_psd(mut a: Vec<f64>, b: &[f64]) -> Vec<f64> {
    let n = b.len();
    let scale = (0..n)
        .map(|i| a[i * n + i])
        .fold(0.0f64, f64::max)
        .max(1e-300);
    let ridge = scale * 1e-12;
    for i in 0..n {
        a[i * n + i] += ridge;
    }
    // In-place Cholesky: lower triangle of `a` becomes L with A = L·Lᵀ.
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        let d = d.max(ridge).sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut v = a[i * n + j];
            for k in 0..j {
                v -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = v / d;
        }
    }
    let mut y = b.to_vec();
    for i in 0..n {
        for k in 0..i {
            y[i] -= a[i * n + k] * y[k];
        }
        y[i] /= a[i * n + i];
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            y[i] -= a[k * n + i] * y[k];
        }
        y[i] /= a[i * n + i];
    }
    y
}

/// Fits the ratings of `players` players from `obs` (see the module doc); players with no
/// observation get 0.
pub fn fit(players: usize, obs: &[Observation]) -> Ratings {
    let component = components(players, obs);
    let mut r = vec![0.0; players];
    let mut iterations = 0;
    let mut g = gradient(&r, obs);
    let max_abs = |g: &[f64]| g.iter().fold(0.0f64, |m, &x| m.max(x.abs()));
    while max_abs(&g) > TOLERANCE && iterations < MAX_ITERATIONS && players > 1 {
        iterations += 1;
        // −Hessian: the Laplacian with weights σ(d)·σ(−d).
        let mut lap = vec![0.0; players * players];
        for o in obs {
            let (a, b) = (o.first, o.second);
            let d = r[a] - r[b];
            let w = sigmoid(d) * sigmoid(-d);
            lap[a * players + a] += w;
            lap[b * players + b] += w;
            lap[a * players + b] -= w;
            lap[b * players + a] -= w;
        }
        centre(&mut g, &component);
        let mut step = solve_psd(lap, &g);
        centre(&mut step, &component);
        // Backtracking: halve the step until L does not decrease (beyond rounding: near the
        // maximum a full step gains less than L's last bits).
        let l0 = log_likelihood(&r, obs);
        let floor = l0 - 1e-14 * (1.0 + l0.abs());
        let mut t = 1.0;
        let mut next: Vec<f64>;
        loop {
            next = r.iter().zip(&step).map(|(x, s)| x + t * s).collect();
            if log_likelihood(&next, obs) >= floor || t < 1e-12 {
                break;
            }
            t *= 0.5;
        }
        r = next;
        g = gradient(&r, obs);
    }
    centre(&mut r, &component);
    Ratings {
        max_gradient: max_abs(&gradient(&r, obs)),
        ratings: r,
        iterations,
        identified: strongly_connected(players, obs)
            && component.iter().all(|&c| c == component[0]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn obs(list: &[(usize, usize, f64)]) -> Vec<Observation> {
        list.iter()
            .map(|&(first, second, outcome)| Observation {
                first,
                second,
                outcome,
            })
            .collect()
    }

    /// The reference implementation: 1000 steps of full-batch gradient ascent, lr 0.05, from 0,
    /// σ's argument clamped to ±35, then mean-centred.
    fn reference(players: usize, obs: &[Observation]) -> Vec<f64> {
        let mut r = vec![0.0f64; players];
        for _ in 0..1000 {
            let mut g = vec![0.0; players];
            for o in obs {
                let d = (r[o.first] - r[o.second]).clamp(-35.0, 35.0);
                let e = o.outcome - sigmoid(d);
                g[o.first] += e;
                g[o.second] -= e;
            }
            for (x, gi) in r.iter_mut().zip(&g) {
                *x += 0.05 * gi;
            }
        }
        let mean = r.iter().sum::<f64>() / players as f64;
        r.iter().map(|x| x - mean).collect()
    }

    #[test]
    fn recovers_known_ratings() {
        let truth = [1.5, 0.4, -0.1, -0.3, -1.5];
        let mut list = Vec::new();
        // a sparse but connected design: a ring plus two chords
        for (a, b) in [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0), (0, 2), (1, 3)] {
            list.push((a, b, sigmoid(truth[a] - truth[b])));
        }
        let fit = fit(5, &obs(&list));
        assert!(fit.identified && fit.max_gradient <= TOLERANCE, "{fit:?}");
        for (got, want) in fit.ratings.iter().zip(truth) {
            assert!((got - want).abs() < 1e-8, "{:?} vs {truth:?}", fit.ratings);
        }
        assert!(fit.iterations < 15, "{}", fit.iterations);
    }

    #[test]
    fn agrees_with_the_reference_gradient_ascent() {
        // small tournaments where 1000 reference steps have converged
        let cases = [
            vec![
                (0, 1, 0.8),
                (1, 0, 0.4),
                (0, 2, 0.9),
                (1, 2, 0.6),
                (2, 0, 0.3),
            ],
            vec![
                (0, 1, 0.55),
                (2, 3, 0.7),
                (0, 2, 0.35),
                (1, 3, 0.6),
                (0, 3, 0.9),
                (1, 2, 0.2),
            ],
            vec![(0, 1, 1.0), (1, 2, 1.0), (2, 0, 1.0), (0, 2, 0.5)],
            vec![(0, 1, 0.5), (1, 2, 0.5), (3, 0, 0.25), (2, 3, 0.75)],
        ];
        for list in cases {
            let o = obs(&list);
            let n = 1 + list.iter().map(|&(a, b, _)| a.max(b)).max().unwrap();
            let want = reference(n, &o);
            let got = fit(n, &o);
            assert!(
                max_abs(&gradient(&want, &o)) < 1e-6,
                "reference not converged: {list:?}"
            );
            for (g, w) in got.ratings.iter().zip(&want) {
                assert!(
                    (g - w).abs() < 1e-6,
                    "{list:?}: {:?} vs {want:?}",
                    got.ratings
                );
            }
            assert!(got.max_gradient <= TOLERANCE);
            assert!(log_likelihood(&got.ratings, &o) >= log_likelihood(&want, &o) - 1e-12);
        }
    }

    fn max_abs(v: &[f64]) -> f64 {
        v.iter().fold(0.0f64, |m, &x| m.max(x.abs()))
    }

    #[test]
    fn mean_centred_and_order_free() {
        let list = [
            (0, 1, 0.7),
            (1, 2, 0.6),
            (2, 3, 0.2),
            (3, 0, 0.45),
            (0, 2, 0.65),
        ];
        let a = fit(4, &obs(&list));
        assert!(a.ratings.iter().sum::<f64>().abs() < 1e-12);
        // the same pairs written the other way round
        let flipped: Vec<_> = list.iter().map(|&(x, y, s)| (y, x, 1.0 - s)).collect();
        let b = fit(4, &obs(&flipped));
        for (x, y) in a.ratings.iter().zip(&b.ratings) {
            assert!((x - y).abs() < 1e-10);
        }
    }

    #[test]
    fn separated_players_are_flagged_and_finite() {
        // player 0 wins everything outright
        let list = [(0, 1, 1.0), (0, 2, 1.0), (1, 2, 0.6), (2, 1, 0.3)];
        let f = fit(3, &obs(&list));
        assert!(!f.identified);
        assert!(f.ratings.iter().all(|r| r.is_finite()));
        assert!(f.max_gradient <= TOLERANCE, "{f:?}");
        assert!(
            f.ratings[0] > f.ratings[1] + 15.0 && f.ratings[1] > f.ratings[2],
            "{f:?}"
        );
        // two disconnected pairs: each centred on its own
        let f = fit(4, &obs(&[(0, 1, 0.7), (2, 3, 0.4)]));
        assert!(!f.identified);
        assert!((f.ratings[0] + f.ratings[1]).abs() < 1e-12);
        assert!((f.ratings[2] + f.ratings[3]).abs() < 1e-12);
        assert!((f.ratings[0] - f.ratings[1] - (0.7f64 / 0.3).ln()).abs() < 1e-9);
    }

    #[test]
    fn no_observations() {
        let f = fit(3, &[]);
        assert_eq!(f.ratings, [0.0, 0.0, 0.0]);
        assert_eq!(fit(0, &[]).ratings, Vec::<f64>::new());
        assert_eq!(fit(1, &[]).ratings, [0.0]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn newton_reaches_at_least_the_reference_maximum(
            n in 2usize..=7,
            outcomes in proptest::collection::vec(0.05f64..=0.95, 30),
        ) {
            // a round robin: every pair once (connected, outcomes strictly inside (0, 1))
            let mut list = Vec::new();
            let mut k = 0;
            for a in 0..n {
                for b in a + 1..n {
                    list.push((a, b, outcomes[k % outcomes.len()]));
                    k += 1;
                }
            }
            let o = obs(&list);
            let f = fit(n, &o);
            prop_assert!(f.identified);
            prop_assert!(f.max_gradient <= TOLERANCE, "{:?}", f);
            prop_assert!(f.iterations < 20, "{:?}", f);
            prop_assert!(f.ratings.iter().sum::<f64>().abs() < 1e-9);
            let r = reference(n, &o);
            prop_assert!(log_likelihood(&f.ratings, &o) >= log_likelihood(&r, &o) - 1e-12);
            // where the reference's 1000 steps have converged, the same ratings
            if max_abs(&gradient(&r, &o)) < 1e-7 {
                for (x, y) in f.ratings.iter().zip(&r) {
                    prop_assert!((x - y).abs() < 1e-5, "{:?} vs {:?}", f.ratings, r);
                }
            }
        }
    }
}
