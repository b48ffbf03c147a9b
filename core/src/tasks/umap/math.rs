//! The a/b curve fit and the platform-independent exp/ln/pow that keep layouts bit-identical
//! on native and wasm.

/// `a`, `b` of the layout kernel 1 / (1 + a x^{2b}), fitted by least squares (Levenberg–
/// Marquardt from (1, 1), as scipy's `curve_fit` in umap-learn's `find_ab_params`) to 1 for
/// x < `min_dist` and exp(−(x − min_dist) / spread) beyond, on 300 points of [0, 3 · spread].
/// (0.1, 1.0) gives a ≈ 1.577, b ≈ 0.895.
pub fn find_ab_params(spread: f64, min_dist: f64) -> (f64, f64) {
    let stop = 3.0 * spread;
    let xs: Vec<f64> = (0..300)
        .map(|i| {
            if i == 299 {
                stop
            } else {
                i as f64 * (stop / 299.0)
            }
        })
        .collect();
    let ys: Vec<f64> = xs
        .iter()
        .map(|&x| {
            if x < min_dist {
                1.0
            } else {
                exp_det(-(x - min_dist) / spread)
            }
        })
        .collect();
    // Residuals and, optionally, J^T J and J^T r.
    let eval = |a: f64, b: f64| {
        let (mut sse, mut jtj, mut jtr) = (0.0, [0f64; 3], [0f64; 2]);
        for (&x, &y) in xs.iter().zip(&ys) {
            let p = if x > 0.0 { pow_det(x, 2.0 * b) } else { 0.0 };
            let f = 1.0 / (1.0 + a * p);
            let r = f - y;
            let ja = -p * f * f;
            let jb = if x > 0.0 {
                ja * a * 2.0 * ln_det(x)
            } else {
                0.0
            };
            sse += r * r;
            jtj = [jtj[0] + ja * ja, jtj[1] + ja * jb, jtj[2] + jb * jb];
            jtr = [jtr[0] + ja * r, jtr[1] + jb * r];
        }
        (sse, jtj, jtr)
    };
    let (mut a, mut b, mut lambda) = (1.0f64, 1.0f64, 1e-3f64);
    let (mut sse, mut jtj, mut jtr) = eval(a, b);
    for _ in 0..500 {
        let mut moved = false;
        while lambda < 1e12 {
            let (m00, m11, m01) = (jtj[0] * (1.0 + lambda), jtj[2] * (1.0 + lambda), jtj[1]);
            let det = m00 * m11 - m01 * m01;
            let da = -(m11 * jtr[0] - m01 * jtr[1]) / det;
            let db = -(m00 * jtr[1] - m01 * jtr[0]) / det;
            let (na, nb) = (a + da, b + db);
            let trial = if na > 0.0 && nb > 0.0 {
                Some(eval(na, nb))
            } else {
                None
            };
            match trial {
                Some((s, j2, r2)) if s <= sse => {
                    let small = (da.abs() <= 1e-12 * a.abs()) && (db.abs() <= 1e-12 * b.abs());
                    moved = !small && s < sse;
                    (a, b, sse, jtj, jtr) = (na, nb, s, j2, r2);
                    lambda = (lambda * 0.1).max(1e-12);
                    break;
                }
                _ => lambda *= 10.0,
            }
        }
        if !moved {
            break;
        }
    }
    (a, b)
}

/// 1/i! for the exp series.
const INV_FACT: [f64; 14] = {
    let mut c = [1.0; 14];
    let mut i = 1;
    while i < 14 {
        c[i] = c[i - 1] / i as f64;
        i += 1;
    }
    c
};

/// 1/(2i + 1) for the ln series (to s¹⁹: the next term is below 2⁻⁵⁵ of the sum).
const INV_ODD: [f64; 10] = {
    let mut c = [1.0; 10];
    let mut i = 1;
    while i < 10 {
        c[i] = 1.0 / (2 * i + 1) as f64;
        i += 1;
    }
    c
};

/// 2⁵⁴, to lift subnormals into the normal range.
const TWO_54: f64 = 18_014_398_509_481_984.0;

/// eˣ from IEEE-exact operations only (std's `exp` is the platform libm, whose last bit may
/// differ between targets). Relative error ≲ 2⁻⁵⁰.
pub fn exp_det(x: f64) -> f64 {
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    if x.is_nan() {
        return x;
    }
    if x > 709.78 {
        return f64::INFINITY;
    }
    if x < -745.2 {
        return 0.0;
    }
    // Round to nearest by the 1.5 · 2⁵² trick (`f64::round` is a libm call on x86-64).
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    let k = (x * std::f64::consts::LOG2_E + MAGIC) - MAGIC;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    // Degree-13 Taylor polynomial by Estrin's scheme (short dependency chains).
    let (r2, c) = (r * r, &INV_FACT);
    let (r4, a) = (r2 * r2, |i: usize| c[i] + c[i + 1] * r);
    let lo = (a(0) + a(2) * r2) + (a(4) + a(6) * r2) * r4;
    let hi = (a(8) + a(10) * r2) + a(12) * r4;
    let p = lo + hi * (r4 * r4);
    // p · 2^k in two exact steps so that neither factor over- or underflows.
    let k = k as i64;
    let (k1, k2) = (k / 2, k - k / 2);
    let two = |e: i64| f64::from_bits(((e + 1023) as u64) << 52);
    p * two(k1) * two(k2)
}

/// ln x from IEEE-exact operations only (see [`exp_det`]). NaN below 0, −∞ at 0.
pub fn ln_det(x: f64) -> f64 {
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x.is_infinite() {
        return x;
    }
    let (x, mut e) = if x < f64::MIN_POSITIVE {
        (x * TWO_54, -54i64)
    } else {
        (x, 0)
    };
    let bits = x.to_bits();
    e += ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    // ln m = 2 atanh(s), s = (m − 1)/(m + 1), |s| ≤ 0.172: odd series to s¹⁹, by Estrin.
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let (t, c) = (s * s, &INV_ODD);
    let (t2, a) = (t * t, |i: usize| c[i] + c[i + 1] * t);
    let t4 = t2 * t2;
    let series = ((a(0) + a(2) * t2) + (a(4) + a(6) * t2) * t4) + a(8) * (t4 * t4);
    let e = e as f64;
    e * LN2_HI + (e * LN2_LO + 2.0 * s * series)
}

/// xʸ for x > 0 from [`exp_det`] and [`ln_det`].
pub(super) fn pow_det(x: f64, y: f64) -> f64 {
    exp_det(y * ln_det(x))
}
