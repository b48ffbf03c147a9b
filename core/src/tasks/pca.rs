//! A 2-D PCA of cell embeddings, small enough to run in the browser's worker: block power
//! iteration on the centred data (never forming the H × H covariance), seeded, so the same
//! cells always give the same picture.

/// The projection of every row on the first two principal components.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca2 {
    /// `[n, 2]` row-major coordinates.
    pub points: Vec<[f32; 2]>,
    /// Share of the total variance each component explains.
    pub explained: [f64; 2],
}

/// The fitted axes of a [`pca_2d_fit`]: the column means and the two unit components, so that
/// other rows (e.g. perturbed cells) can be placed on the same picture with [`PcaBasis::project`].
#[derive(Debug, Clone, PartialEq)]
pub struct PcaBasis {
    /// Column means of the fitted rows (length `h`).
    pub mean: Vec<f64>,
    /// The first two principal components (unit vectors of length `h`; zeros when degenerate).
    pub components: [Vec<f64>; 2],
}

impl PcaBasis {
    /// Row width `h`.
    pub fn width(&self) -> usize {
        self.mean.len()
    }

    /// Projects rows of width `h` (`data.len()` a multiple of `h`) on the fitted axes: the same
    /// coordinates [`pca_2d_fit`] gave the fitted rows.
    pub fn project(&self, data: &[f32]) -> Vec<[f32; 2]> {
        let h = self.width();
        if h == 0 {
            return Vec::new();
        }
        assert_eq!(
            data.len() % h,
            0,
            "PcaBasis::project: rows are not of width h"
        );
        data.chunks(h)
            .map(|row| {
                let p = row
                    .iter()
                    .zip(&self.mean)
                    .map(|(&v, m)| f64::from(v) - m)
                    .zip(self.components[0].iter().zip(&self.components[1]))
                    .fold([0f64; 2], |a, (x, (p, q))| [a[0] + x * p, a[1] + x * q]);
                [p[0] as f32, p[1] as f32]
            })
            .collect()
    }
}

/// PCA of `n` rows of width `h` (`data.len() == n * h`). Fewer than 2 rows or zero variance give
/// zeros. Component signs are fixed so that the largest-magnitude loading is positive.
pub fn pca_2d(data: &[f32], n: usize, h: usize) -> Pca2 {
    pca_2d_fit(data, n, h).0
}

/// [`pca_2d`], also returning the fitted mean and components. Degenerate inputs give a basis
/// with zero components (every projection at the origin).
pub fn pca_2d_fit(data: &[f32], n: usize, h: usize) -> (Pca2, PcaBasis) {
    assert_eq!(data.len(), n * h, "pca_2d: data is not n × h");
    let zero = |mean: Vec<f64>| {
        (
            Pca2 {
                points: vec![[0.0; 2]; n],
                explained: [0.0; 2],
            },
            PcaBasis {
                mean,
                components: [vec![0.0; h], vec![0.0; h]],
            },
        )
    };
    if n < 2 || h == 0 {
        let mut mean = vec![0f64; h];
        for row in data.chunks(h.max(1)).filter(|r| r.len() == h) {
            mean.iter_mut()
                .zip(row)
                .for_each(|(m, &v)| *m += f64::from(v) / n.max(1) as f64);
        }
        return zero(mean);
    }
    let mut mean = vec![0f64; h];
    for row in data.chunks(h) {
        mean.iter_mut()
            .zip(row)
            .for_each(|(m, &v)| *m += f64::from(v));
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    // Row i, centred, as an iterator.
    let row = |i: usize| {
        data[i * h..(i + 1) * h]
            .iter()
            .zip(&mean)
            .map(|(&v, m)| f64::from(v) - m)
    };
    let project = |i: usize, v: &[Vec<f64>; 2]| {
        row(i)
            .zip(v[0].iter().zip(&v[1]))
            .fold([0f64; 2], |a, (x, (p, q))| [a[0] + x * p, a[1] + x * q])
    };
    let total: f64 = (0..n).map(|i| row(i).map(|x| x * x).sum::<f64>()).sum();
    if total <= 0.0 {
        return zero(mean);
    }
    // Two start vectors from a fixed-seed LCG (deterministic, no rand dependency).
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) - 0.5
    };
    let mut v: [Vec<f64>; 2] = [
        (0..h).map(|_| next()).collect(),
        (0..h).map(|_| next()).collect(),
    ];
    orthonormalise(&mut v);
    let mut xv = vec![[0f64; 2]; n];
    for _ in 0..200 {
        // xv = X v; v' = Xᵀ xv, then Gram-Schmidt.
        for (i, out) in xv.iter_mut().enumerate() {
            *out = project(i, &v);
        }
        let mut w = [vec![0f64; h], vec![0f64; h]];
        for (i, a) in xv.iter().enumerate() {
            let (w0, w1) = w.split_at_mut(1);
            for ((x, p), q) in row(i).zip(w0[0].iter_mut()).zip(w1[0].iter_mut()) {
                *p += x * a[0];
                *q += x * a[1];
            }
        }
        orthonormalise(&mut w);
        let change: f64 = (0..2)
            .map(|c| 1.0 - dot(&w[c], &v[c]).abs())
            .fold(0.0, f64::max);
        v = w;
        if change < 1e-10 {
            break;
        }
    }
    for c in &mut v {
        let big = c
            .iter()
            .copied()
            .fold(0f64, |m, x| if x.abs() > m.abs() { x } else { m });
        if big < 0.0 {
            c.iter_mut().for_each(|x| *x = -*x);
        }
    }
    let mut points = Vec::with_capacity(n);
    let mut var = [0f64; 2];
    for i in 0..n {
        let p = project(i, &v);
        var[0] += p[0] * p[0];
        var[1] += p[1] * p[1];
        points.push([p[0] as f32, p[1] as f32]);
    }
    (
        Pca2 {
            points,
            explained: [var[0] / total, var[1] / total],
        },
        PcaBasis {
            mean,
            components: v,
        },
    )
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn orthonormalise(v: &mut [Vec<f64>; 2]) {
    let n0 = dot(&v[0], &v[0]).sqrt().max(1e-300);
    v[0].iter_mut().for_each(|x| *x /= n0);
    let p = dot(&v[0], &v[1]);
    let (a, b) = v.split_at_mut(1);
    b[0].iter_mut().zip(&a[0]).for_each(|(y, x)| *y -= p * x);
    let n1 = dot(&v[1], &v[1]).sqrt().max(1e-300);
    v[1].iter_mut().for_each(|x| *x /= n1);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points on a known ellipse in 3-D, rotated: PCA must recover the axes' variances.
    #[test]
    fn recovers_known_axes_and_variance() {
        let n = 400;
        let mut data = Vec::new();
        let (c, s) = (0.6f32, 0.8f32);
        for i in 0..n {
            let t = i as f32 / n as f32 * std::f32::consts::TAU;
            let (a, b) = (3.0 * t.cos(), 1.0 * t.sin());
            // Axis 1 along (c, s, 0), axis 2 along (0, 0, 1), plus an offset.
            data.extend([a * c + 5.0, a * s - 2.0, b + 1.0]);
        }
        let p = pca_2d(&data, n, 3);
        // Variances 9/2 and 1/2: shares 0.9 and 0.1.
        assert!((p.explained[0] - 0.9).abs() < 1e-6, "{:?}", p.explained);
        assert!((p.explained[1] - 0.1).abs() < 1e-6, "{:?}", p.explained);
        for (i, q) in p.points.iter().enumerate() {
            let t = i as f32 / n as f32 * std::f32::consts::TAU;
            assert!((q[0].abs() - (3.0 * t.cos()).abs()).abs() < 1e-3);
            assert!((q[1].abs() - t.sin().abs()).abs() < 1e-3);
        }
        assert_eq!(p, pca_2d(&data, n, 3), "deterministic");
    }

    /// The basis reproduces the fitted rows' coordinates and places new rows on the same axes.
    #[test]
    fn basis_projects_new_rows_on_the_fitted_axes() {
        let n = 200;
        let mut data = Vec::new();
        for i in 0..n {
            let t = i as f32 / n as f32 * std::f32::consts::TAU;
            // Axis 1 along x (variance 8), axis 2 along z (variance 1/2), mean (1, -1, 2).
            data.extend([4.0 * t.cos() + 1.0, -1.0, t.sin() + 2.0]);
        }
        let (p, basis) = pca_2d_fit(&data, n, 3);
        assert_eq!(p, pca_2d(&data, n, 3), "same result as pca_2d");
        assert_eq!(basis.width(), 3);
        let again = basis.project(&data);
        for (a, b) in again.iter().zip(&p.points) {
            assert!((a[0] - b[0]).abs() < 1e-5 && (a[1] - b[1]).abs() < 1e-5);
        }
        // Signs: the largest loading is positive, so the components are +x and +z.
        let new = basis.project(&[1.0 + 2.5, 7.0, 2.0 - 0.5, 1.0, -1.0, 2.0]);
        assert!((new[0][0] - 2.5).abs() < 1e-4, "{new:?}");
        assert!((new[0][1] + 0.5).abs() < 1e-4, "{new:?}");
        assert!(
            new[1][0].abs() < 1e-4 && new[1][1].abs() < 1e-4,
            "the mean maps to 0"
        );
        // Degenerate fits project everything to the origin.
        let (_, flat) = pca_2d_fit(&[1.0, 2.0, 1.0, 2.0], 2, 2);
        assert_eq!(flat.project(&[5.0, 6.0]), vec![[0.0, 0.0]]);
    }

    #[test]
    fn degenerate_inputs_give_zeros() {
        assert_eq!(pca_2d(&[1.0, 2.0], 1, 2).points, vec![[0.0, 0.0]]);
        let same = [1.0, 2.0, 1.0, 2.0];
        assert_eq!(pca_2d(&same, 2, 2).explained, [0.0, 0.0]);
    }
}
