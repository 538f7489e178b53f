//! Optimal sampling from two models over one vocabulary: the base π_θ and the teacher π_t mixed
//! geometrically, `q*(x) ∝ π_θ(x)^(1−α) · π_t(x)^α` (α is the teacher's weight), with α chosen
//! per step by a method ([`AlphaMethod`]) and clamped to `[α_min, α_max]`.
//!
//! Writing `d = log π_t − log π_θ` and `q_α ∝ π_θ·exp(α·d)` (restricted to the support the
//! teacher's top-k / top-p leaves), the methods solve, on the bracket `[α_min, α_max]`:
//! - `fixed`: the given α;
//! - `entropy`: `α = H(π_θ) / (H(π_θ) + H(π_t))` (0.5 when both are 0);
//! - `kl_symmetry`: `Δ(α) = E_q[d] = 0`, i.e. `KL(q‖π_θ) = KL(q‖π_t)`; `Δ' = Var_q[d] ≥ 0`;
//! - `reverse_kl_symmetry`: `Δ(α) = Σ (π_θ − π_t)·log q_α = 0`, which is linear in α:
//!   `Δ(α) = H(π_t) − H(π_θ) + E_t[d] + α·(E_θ[d] − E_t[d])`;
//! - `ess_balance`: `ESS_x(q) = 1 / Σ π_x²/q`, `Δ(α) = ln(Σ π_t²/q_α) − ln(Σ π_θ²/q_α) =
//!   ln(ESS_θ/ESS_t)`, with `Δ(0) = ln(1 + χ²(π_t‖π_θ)) ≥ 0 ≥ Δ(1)`.
//!
//! Each root method stops at `|Δ(α)| ≤ tolerance` (default 1e-6), or returns the bracket end
//! nearer to a root when `Δ` does not change sign on the bracket, and says which
//! ([`AlphaStatus`]). Two distributions that agree (|Δ| within tolerance at both ends) give 0.5
//! clamped into the bracket. The root search steps to the roots of cubic Hermite interpolants
//! of Δ and Δ' under a bisection safeguard ([`solve`]); each evaluation is one fused pass over
//! the row with one f64 exponential per token ([`kernels`]), and a [`Mixer`] reuses its buffers
//! from row to row, so nothing is allocated per iteration (nor per row once warm).

mod kernels;
pub mod reference;
mod solve;
mod summary;

pub use summary::MixSummary;

use serde::{Deserialize, Serialize};

use crate::error::{Result, SamplingError};
use crate::math::EXP_F64_REL_ERR;
use crate::row::{checked_max, Row};
use kernels::padded;
use solve::{find_root, Point};

/// A pass whose weights sum to less than this under a bounding shift is redone with the exact
/// maximum as the shift: the weights' floor (`e^-80` per token in the f32 passes, less in the
/// f64 ones, see the kernels) must stay negligible against the sum (`e^-46`: a relative 2e-15
/// per token).
const MIN_TOTAL: f64 = 1e-20;

/// Scale of one f32 weight's relative rounding (`exp` is within 2 ulp, typically well under 1;
/// the exponent's rounding to f32 is corrected to first order), used in root-sum-square bounds
/// of the f32 ESS pass's rounding (calibrated by the property tests' substitution checks).
const WEIGHT_EPS: f64 = 1.5e-7;

/// Bound of the relative error of a sum of `n` nonnegative f64 terms accumulated in 4 lanes,
/// each term within `term_err` (relative) of its exact value: `term_err` plus the additions'
/// rounding, `(n/4 + 4)·ε`.
fn sum_err(term_err: f64, n: usize) -> f64 {
    term_err + (n as f64 / 4.0 + 4.0) * f64::EPSILON
}

/// How α (the teacher's weight) is chosen at each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlphaMethod {
    /// The given α.
    Fixed,
    /// `H(π_θ) / (H(π_θ) + H(π_t))`.
    Entropy,
    /// The root of `E_q[log π_t − log π_θ]`: `KL(q‖π_θ) = KL(q‖π_t)`.
    KlSymmetry,
    /// The root of `Σ (π_θ − π_t)·log q`.
    ReverseKlSymmetry,
    /// The root of `ln ESS_θ(q) − ln ESS_t(q)`.
    EssBalance,
}

impl AlphaMethod {
    /// Every method.
    pub const ALL: [AlphaMethod; 5] = [
        AlphaMethod::Fixed,
        AlphaMethod::Entropy,
        AlphaMethod::KlSymmetry,
        AlphaMethod::ReverseKlSymmetry,
        AlphaMethod::EssBalance,
    ];

    /// The method's name (`kl_symmetry`, …).
    pub fn name(self) -> &'static str {
        match self {
            AlphaMethod::Fixed => "fixed",
            AlphaMethod::Entropy => "entropy",
            AlphaMethod::KlSymmetry => "kl_symmetry",
            AlphaMethod::ReverseKlSymmetry => "reverse_kl_symmetry",
            AlphaMethod::EssBalance => "ess_balance",
        }
    }

    /// The method called `name`. Error: an unknown name ([`SamplingError::InvalidConfig`] on
    /// field `alpha_method`, listing the known ones).
    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| SamplingError::InvalidConfig {
                field: "alpha_method".into(),
                value: name.into(),
                reason: format!(
                    "unknown method (known: {})",
                    Self::ALL.map(|m| m.name()).join(", ")
                ),
            })
    }

    /// Whether α is the root of a residual `Δ(α)`.
    pub fn is_root(self) -> bool {
        matches!(
            self,
            AlphaMethod::KlSymmetry | AlphaMethod::ReverseKlSymmetry | AlphaMethod::EssBalance
        )
    }
}

impl std::fmt::Display for AlphaMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How one step's α was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlphaStatus {
    /// The fixed α.
    Fixed,
    /// A closed-form value (`entropy`), clamped to the bracket.
    ClosedForm,
    /// A root: `|Δ(α)| ≤ tolerance`.
    Root,
    /// `Δ` keeps one sign on the bracket: the end nearer to a root.
    BracketEnd,
    /// The two distributions agree (`|Δ| ≤ tolerance` over the bracket): 0.5, clamped.
    Equal,
    /// α = 1 imposed: the teacher alone (first token, or a special token as its favourite).
    Forced,
    /// The search ran out of bracket before `|Δ| ≤ tolerance` (not seen on finite rows): the
    /// point with the smallest `|Δ|`.
    Unconverged,
}

/// Options of a [`Mixer`].
#[derive(Debug, Clone, PartialEq)]
pub struct MixOptions {
    /// How α is chosen.
    pub method: AlphaMethod,
    /// α of [`AlphaMethod::Fixed`] (within `[alpha_min, alpha_max]`; unused by the others).
    pub alpha: f64,
    /// Lower end of the bracket α is clamped to (default 0).
    pub alpha_min: f64,
    /// Upper end of the bracket (default 1).
    pub alpha_max: f64,
    /// Keep only the teacher's `k` most likely tokens in q* (ties kept).
    pub teacher_top_k: Option<usize>,
    /// Keep only the teacher's smallest most-likely set holding probability `≥ p` in q* (after
    /// top-k; the token that crosses `p` is kept).
    pub teacher_top_p: Option<f64>,
    /// `|Δ(α)|` at which a root is accepted (default 1e-6).
    pub tolerance: f64,
    /// Token ids for which the teacher decides alone: a step whose teacher arg-max is one of them
    /// uses α = 1.
    pub teacher_special: Vec<u32>,
}

impl Default for MixOptions {
    fn default() -> Self {
        Self {
            method: AlphaMethod::KlSymmetry,
            alpha: 0.5,
            alpha_min: 0.0,
            alpha_max: 1.0,
            teacher_top_k: None,
            teacher_top_p: None,
            tolerance: 1e-6,
            teacher_special: Vec::new(),
        }
    }
}

fn invalid(field: &str, value: impl ToString, reason: &str) -> SamplingError {
    SamplingError::InvalidConfig {
        field: field.into(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

impl MixOptions {
    /// Checks every field: `0 ≤ alpha_min ≤ alpha_max ≤ 1`, `alpha` in [0, 1] (and inside the
    /// bracket for [`AlphaMethod::Fixed`]), `top_k ≥ 1`, `0 < top_p ≤ 1`, `tolerance > 0` (each
    /// finite).
    pub fn validate(&self) -> Result<()> {
        let unit = |x: f64| x.is_finite() && (0.0..=1.0).contains(&x);
        if !unit(self.alpha_min) {
            return Err(invalid("alpha_min", self.alpha_min, "must lie in [0, 1]"));
        }
        if !unit(self.alpha_max) || self.alpha_max < self.alpha_min {
            return Err(invalid(
                "alpha_max",
                self.alpha_max,
                &format!("must lie in [alpha_min = {}, 1]", self.alpha_min),
            ));
        }
        if !unit(self.alpha) {
            return Err(invalid("alpha", self.alpha, "must lie in [0, 1]"));
        }
        let inside = self.alpha >= self.alpha_min && self.alpha <= self.alpha_max;
        if self.method == AlphaMethod::Fixed && !inside {
            return Err(invalid(
                "alpha",
                self.alpha,
                &format!(
                    "must lie in [alpha_min, alpha_max] = [{}, {}]",
                    self.alpha_min, self.alpha_max
                ),
            ));
        }
        if self.teacher_top_k == Some(0) {
            return Err(invalid("teacher_top_k", 0, "must be at least 1"));
        }
        if let Some(p) = self.teacher_top_p {
            if !(p.is_finite() && p > 0.0 && p <= 1.0) {
                return Err(invalid("teacher_top_p", p, "must lie in (0, 1]"));
            }
        }
        if !(self.tolerance.is_finite() && self.tolerance > 0.0) {
            return Err(invalid("tolerance", self.tolerance, "must be positive"));
        }
        Ok(())
    }
}

/// α for one row and how it was found.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AlphaSolution {
    /// The teacher's weight.
    pub alpha: f64,
    /// How it was obtained.
    pub status: AlphaStatus,
    /// `Δ(α)` of the method at α (0 for `fixed`, `entropy` and forced steps).
    pub residual: f64,
    /// Passes over the row the solve took after the two preparation passes.
    pub passes: usize,
}

/// One step's diagnostics: α and how the mixture relates to both models.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MixStep {
    /// The teacher's weight.
    pub alpha: f64,
    /// How α was obtained.
    pub status: AlphaStatus,
    /// `Δ(α)` of the method at α.
    pub residual: f64,
    /// Passes over the row the α solve took.
    pub passes: usize,
    /// `ESS_θ(q) = 1 / Σ π_θ²/q` (in (0, 1]).
    pub ess_theta: f64,
    /// `ESS_t(q) = 1 / Σ π_t²/q`.
    pub ess_teacher: f64,
    /// `ESS_θ / ESS_t`.
    pub ess_ratio: f64,
    /// `KL(q‖π_θ)` (nats).
    pub kl_q_theta: f64,
    /// `KL(q‖π_t)` (nats).
    pub kl_q_teacher: f64,
    /// Tokens in q*'s support (after the teacher's top-k / top-p).
    pub support: usize,
}

/// What the preparation passes learn about a (θ, teacher) pair.
#[derive(Debug, Clone, Copy)]
struct Prepared {
    /// Support threshold on the teacher's logits (`-inf`: none).
    tau: f32,
    /// `ln Σ e^x` and `ln Σ e^y`: `lp = x − c_theta`, `lp + d = y − c_teacher`.
    c_theta: f64,
    c_teacher: f64,
    support: usize,
    h_theta: f64,
    h_teacher: f64,
    /// `E_θ[d]`, `Var_θ[d]`, `E_t[d]`, `Var_t[d]`.
    e0: f64,
    v0: f64,
    e1: f64,
    v1: f64,
    /// Bound of the weights' rounding in the log-ratio's constant `ln Σe^y − ln Σe^x`, which
    /// shifts every `d` alike (0 once renormalised exactly).
    noise_k: f64,
    /// Bound of the weights' rounding in the entropies and `E_θ[d]`, `E_t[d]` together.
    noise_moments: f64,
}

/// The moments of `d` under `q_α`: `A(α) = ln Σ π_θ·e^{αd}`, `E_q[d]`, `Var_q[d]`.
#[derive(Debug, Clone, Copy)]
struct Tilt {
    alpha: f64,
    log_z: f64,
    mean: f64,
    var: f64,
    /// Bound of the weights' rounding in `mean` (0 with libm weights).
    noise: f64,
}

/// `ln Σ π_θ·e^{(2−α)d}` and `ln Σ π_θ·e^{−αd}` with the means of `d` under both tilts.
#[derive(Debug, Clone, Copy)]
struct EssTilts {
    alpha: f64,
    l_teacher: f64,
    l_theta: f64,
    mean_teacher: f64,
    mean_theta: f64,
    /// Bound of the weights' rounding in `l_teacher − l_theta` (0 with libm weights).
    noise: f64,
}

/// Mixes θ's and the teacher's logits rows into q*, row after row, reusing its buffers.
#[derive(Debug, Clone)]
pub struct Mixer {
    options: MixOptions,
    lp: Vec<f64>,
    d: Vec<f64>,
    ex: Vec<f64>,
    ey: Vec<f64>,
    teacher_row: Row,
    passes: usize,
    /// Evaluate with libm f64 exponentials (the retry of a search whose rounding bounds could
    /// not certify the tolerance).
    exact: bool,
    /// `max_i (lp_i + b·d_i)` for `b = −1, 0, 1, 2` of the current row: shifts for the ESS
    /// tilts (the maximum is convex in `b`, so on `[−1, 0]` and `[1, 2]` it is at most the
    /// larger end's).
    tilt_max: [f64; 4],
    /// `e^{2d − gap}` per entry for the one-exponential ESS pass ([`kernels::ess_ratio`]).
    ratio: Vec<f64>,
    /// Whether `ratio` is computed for the current row (`None`: not yet) and within the range
    /// the one-exponential pass allows.
    ratio_ok: Option<bool>,
    /// The sums of the ESS tilts at α = 0 and 1 from the ratio pass (see
    /// [`kernels::ess_ratio`]).
    ratio_ends: [f64; 4],
}

impl Mixer {
    /// A mixer with `options` (validated, see [`MixOptions::validate`]).
    pub fn new(options: MixOptions) -> Result<Self> {
        options.validate()?;
        Ok(Self {
            options,
            lp: Vec::new(),
            d: Vec::new(),
            ex: Vec::new(),
            ey: Vec::new(),
            teacher_row: Row::new(),
            passes: 0,
            exact: false,
            tilt_max: [0.0; 4],
            ratio: Vec::new(),
            ratio_ok: None,
            ratio_ends: [0.0; 4],
        })
    }

    /// The options.
    pub fn options(&self) -> &MixOptions {
        &self.options
    }

    /// α for the logits rows `theta` and `teacher` (`row` names them in errors). Errors: rows
    /// of different lengths ([`SamplingError::VocabSizes`]), an invalid row (see
    /// [`crate::validate_logits`]), no token both keep ([`SamplingError::DisjointSupports`]).
    pub fn alpha(&mut self, theta: &[f32], teacher: &[f32], row: usize) -> Result<AlphaSolution> {
        if self.options.method == AlphaMethod::Fixed
            && self.options.teacher_top_k.is_none()
            && self.options.teacher_top_p.is_none()
        {
            // Nothing to compute: check the rows as a mixing step would.
            self.check_rows(theta, teacher, row)?;
            return Ok(self.solve_fixed());
        }
        let p = self.prepare(theta, teacher, row)?;
        Ok(self.solve(&p).0)
    }

    /// One step: α (α = 1 when `force_teacher`, or when the teacher's favourite token is one of
    /// [`MixOptions::teacher_special`]), the q* logits row written into `out` (resized to the
    /// vocabulary; `(1−α)·zθ + α·zt` on the support, `-inf` elsewhere — α = 0 gives θ's row
    /// exactly, α = 1 the teacher's) and the step's diagnostics. Errors as [`Mixer::alpha`].
    pub fn mix(
        &mut self,
        theta: &[f32],
        teacher: &[f32],
        row: usize,
        force_teacher: bool,
        out: &mut Vec<f32>,
    ) -> Result<MixStep> {
        let p = self.prepare(theta, teacher, row)?;
        let special = !self.options.teacher_special.is_empty()
            && crate::math::argmax(teacher)
                .is_some_and(|i| self.options.teacher_special.contains(&(i as u32)));
        let (sol, tilt, ess) = if force_teacher || special {
            let sol = AlphaSolution {
                alpha: 1.0,
                status: AlphaStatus::Forced,
                residual: 0.0,
                passes: 0,
            };
            (sol, None, None)
        } else {
            self.solve(&p)
        };
        let a = sol.alpha;
        let tilt = match tilt {
            Some(t) if t.alpha == a => t,
            _ => self.tilt(a),
        };
        let ess = match ess {
            Some(e) if e.alpha == a => e,
            _ => self.ess_tilts(a),
        };
        out.resize(theta.len(), 0.0);
        kernels::write_mix(theta, teacher, p.tau, a, out);
        let ln_ess_theta = -tilt.log_z - ess.l_theta;
        let ln_ess_teacher = -tilt.log_z - ess.l_teacher;
        Ok(MixStep {
            alpha: a,
            status: sol.status,
            residual: sol.residual,
            passes: sol.passes,
            // ≤ 1 by Cauchy–Schwarz; rounded weights can land just above it.
            ess_theta: ln_ess_theta.exp().min(1.0),
            ess_teacher: ln_ess_teacher.exp().min(1.0),
            ess_ratio: (ln_ess_theta - ln_ess_teacher).exp(),
            kl_q_theta: (a * tilt.mean - tilt.log_z).max(0.0),
            kl_q_teacher: ((a - 1.0) * tilt.mean - tilt.log_z).max(0.0),
            support: p.support,
        })
    }

    /// The two preparation passes: validation, the teacher's support, `lp = log π_θ` and
    /// `d = log π_t − log π_θ` on it, entropies and the moments of `d` at α = 0 and 1.
    fn prepare(&mut self, theta: &[f32], teacher: &[f32], row: usize) -> Result<Prepared> {
        let (m_theta, m_teacher) = self.check_rows(theta, teacher, row)?;
        let tau = self.support_threshold(teacher, row)?;
        let m_theta = if tau > f32::NEG_INFINITY {
            kernels::masked_max(theta, teacher, tau)
        } else {
            m_theta
        };
        let n = padded(theta.len());
        self.lp.resize(n, 0.0);
        self.d.resize(n, 0.0);
        self.ex.resize(n, 0.0);
        self.ey.resize(n, 0.0);
        let (s, support) = kernels::prepare(
            theta,
            teacher,
            tau,
            m_theta,
            m_teacher,
            &mut self.lp,
            &mut self.d,
            &mut self.ex,
            &mut self.ey,
        );
        let [zx, zy, zxx, zyy] = s;
        if support == 0 || !(zx > 0.0 && zy > 0.0) {
            return Err(SamplingError::DisjointSupports { row });
        }
        let (c_theta, c_teacher) = (zx.ln(), zy.ln());
        let k = c_teacher - c_theta;
        let (m, tilt_max) =
            kernels::finish(c_theta, k, &mut self.lp, &mut self.d, &self.ex, &self.ey);
        let (e0, e1) = (m[0] / zx, m[2] / zy);
        let (v0, v1) = (
            (m[1] / zx - e0 * e0).max(0.0),
            (m[3] / zy - e1 * e1).max(0.0),
        );
        // Each weight within 2·EXP_F64_REL_ERR of its exact value (its exponential, and the
        // exponent's rounding); the normalising constants within `err`, relative, and so
        // `k` within 2·err. The entropies' `Σ w·x / Σ w` (one-signed terms) within 2·err of
        // theirs, the means of d within 2·err·√E[d²] (Cauchy–Schwarz on Σ w·|d|).
        let err = sum_err(2.0 * EXP_F64_REL_ERR, n);
        let (rms0, rms1) = ((v0 + e0 * e0).sqrt(), (v1 + e1 * e1).sqrt());
        self.passes = 0;
        self.tilt_max = tilt_max;
        self.ratio_ok = None;
        Ok(Prepared {
            tau,
            c_theta,
            c_teacher,
            support,
            h_theta: (c_theta - zxx / zx).max(0.0),
            h_teacher: (c_teacher - zyy / zy).max(0.0),
            e0,
            v0,
            e1,
            v1,
            noise_k: 2.0 * err,
            // Twice the sum of the bounds of h_θ, h_t, E_θ[d] and E_t[d]: margin for the
            // closed form's combination of them.
            noise_moments: 4.0 * err * (2.0 + zxx.abs() / zx + zyy.abs() / zy + rms0 + rms1),
        })
    }

    /// Checks both rows (same length, valid logits) and returns their maxima.
    fn check_rows(&self, theta: &[f32], teacher: &[f32], row: usize) -> Result<(f32, f32)> {
        if theta.len() != teacher.len() {
            return Err(SamplingError::VocabSizes {
                theta: theta.len(),
                teacher: teacher.len(),
            });
        }
        Ok((checked_max(theta, row)?, checked_max(teacher, row)?))
    }

    /// The fixed α.
    fn solve_fixed(&self) -> AlphaSolution {
        AlphaSolution {
            alpha: self.options.alpha,
            status: AlphaStatus::Fixed,
            residual: 0.0,
            passes: 0,
        }
    }

    /// The threshold on the teacher's logits its top-k / top-p keep (`-inf`: no restriction).
    fn support_threshold(&mut self, teacher: &[f32], row: usize) -> Result<f32> {
        let (k, p) = (self.options.teacher_top_k, self.options.teacher_top_p);
        if k.is_none() && p.is_none_or(|p| p >= 1.0) {
            return Ok(f32::NEG_INFINITY);
        }
        let r = &mut self.teacher_row;
        r.load(teacher, row)?;
        let mut tau = f32::NEG_INFINITY;
        if let Some(k) = k {
            tau = r.kth_largest(k);
            r.retain_ge(tau);
        }
        if let Some(p) = p.filter(|&p| p < 1.0) {
            tau = tau.max(r.mass_threshold(p));
        }
        Ok(tau)
    }

    /// α by the configured method. A search whose weights cannot resolve the tolerance (a
    /// residual so steep that the bound of the weights' rounding exceeds it: f32 weights of the
    /// fallback ESS pass) is run again with libm f64 exponentials.
    fn solve(&mut self, p: &Prepared) -> (AlphaSolution, Option<Tilt>, Option<EssTilts>) {
        let first = self.solve_once(p);
        if first.0.status != AlphaStatus::Unconverged {
            return first;
        }
        self.exact = true;
        let exact = self.renormalize_exact(p);
        let mut retry = self.solve_once(&exact);
        self.exact = false;
        // Later diagnostics passes are the fast ones again: drop the cached libm evaluations.
        retry.1 = None;
        retry.2 = None;
        retry
    }

    /// Makes `lp` and `d` exact log-probabilities (their constants from libm f64 sums, two
    /// passes) and recomputes the preparation's statistics from them (one more pass).
    fn renormalize_exact(&mut self, p: &Prepared) -> Prepared {
        let (a, b) = kernels::log_norms_exact(&self.lp, &self.d);
        for l in self.lp.iter_mut() {
            *l -= a;
        }
        for dv in self.d.iter_mut() {
            // lp + d must lose b, lp already lost a; 0 off the support stays 0.
            if *dv != 0.0 {
                *dv -= b - a;
            }
        }
        self.ratio_ok = None;
        let (c, _) = kernels::log_norms_exact(&self.lp, &self.d);
        debug_assert!(c.abs() < 1e-12);
        let m = kernels::end_moments_exact(&self.lp, &self.d);
        self.passes += 3;
        Prepared {
            e0: m[0],
            v0: (m[1] - m[0] * m[0]).max(0.0),
            e1: m[2],
            v1: (m[3] - m[2] * m[2]).max(0.0),
            h_theta: -m[4],
            h_teacher: -m[5],
            noise_k: 0.0,
            noise_moments: 0.0,
            ..*p
        }
    }

    /// One search (see [`Mixer::solve`]).
    fn solve_once(&mut self, p: &Prepared) -> (AlphaSolution, Option<Tilt>, Option<EssTilts>) {
        let o = &self.options;
        // A point is a root when |Δ| plus the bound of its f32 rounding is within tolerance.
        let (lo, hi, tol) = (o.alpha_min, o.alpha_max, o.tolerance);
        let closed = |alpha: f64, status| AlphaSolution {
            alpha,
            status,
            residual: 0.0,
            passes: 0,
        };
        match o.method {
            AlphaMethod::Fixed => (self.solve_fixed(), None, None),
            AlphaMethod::Entropy => {
                let h = p.h_theta + p.h_teacher;
                let a = if h > 0.0 { p.h_theta / h } else { 0.5 };
                (closed(a.clamp(lo, hi), AlphaStatus::ClosedForm), None, None)
            }
            AlphaMethod::ReverseKlSymmetry => {
                // Δ(α) = c0 + α·c1, c1 = −(KL(θ‖t) + KL(t‖θ)) ≤ 0.
                let c0 = p.h_teacher - p.h_theta + p.e1;
                let c1 = p.e0 - p.e1;
                // The entropies and means come from rounded weights too.
                let noise = 2.0 * p.noise_k + p.noise_moments;
                let at = |a: f64| Point {
                    alpha: a,
                    value: c0 + a * c1,
                    slope: c1,
                    noise,
                };
                let out = find_root(at(lo), at(hi), tol, at);
                let sol = AlphaSolution {
                    alpha: out.alpha,
                    status: out.status,
                    residual: out.residual,
                    passes: self.passes,
                };
                (sol, None, None)
            }
            AlphaMethod::KlSymmetry => {
                let mut last: Option<Tilt> = None;
                let nk = p.noise_k;
                let end = |a: f64, mean: f64, var: f64, noise: f64| Point {
                    alpha: a,
                    value: mean,
                    slope: var,
                    noise: noise + nk,
                };
                let lo_p = if lo == 0.0 {
                    end(0.0, p.e0, p.v0, 0.0)
                } else {
                    let t = self.tilt(lo);
                    end(lo, t.mean, t.var, t.noise)
                };
                let hi_p = if hi == 1.0 {
                    end(1.0, p.e1, p.v1, 0.0)
                } else {
                    let t = self.tilt(hi);
                    end(hi, t.mean, t.var, t.noise)
                };
                let out = find_root(lo_p, hi_p, tol, |a| {
                    let t = self.tilt(a);
                    last = Some(t);
                    end(a, t.mean, t.var, t.noise)
                });
                let sol = AlphaSolution {
                    alpha: out.alpha,
                    status: out.status,
                    residual: out.residual,
                    passes: self.passes,
                };
                (sol, last, None)
            }
            AlphaMethod::EssBalance => {
                let mut last: Option<EssTilts> = None;
                // Δ holds the log-ratio's constant twice.
                let nk = 2.0 * p.noise_k;
                let mut at = |m: &mut Self, a: f64| {
                    let e = m.ess_tilts(a);
                    last = Some(e);
                    Point {
                        alpha: a,
                        value: e.l_teacher - e.l_theta,
                        slope: e.mean_theta - e.mean_teacher,
                        noise: e.noise + nk,
                    }
                };
                // The ends α = 0 and 1 come with the ratio pass: there one tilt is π_θ or π_t
                // itself (ln Σ = 0, mean E_θ[d] or E_t[d]), the other the preparation's weights
                // times the ratios (α = 0: e^{lp+2d} = e^x·ratio·e^{gap−c_θ}) or divided by them
                // (α = 1: e^{lp−d} = e^y/ratio·e^{−gap−c_t}).
                let (sb, sc) = self.ess_shifts();
                let gap = sb - sc;
                let ends = (!self.exact && self.ratio_usable(gap)).then_some(self.ratio_ends);
                let noise = self.ess_noise() + nk;
                let end = |a: f64| {
                    let [u0, u0d, v1, v1d] = ends?;
                    let (value, slope) = if a == 0.0 {
                        (gap - p.c_theta + u0.ln(), p.e0 - u0d / u0)
                    } else {
                        (p.c_teacher + gap - v1.ln(), v1d / v1 - p.e1)
                    };
                    (value.is_finite() && slope.is_finite()).then_some(Point {
                        alpha: a,
                        value,
                        slope,
                        noise,
                    })
                };
                let lo_p = match (lo == 0.0).then(|| end(0.0)).flatten() {
                    Some(e) => e,
                    None => at(self, lo),
                };
                let hi_p = match (hi == 1.0).then(|| end(1.0)).flatten() {
                    Some(e) => e,
                    None => at(self, hi),
                };
                let out = find_root(lo_p, hi_p, tol, |a| at(self, a));
                let sol = AlphaSolution {
                    alpha: out.alpha,
                    status: out.status,
                    residual: out.residual,
                    passes: self.passes,
                };
                (sol, None, last)
            }
        }
    }

    /// `A(α)`, `E_q[d]`, `Var_q[d]` in one pass (two if the weights underflow unshifted).
    fn tilt(&mut self, alpha: f64) -> Tilt {
        self.passes += 1;
        let mut shift = 0.0;
        let moments = if self.exact {
            kernels::moments_exact
        } else {
            kernels::moments
        };
        let mut s = moments(&self.lp, &self.d, alpha, shift);
        if s[0].is_nan() || s[0] <= MIN_TOTAL {
            shift = kernels::max_tilted(&self.lp, &self.d, alpha);
            s = moments(&self.lp, &self.d, alpha, shift);
            self.passes += 1;
        }
        let mean = s[1] / s[0];
        let var = (s[2] / s[0] - mean * mean).max(0.0);
        // Each weight within 2·EXP_F64_REL_ERR of its exact value (its exponential and the
        // exponent's rounding): the mean moves by at most that times E_q|d − mean| ≤ √Var,
        // and the sums' rounding by (n/4 + 4)·ε times E_q|d| ≤ √E_q[d²]; 0 for libm passes.
        let noise = if self.exact {
            0.0
        } else {
            2.0 * sum_err(2.0 * EXP_F64_REL_ERR, self.d.len()) * (var + mean * mean).sqrt()
        };
        Tilt {
            alpha,
            log_z: shift + s[0].ln(),
            mean,
            var,
            noise,
        }
    }

    /// Whether the row's ESS ratios for `gap = sb − sc` allow the one-exponential pass,
    /// computing them (one pass) at the row's first call.
    fn ratio_usable(&mut self, gap: f64) -> bool {
        if self.ratio_ok.is_none() {
            self.ratio.resize(self.d.len(), 0.0);
            let (g, ends) = kernels::ess_ratio(&self.d, &self.ex, &self.ey, gap, &mut self.ratio);
            self.passes += 1;
            self.ratio_ok = Some(g <= kernels::ESS_RATIO_MAX);
            self.ratio_ends = ends;
        }
        self.ratio_ok == Some(true)
    }

    /// The ESS tilts' shifts `(sb, sc)`: bounds of `max_i (lp_i + b·d_i)` for `b` in `[1, 2]`
    /// and in `[−1, 0]`.
    fn ess_shifts(&self) -> (f64, f64) {
        let [m_neg1, m0, m1, m2] = self.tilt_max;
        (m1.max(m2), m_neg1.max(m0))
    }

    /// Bound of the rounding in `ln Σu − ln Σv` of an f64 ESS pass: v within 2·EXP_F64_REL_ERR
    /// (its exponential and the exponent's rounding), u = v·ratio within 4·EXP_F64_REL_ERR.
    fn ess_noise(&self) -> f64 {
        sum_err(4.0 * EXP_F64_REL_ERR, self.d.len()) + sum_err(2.0 * EXP_F64_REL_ERR, self.d.len())
    }

    /// The two tilts of the ESS terms at α in one pass, shifted by the bounds of the preparation
    /// pass: one f64 exponential per entry and the row's ratios ([`kernels::ess_pass`]) where
    /// their range allows, else two f32 exponentials per entry (by exact maxima, in two more
    /// passes, if the weights underflow under the bounds).
    fn ess_tilts(&mut self, alpha: f64) -> EssTilts {
        let (b, c) = (2.0 - alpha, -alpha);
        let (mut sb, mut sc) = self.ess_shifts();
        if !self.exact && self.ratio_usable(sb - sc) {
            self.passes += 1;
            let s = kernels::ess_pass(&self.lp, &self.d, &self.ratio, alpha, sc);
            if s[0] > MIN_TOTAL && s[2] > MIN_TOTAL {
                return EssTilts {
                    alpha,
                    l_teacher: sb + s[0].ln(),
                    l_theta: sc + s[2].ln(),
                    mean_teacher: s[1] / s[0],
                    mean_theta: s[3] / s[2],
                    noise: self.ess_noise(),
                };
            }
        }
        self.passes += 1;
        let tilts = if self.exact {
            kernels::two_tilts_exact
        } else {
            kernels::two_tilts
        };
        let mut s = tilts(&self.lp, &self.d, b, c, sb, sc);
        if s[0].is_nan() || s[2].is_nan() || s[0] <= MIN_TOTAL || s[2] <= MIN_TOTAL {
            sb = kernels::max_tilted(&self.lp, &self.d, b);
            sc = kernels::max_tilted(&self.lp, &self.d, c);
            s = tilts(&self.lp, &self.d, b, c, sb, sc);
            self.passes += 2;
        }
        EssTilts {
            alpha,
            l_teacher: sb + s[0].ln(),
            l_theta: sc + s[2].ln(),
            mean_teacher: s[1] / s[0],
            mean_theta: s[3] / s[2],
            noise: WEIGHT_EPS * (s[4].sqrt() / s[0] + s[5].sqrt() / s[2]),
        }
    }
}

#[cfg(test)]
mod tests;
