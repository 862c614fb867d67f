//! Small dense linear algebra in `f64` for merging adapters: thin QR and SVD.
//!
//! Merging LoRA updates (`LoraAdapter::merge`) needs the SVD of `B·A` for `B (n_out, R)` and
//! `A (R, n_in)` with a small `R`. It is computed from the factors, never from the
//! `n_out × n_in` product: `B = Q_b R_b` and `Aᵀ = Q_a R_a` (thin QR), so
//! `B·A = Q_b (R_b R_aᵀ) Q_aᵀ`, and only the `R × R` core is decomposed. The matrices are
//! therefore small, and these textbook algorithms suffice:
//!
//! - QR by Householder reflections (Golub & Van Loan, *Matrix Computations*, 4th ed., §5.2.1),
//!   stable for rank-deficient inputs (a zero column just gives a zero row of `R`);
//! - SVD by one-sided Jacobi rotations (Hestenes 1958; Demmel & Veselić, "Jacobi's method is
//!   more accurate than QR", 1992): columns are rotated pairwise until orthogonal, the singular
//!   values are their norms.

/// A dense row-major matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Mat {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// `rows · cols` values, row-major.
    pub data: Vec<f64>,
}

impl Mat {
    /// A zero matrix.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Mat { rows, cols, data: vec![0.0; rows * cols] }
    }

    /// A matrix from row-major values.
    pub fn from_vec(rows: usize, cols: usize, data: Vec<f64>) -> Self {
        assert_eq!(data.len(), rows * cols, "Mat::from_vec: {rows}×{cols} needs {} values", rows * cols);
        Mat { rows, cols, data }
    }

    /// Element `(i, j)`.
    pub fn at(&self, i: usize, j: usize) -> f64 {
        self.data[i * self.cols + j]
    }

    fn set(&mut self, i: usize, j: usize, v: f64) {
        self.data[i * self.cols + j] = v;
    }

    /// The transpose.
    pub fn t(&self) -> Mat {
        let mut out = Mat::zeros(self.cols, self.rows);
        for i in 0..self.rows {
            for j in 0..self.cols {
                out.set(j, i, self.at(i, j));
            }
        }
        out
    }

    /// `self · other`.
    pub fn matmul(&self, other: &Mat) -> Mat {
        assert_eq!(self.cols, other.rows, "matmul: {}×{} · {}×{}", self.rows, self.cols, other.rows, other.cols);
        let mut out = Mat::zeros(self.rows, other.cols);
        for i in 0..self.rows {
            let row = &mut out.data[i * other.cols..(i + 1) * other.cols];
            for k in 0..self.cols {
                let a = self.at(i, k);
                if a == 0.0 {
                    continue;
                }
                for (o, b) in row.iter_mut().zip(&other.data[k * other.cols..(k + 1) * other.cols]) {
                    *o += a * b;
                }
            }
        }
        out
    }

    /// The first `k` columns.
    pub fn first_cols(&self, k: usize) -> Mat {
        let mut out = Mat::zeros(self.rows, k);
        for i in 0..self.rows {
            for j in 0..k.min(self.cols) {
                out.set(i, j, self.at(i, j));
            }
        }
        out
    }

    /// The Frobenius norm.
    pub fn frobenius(&self) -> f64 {
        self.data.iter().map(|x| x * x).sum::<f64>().sqrt()
    }
}

/// Thin QR by Householder reflections: `a (m, n) = q (m, k) · r (k, n)` with `k = min(m, n)`,
/// `q` with orthonormal columns and `r` upper trapezoidal.
pub fn qr(a: &Mat) -> (Mat, Mat) {
    let (m, n) = (a.rows, a.cols);
    let k = m.min(n);
    let mut r = a.clone();
    let mut vs: Vec<Vec<f64>> = Vec::with_capacity(k);
    for j in 0..k {
        let norm = (j..m).map(|i| r.at(i, j) * r.at(i, j)).sum::<f64>().sqrt();
        let mut v: Vec<f64> = (j..m).map(|i| r.at(i, j)).collect();
        if norm == 0.0 {
            vs.push(vec![0.0; m - j]);
            continue;
        }
        let alpha = if v[0] > 0.0 { -norm } else { norm };
        v[0] -= alpha;
        let vn = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if vn == 0.0 {
            vs.push(vec![0.0; m - j]);
            continue;
        }
        v.iter_mut().for_each(|x| *x /= vn);
        // r[j.., j..] -= 2 v (vᵀ r[j.., j..])
        for c in j..n {
            let dot: f64 = (j..m).map(|i| v[i - j] * r.at(i, c)).sum();
            for i in j..m {
                let x = r.at(i, c) - 2.0 * v[i - j] * dot;
                r.set(i, c, x);
            }
        }
        vs.push(v);
    }
    // q = H_0 H_1 … H_{k-1} · I[:, :k], applied right to left.
    let mut q = Mat::zeros(m, k);
    for j in 0..k {
        q.set(j, j, 1.0);
    }
    for j in (0..k).rev() {
        let v = &vs[j];
        for c in 0..k {
            let dot: f64 = (j..m).map(|i| v[i - j] * q.at(i, c)).sum();
            if dot != 0.0 {
                for i in j..m {
                    let x = q.at(i, c) - 2.0 * v[i - j] * dot;
                    q.set(i, c, x);
                }
            }
        }
    }
    let mut rk = Mat::zeros(k, n);
    for i in 0..k {
        for c in i..n {
            rk.set(i, c, r.at(i, c));
        }
    }
    (q, rk)
}

/// The singular value decomposition `a = u · diag(s) · vᵀ` with `k = min(m, n)` singular
/// values in decreasing order, `u (m, k)` and `v (n, k)` with orthonormal columns (columns for
/// zero singular values are zero).
pub fn svd(a: &Mat) -> (Mat, Vec<f64>, Mat) {
    if a.rows < a.cols {
        let (u, s, v) = svd(&a.t());
        return (v, s, u);
    }
    let (m, n) = (a.rows, a.cols);
    // Column-major working copies: u's columns are rotated until mutually orthogonal.
    let mut u: Vec<Vec<f64>> = (0..n).map(|j| (0..m).map(|i| a.at(i, j)).collect()).collect();
    let mut v: Vec<Vec<f64>> = (0..n).map(|j| (0..n).map(|i| if i == j { 1.0 } else { 0.0 }).collect()).collect();
    let dot = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f64>();
    for _sweep in 0..60 {
        let mut rotated = false;
        for p in 0..n {
            for q in p + 1..n {
                let alpha = dot(&u[p], &u[p]);
                let beta = dot(&u[q], &u[q]);
                let gamma = dot(&u[p], &u[q]);
                if gamma == 0.0 || gamma.abs() <= 1e-15 * (alpha * beta).sqrt() {
                    continue;
                }
                rotated = true;
                let zeta = (beta - alpha) / (2.0 * gamma);
                let t = zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = c * t;
                for cols in [&mut u, &mut v] {
                    let (lo, hi) = cols.split_at_mut(q);
                    for (x, y) in lo[p].iter_mut().zip(hi[0].iter_mut()) {
                        let (xp, xq) = (*x, *y);
                        *x = c * xp - s * xq;
                        *y = s * xp + c * xq;
                    }
                }
            }
        }
        if !rotated {
            break;
        }
    }
    let mut order: Vec<(f64, usize)> = u.iter().enumerate().map(|(j, c)| (dot(c, c).sqrt(), j)).collect();
    order.sort_by(|x, y| y.0.total_cmp(&x.0));
    let mut um = Mat::zeros(m, n);
    let mut vm = Mat::zeros(n, n);
    let mut s = Vec::with_capacity(n);
    for (k, &(sigma, j)) in order.iter().enumerate() {
        s.push(sigma);
        if sigma > 0.0 {
            for (i, x) in u[j].iter().enumerate() {
                um.set(i, k, x / sigma);
            }
            for (i, x) in v[j].iter().enumerate() {
                vm.set(i, k, *x);
            }
        }
    }
    (um, s, vm)
}
