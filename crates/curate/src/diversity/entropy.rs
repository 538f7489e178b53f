//! Embedding entropy of a group of texts: how many directions their sentence embeddings spread
//! over. With `K` the cosine Gram matrix of the `n` embeddings (`K_ij = cos(e_i, e_j)`, trace
//! `n`) and `λ` the eigenvalues of `K / n` (they sum to 1), those ≤ 1e-9 dropped:
//!
//! `H = −Σ λ log₂ λ` bits — 0 when all texts embed alike, `log₂ n` when they are orthogonal.

/// Eigenvalues at or below this are dropped before the entropy sum.
pub const EIGENVALUE_FLOOR: f64 = 1e-9;

/// The most Jacobi sweeps; a symmetric matrix of the sizes met here converges in under ten.
const MAX_SWEEPS: usize = 64;

/// A symmetric `n × n` matrix in f64 (row-major, both triangles stored).
#[derive(Debug, Clone, PartialEq)]
pub struct SymmetricMatrix {
    n: usize,
    a: Vec<f64>,
}

impl SymmetricMatrix {
    /// The matrix with `M_ij = M_ji = f(i, j)` for `i ≤ j` (`f` is called on the upper triangle
    /// only).
    pub fn from_upper(n: usize, mut f: impl FnMut(usize, usize) -> f64) -> Self {
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in i..n {
                let x = f(i, j);
                a[i * n + j] = x;
                a[j * n + i] = x;
            }
        }
        Self { n, a }
    }

    /// The size `n`.
    pub fn size(&self) -> usize {
        self.n
    }

    /// Entry `(i, j)`.
    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.a[i * self.n + j]
    }

    /// The eigenvalues, ascending, by cyclic Jacobi rotations until the off-diagonal part is
    /// below 1e-15 of the matrix's Frobenius norm. Meant for the small matrices of a group
    /// (n ≲ 100): O(n³) per sweep.
    pub fn eigenvalues(&self) -> Vec<f64> {
        let n = self.n;
        let mut a = self.a.clone();
        let norm: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
        for _ in 0..MAX_SWEEPS {
            let mut off = 0.0;
            for i in 0..n {
                for j in 0..n {
                    if i != j {
                        off += a[i * n + j] * a[i * n + j];
                    }
                }
            }
            if off.sqrt() <= 1e-15 * norm {
                break;
            }
            for p in 0..n {
                for q in p + 1..n {
                    rotate(&mut a, n, p, q);
                }
            }
        }
        let mut eig: Vec<f64> = (0..n).map(|i| a[i * n + i]).collect();
        eig.sort_by(f64::total_cmp);
        eig
    }
}

/// The cosine Gram matrix of `vectors`: `K_ij = ⟨v_i, v_j⟩ / (‖v_i‖ ‖v_j‖)`, in f64. A zero
/// vector has cosine 0 with everything, itself included.
pub fn cosine_gram(vectors: &[Vec<f32>]) -> SymmetricMatrix {
    let unit: Vec<Vec<f64>> = vectors
        .iter()
        .map(|v| {
            let norm = v
                .iter()
                .map(|&x| f64::from(x) * f64::from(x))
                .sum::<f64>()
                .sqrt();
            v.iter()
                .map(|&x| if norm > 0.0 { f64::from(x) / norm } else { 0.0 })
                .collect()
        })
        .collect();
    SymmetricMatrix::from_upper(vectors.len(), |i, j| {
        unit[i].iter().zip(&unit[j]).map(|(a, b)| a * b).sum()
    })
}

/// One Jacobi rotation in the (p, q) plane zeroing `a[p][q]` (Golub & Van Loan, the stable
/// choice of the smaller angle).
fn rotate(a: &mut [f64], n: usize, p: usize, q: usize) {
    let apq = a[p * n + q];
    if apq == 0.0 {
        return;
    }
    let app = a[p * n + p];
    let aqq = a[q * n + q];
    let theta = (aqq - app) / (2.0 * apq);
    let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
    let t = if theta == 0.0 { 1.0 } else { t };
    let c = 1.0 / (t * t + 1.0).sqrt();
    let s = t * c;
    for k in 0..n {
        let akp = a[k * n + p];
        let akq = a[k * n + q];
        a[k * n + p] = c * akp - s * akq;
        a[k * n + q] = s * akp + c * akq;
    }
    for k in 0..n {
        let apk = a[p * n + k];
        let aqk = a[q * n + k];
        a[p * n + k] = c * apk - s * aqk;
        a[q * n + k] = s * apk + c * aqk;
    }
    a[p * n + q] = 0.0;
    a[q * n + p] = 0.0;
}

/// The embedding entropy (bits) of a group: `−Σ λ log₂ λ` over the eigenvalues `λ > 1e-9` of
/// `K / n`, `K` the [`cosine_gram`] of the embeddings. `None` for fewer than two.
pub fn embedding_entropy(embeddings: &[Vec<f32>]) -> Option<f64> {
    let n = embeddings.len();
    if n < 2 {
        return None;
    }
    let k = cosine_gram(embeddings);
    let scaled = SymmetricMatrix::from_upper(n, |i, j| k.get(i, j) / n as f64);
    let h = scaled
        .eigenvalues()
        .into_iter()
        .filter(|&l| l > EIGENVALUE_FLOOR)
        .map(|l| -l * l.log2())
        .sum::<f64>();
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
    }

    fn eig(m: &[f64], n: usize) -> Vec<f64> {
        SymmetricMatrix::from_upper(n, |i, j| m[i * n + j]).eigenvalues()
    }

    #[test]
    fn known_matrices() {
        assert!(close(&eig(&[2.0, 1.0, 1.0, 2.0], 2), &[1.0, 3.0], 1e-14));
        let ones = vec![1.0; 16];
        assert!(close(&eig(&ones, 4), &[0.0, 0.0, 0.0, 4.0], 1e-14));
        // The tridiagonal [2 −1; −1 2 −1; −1 2]: 2 − √2, 2, 2 + √2.
        let t = [2.0, -1.0, 0.0, -1.0, 2.0, -1.0, 0.0, -1.0, 2.0];
        let s2 = 2f64.sqrt();
        assert!(close(&eig(&t, 3), &[2.0 - s2, 2.0, 2.0 + s2], 1e-14));
        assert!(close(&eig(&[5.0, 0.0, 0.0, -1.0], 2), &[-1.0, 5.0], 0.0));
        assert!(eig(&[], 0).is_empty());
    }

    /// `Q D Qᵀ` for a rotation `Q` made of Givens rotations by the given angles.
    fn rotated(d: &[f64], angles: &[f64]) -> Vec<f64> {
        let n = d.len();
        let mut q = vec![0.0; n * n];
        for i in 0..n {
            q[i * n + i] = 1.0;
        }
        for (k, &th) in angles.iter().enumerate() {
            let (p, r) = (k % n, (k * 7 + 1) % n);
            if p == r {
                continue;
            }
            let (c, s) = (th.cos(), th.sin());
            for row in 0..n {
                let (a, b) = (q[row * n + p], q[row * n + r]);
                q[row * n + p] = c * a - s * b;
                q[row * n + r] = s * a + c * b;
            }
        }
        let mut m = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                m[i * n + j] = (0..n).map(|k| q[i * n + k] * d[k] * q[j * n + k]).sum();
            }
        }
        m
    }

    proptest! {
        #[test]
        fn recovers_the_spectrum_of_a_rotated_diagonal(
            d in prop::collection::vec(-10.0f64..10.0, 1..24),
            angles in prop::collection::vec(-3.2f64..3.2, 0..60),
        ) {
            let mut want = d.clone();
            want.sort_by(f64::total_cmp);
            let got = eig(&rotated(&d, &angles), d.len());
            prop_assert!(close(&got, &want, 1e-10), "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn entropy_of_alike_and_orthogonal_groups() {
        let same = vec![vec![0.6f32, 0.8, 0.0]; 5];
        assert!(embedding_entropy(&same).unwrap().abs() < 1e-12);
        let ortho: Vec<Vec<f32>> = (0..4)
            .map(|i| (0..4).map(|j| if i == j { 2.0 } else { 0.0 }).collect())
            .collect();
        assert!((embedding_entropy(&ortho).unwrap() - 2.0).abs() < 1e-12);
        // Two clusters of two identical vectors, orthogonal to each other: 1 bit.
        let two = vec![
            vec![1.0f32, 0.0],
            vec![1.0, 0.0],
            vec![0.0, 3.0],
            vec![0.0, 3.0],
        ];
        assert!((embedding_entropy(&two).unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(embedding_entropy(&same[..1]), None);
    }

    #[test]
    fn two_vectors_at_a_known_angle() {
        // K = [1 c; c 1] / 2 → λ = (1 ± c) / 2.
        let c = 0.3f64;
        let v = vec![
            vec![1.0f32, 0.0],
            vec![c as f32, (1.0 - c * c).sqrt() as f32],
        ];
        let c = f64::from(v[1][0]) / f64::from(v[1][0]).hypot(f64::from(v[1][1]));
        let (a, b) = ((1.0 + c) / 2.0, (1.0 - c) / 2.0);
        let want = -a * a.log2() - b * b.log2();
        assert!((embedding_entropy(&v).unwrap() - want).abs() < 1e-12);
    }
}
