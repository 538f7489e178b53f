//! The plain reference of optimal sampling, straight from the definitions in f64 (one full pass
//! with libm `exp`/`ln` per evaluation, allocating as it goes): what tests check the fast
//! [`super::Mixer`] against by substitution, and the seed's 12-step bisection that
//! `adasamp bench-alpha` times beside it.

use super::AlphaMethod;

/// The teacher's support after top-k then top-p, by sorting: the `k` most likely tokens (ties
/// at the k-th logit kept), then the shortest most-likely prefix of what is left whose
/// renormalised mass is `≥ p`, including the token that crosses `p` (and its ties).
pub fn teacher_support(teacher: &[f32], top_k: Option<usize>, top_p: Option<f64>) -> Vec<bool> {
    let mut order: Vec<usize> = (0..teacher.len())
        .filter(|&i| teacher[i] > f32::NEG_INFINITY)
        .collect();
    order.sort_by(|&a, &b| teacher[b].total_cmp(&teacher[a]).then(a.cmp(&b)));
    if let Some(k) = top_k.filter(|&k| k < order.len()) {
        let t = teacher[order[k - 1]];
        order.retain(|&i| teacher[i] >= t);
    }
    if let Some(p) = top_p.filter(|&p| p < 1.0) {
        let m = teacher[order[0]] as f64;
        let w: Vec<f64> = order
            .iter()
            .map(|&i| (teacher[i] as f64 - m).exp())
            .collect();
        let z: f64 = w.iter().sum();
        let mut cum = 0.0;
        let mut n = order.len();
        for (j, wj) in w.iter().enumerate() {
            cum += wj / z;
            if cum >= p {
                n = j + 1;
                break;
            }
        }
        let t = teacher[order[n - 1]];
        order.retain(|&i| teacher[i] >= t);
    }
    let mut keep = vec![false; teacher.len()];
    for i in order {
        keep[i] = true;
    }
    keep
}

/// `log π_θ` and `log π_t`, each renormalised over the tokens of a support.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    /// `log π_θ` on the support.
    pub theta: Vec<f64>,
    /// `log π_t` on the support.
    pub teacher: Vec<f64>,
}

fn log_softmax(z: &[f64]) -> Vec<f64> {
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
    z.iter().map(|v| v - lse).collect()
}

impl Pair {
    /// The pair of rows restricted to `keep` (all tokens when `None`) and to the tokens both
    /// rows keep (finite logits).
    pub fn new(theta: &[f32], teacher: &[f32], keep: Option<&[bool]>) -> Self {
        let idx: Vec<usize> = (0..theta.len())
            .filter(|&i| keep.is_none_or(|k| k[i]))
            .filter(|&i| theta[i] > f32::NEG_INFINITY && teacher[i] > f32::NEG_INFINITY)
            .collect();
        let a: Vec<f64> = idx.iter().map(|&i| theta[i] as f64).collect();
        let b: Vec<f64> = idx.iter().map(|&i| teacher[i] as f64).collect();
        Self {
            theta: log_softmax(&a),
            teacher: log_softmax(&b),
        }
    }

    /// `log q_α` (normalised).
    pub fn log_q(&self, alpha: f64) -> Vec<f64> {
        let z: Vec<f64> = self
            .theta
            .iter()
            .zip(&self.teacher)
            .map(|(a, b)| (1.0 - alpha) * a + alpha * b)
            .collect();
        log_softmax(&z)
    }

    /// `(H(π_θ), H(π_t))`.
    pub fn entropies(&self) -> (f64, f64) {
        let h = |l: &[f64]| -l.iter().map(|v| v.exp() * v).sum::<f64>();
        (h(&self.theta), h(&self.teacher))
    }

    /// `Δ(α)` of a root method (see [`super`]); 0 for `fixed` and `entropy`.
    pub fn residual(&self, method: AlphaMethod, alpha: f64) -> f64 {
        let lq = self.log_q(alpha);
        let it = self.theta.iter().zip(&self.teacher).zip(&lq);
        match method {
            AlphaMethod::Fixed | AlphaMethod::Entropy => 0.0,
            AlphaMethod::KlSymmetry => it.map(|((a, b), q)| q.exp() * (b - a)).sum(),
            AlphaMethod::ReverseKlSymmetry => it.map(|((a, b), q)| (a.exp() - b.exp()) * q).sum(),
            AlphaMethod::EssBalance => {
                let (ess_theta, ess_teacher) = self.ess(alpha);
                ess_theta.ln() - ess_teacher.ln()
            }
        }
    }

    /// `(ESS_θ(q_α), ESS_t(q_α))`, `ESS_x = 1 / Σ π_x²/q`.
    pub fn ess(&self, alpha: f64) -> (f64, f64) {
        let lq = self.log_q(alpha);
        let s = |l: &[f64]| {
            1.0 / l
                .iter()
                .zip(&lq)
                .map(|(x, q)| (2.0 * x - q).exp())
                .sum::<f64>()
        };
        (s(&self.theta), s(&self.teacher))
    }

    /// `(KL(q_α‖π_θ), KL(q_α‖π_t))`.
    pub fn kl(&self, alpha: f64) -> (f64, f64) {
        let lq = self.log_q(alpha);
        let k = |l: &[f64]| {
            lq.iter()
                .zip(l)
                .map(|(q, x)| q.exp() * (q - x))
                .sum::<f64>()
        };
        (k(&self.theta), k(&self.teacher))
    }

    /// α by `method` the seed's way: `fixed` and `entropy` directly, a root method by `steps`
    /// plain bisection steps on `[lo, hi]` (keeping the sign change; the midpoint of the last
    /// interval), each a full [`Pair::residual`] evaluation.
    pub fn bisect(&self, method: AlphaMethod, fixed: f64, lo: f64, hi: f64, steps: usize) -> f64 {
        match method {
            AlphaMethod::Fixed => fixed,
            AlphaMethod::Entropy => {
                let (ht, hs) = self.entropies();
                if ht + hs > 0.0 {
                    (ht / (ht + hs)).clamp(lo, hi)
                } else {
                    0.5f64.clamp(lo, hi)
                }
            }
            _ => {
                let (mut a, mut b) = (lo, hi);
                let ga = self.residual(method, a);
                for _ in 0..steps {
                    let m = 0.5 * (a + b);
                    if self.residual(method, m).signum() == ga.signum() {
                        a = m;
                    } else {
                        b = m;
                    }
                }
                0.5 * (a + b)
            }
        }
    }
}
