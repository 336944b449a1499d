//! The one piece of linear algebra the multivariate detector needs: solving `C y = z` for a
//! small symmetric positive definite `C` (Cholesky, no allocation).

use super::MAX_METRICS;

/// A pivot below this is taken as this: `C` is positive definite by construction (it has
/// the noise floors on its diagonal), so this only guards against rounding.
const MIN_PIVOT: f64 = 1e-12;

fn at(i: usize, j: usize) -> usize {
    i * MAX_METRICS + j
}

/// Solves `c · y = z` for the leading `m × m` block of the row-major `c`.
#[cfg(test)]
pub(super) fn solve_spd(
    c: &[f64; MAX_METRICS * MAX_METRICS],
    z: &[f64; MAX_METRICS],
    m: usize,
) -> [f64; MAX_METRICS] {
    Cholesky::new(c, m).solve(z)
}

/// The Cholesky factor `L` (`C = L Lᵀ`) of the leading `m × m` block of `c`.
pub(super) struct Cholesky {
    l: [f64; MAX_METRICS * MAX_METRICS],
    m: usize,
}

impl Cholesky {
    pub(super) fn new(c: &[f64; MAX_METRICS * MAX_METRICS], m: usize) -> Cholesky {
        let mut l = [0.0; MAX_METRICS * MAX_METRICS];
        for j in 0..m {
            let mut d = c[at(j, j)];
            for k in 0..j {
                d -= l[at(j, k)] * l[at(j, k)];
            }
            let d = d.max(MIN_PIVOT).sqrt();
            l[at(j, j)] = d;
            for i in j + 1..m {
                let mut s = c[at(i, j)];
                for k in 0..j {
                    s -= l[at(i, k)] * l[at(j, k)];
                }
                l[at(i, j)] = s / d;
            }
        }
        Cholesky { l, m }
    }

    /// `C⁻¹ z`.
    pub(super) fn solve(&self, z: &[f64; MAX_METRICS]) -> [f64; MAX_METRICS] {
        let (l, m) = (&self.l, self.m);
        // L w = z, then Lᵀ y = w.
        let mut w = [0.0; MAX_METRICS];
        for i in 0..m {
            let mut s = z[i];
            for k in 0..i {
                s -= l[at(i, k)] * w[k];
            }
            w[i] = s / l[at(i, i)];
        }
        let mut y = [0.0; MAX_METRICS];
        for i in (0..m).rev() {
            let mut s = w[i];
            for k in i + 1..m {
                s -= l[at(k, i)] * y[k];
            }
            y[i] = s / l[at(i, i)];
        }
        y
    }

    /// The diagonal of `C⁻¹`.
    pub(super) fn inverse_diagonal(&self) -> [f64; MAX_METRICS] {
        let mut d = [0.0; MAX_METRICS];
        for (i, di) in d.iter_mut().enumerate().take(self.m) {
            let mut e = [0.0; MAX_METRICS];
            e[i] = 1.0;
            *di = self.solve(&e)[i];
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_a_small_system() {
        let mut c = [0.0; MAX_METRICS * MAX_METRICS];
        // [[4, 2], [2, 3]] y = [2, 1] → y = [0.5, 0]
        c[0] = 4.0;
        c[1] = 2.0;
        c[MAX_METRICS] = 2.0;
        c[MAX_METRICS + 1] = 3.0;
        let mut z = [0.0; MAX_METRICS];
        z[0] = 2.0;
        z[1] = 1.0;
        let y = solve_spd(&c, &z, 2);
        assert!((y[0] - 0.5).abs() < 1e-12 && y[1].abs() < 1e-12, "{y:?}");
    }

    #[test]
    fn a_singular_matrix_still_gives_finite_numbers() {
        let c = [1.0; MAX_METRICS * MAX_METRICS];
        let z = [1.0; MAX_METRICS];
        let y = solve_spd(&c, &z, MAX_METRICS);
        assert!(y.iter().all(|v| v.is_finite()));
    }
}
