use super::*;

/// Values in [-1, 1).
fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
    let mut v = super::super::host_attention::pseudo_random(n, seed);
    v.iter_mut().for_each(|x| *x *= 0.5);
    v
}

/// The same attention in f64, written out from its definition, with the same dropout mask.
/// Returns the output and, for `d_out`, the gradients (dq, dk, dv).
fn naive(
    a: &TrainAttention,
    (q, k, v): (&[f32], &[f32], &[f32]),
    d_out: &[f32],
) -> (Vec<f64>, [Vec<f64>; 3]) {
    let (w, d, seq) = (a.heads * a.head_dim, a.head_dim, a.seq);
    let n_all = q.len();
    let mut out = vec![0f64; n_all];
    let (mut dq, mut dk, mut dv) = (vec![0f64; n_all], vec![0f64; n_all], vec![0f64; n_all]);
    let scale = 1.0 / (d as f64).sqrt();
    let at = |c: usize, r: usize, h: usize| c * seq * w + r * w + h * d;
    for (c, &n) in a.lens.iter().enumerate() {
        for h in 0..a.heads {
            // P, Z, A for every real row.
            let mut p = vec![vec![0f64; n]; n];
            let mut z = vec![vec![1f64; n]; n];
            for i in 0..n {
                let s: Vec<f64> = (0..n)
                    .map(|j| {
                        (0..d)
                            .map(|x| q[at(c, i, h) + x] as f64 * k[at(c, j, h) + x] as f64)
                            .sum::<f64>()
                            * scale
                    })
                    .collect();
                let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = s.iter().map(|x| (x - max).exp()).sum();
                for j in 0..n {
                    p[i][j] = (s[j] - max).exp() / sum;
                }
                if let Some(m) = a.row_mask(c, h, i) {
                    for (j, z) in z[i].iter_mut().enumerate() {
                        *z = if m.keeps(j) { m.scale as f64 } else { 0.0 };
                    }
                }
                for x in 0..d {
                    out[at(c, i, h) + x] = (0..n)
                        .map(|j| p[i][j] * z[i][j] * v[at(c, j, h) + x] as f64)
                        .sum();
                }
            }
            for i in 0..n {
                let da: Vec<f64> = (0..n)
                    .map(|j| {
                        (0..d)
                            .map(|x| d_out[at(c, i, h) + x] as f64 * v[at(c, j, h) + x] as f64)
                            .sum()
                    })
                    .collect();
                let dp: Vec<f64> = (0..n).map(|j| da[j] * z[i][j]).collect();
                let dot: f64 = (0..n).map(|j| p[i][j] * dp[j]).sum();
                for j in 0..n {
                    let ds = p[i][j] * (dp[j] - dot) * scale;
                    for x in 0..d {
                        dq[at(c, i, h) + x] += ds * k[at(c, j, h) + x] as f64;
                        dk[at(c, j, h) + x] += ds * q[at(c, i, h) + x] as f64;
                        dv[at(c, j, h) + x] += p[i][j] * z[i][j] * d_out[at(c, i, h) + x] as f64;
                    }
                }
            }
        }
    }
    (out, [dq, dk, dv])
}

fn worst(got: &[f32], want: &[f64]) -> f64 {
    got.iter()
        .zip(want)
        .map(|(&a, &b)| (a as f64 - b).abs())
        .fold(0.0, f64::max)
}

fn case(dropout: Option<AttentionDropout>) -> (TrainAttention, [Vec<f32>; 4]) {
    // Three cells, one longer than two query blocks; padded rows hold garbage on purpose.
    let a = TrainAttention {
        heads: 2,
        head_dim: 8,
        seq: 300,
        lens: vec![300, 1, 171],
        dropout,
    };
    let n = 3 * 300 * 16;
    let arrays = [1, 2, 3, 4].map(|s| pseudo_random(n, s));
    (a, arrays)
}

/// Runs the kernel forward and backward and checks its output and gradients against
/// [`naive`] within 2e-5.
fn assert_matches_definition(
    a: &TrainAttention,
    [q, k, v, d_out]: [&[f32]; 4],
) -> (ForwardOutput, Gradients) {
    let fwd = a.forward(q, k, v);
    let grads = a.backward((q, k, v), &fwd, d_out);
    let (out, [dq, dk, dv]) = naive(a, (q, k, v), d_out);
    for (name, got, want) in [
        ("out", &fwd.out, &out),
        ("dq", &grads.dq, &dq),
        ("dk", &grads.dk, &dk),
        ("dv", &grads.dv, &dv),
    ] {
        let e = worst(got, want);
        assert!(e < 2e-5, "{name}: max |Δ| {e}");
    }
    (fwd, grads)
}

#[test]
fn forward_and_backward_equal_the_definition_without_dropout() {
    let (a, [q, k, v, d_out]) = case(None);
    let (fwd, grads) = assert_matches_definition(&a, [&q, &k, &v, &d_out]);
    // Padded rows: zero output, zero gradients.
    let padded = |m: &[f32]| m[(300 + 1) * 16..600 * 16].iter().all(|&x| x == 0.0);
    assert!(padded(&fwd.out) && padded(&grads.dq) && padded(&grads.dk) && padded(&grads.dv));
}

#[test]
fn forward_and_backward_equal_the_definition_with_dropout() {
    let drop = AttentionDropout { prob: 0.3, key: 42 };
    let (a, [q, k, v, d_out]) = case(Some(drop));
    let (fwd, _) = assert_matches_definition(&a, [&q, &k, &v, &d_out]);
    // The mask does change the result, and another key gives another one.
    let plain = case(None).0.forward(&q, &k, &v);
    assert!(
        worst(
            &fwd.out,
            &plain.out.iter().map(|&x| x as f64).collect::<Vec<_>>()
        ) > 1e-2
    );
    let other = TrainAttention {
        dropout: Some(AttentionDropout { key: 43, ..drop }),
        ..a.clone()
    };
    assert_ne!(other.forward(&q, &k, &v).out, fwd.out);
    assert_eq!(a.forward(&q, &k, &v).out, fwd.out, "same key, same result");
}

#[test]
fn gradients_agree_with_finite_differences() {
    // loss = Σ d_out ∘ out, evaluated in f64 by the definition; central differences on a
    // few entries of q, k and v of the long cell (dropout on: the mask does not move).
    let drop = AttentionDropout { prob: 0.1, key: 7 };
    let (a, [q, k, v, d_out]) = case(Some(drop));
    let fwd = a.forward(&q, &k, &v);
    let grads = a.backward((&q, &k, &v), &fwd, &d_out);
    let loss = |q: &[f32], k: &[f32], v: &[f32]| -> f64 {
        let (out, _) = naive(&a, (q, k, v), &d_out);
        out.iter().zip(&d_out).map(|(o, &g)| o * g as f64).sum()
    };
    let eps = 1e-2f32;
    for (which, idx) in [
        (0, 5),
        (0, 2 * 16 + 9),
        (1, 17 * 16 + 3),
        (2, 299 * 16 + 15),
        (1, 5),
    ] {
        let mut arrays = [q.clone(), k.clone(), v.clone()];
        arrays[which][idx] += eps;
        let up = loss(&arrays[0], &arrays[1], &arrays[2]);
        arrays[which][idx] -= 2.0 * eps;
        let down = loss(&arrays[0], &arrays[1], &arrays[2]);
        let numeric = (up - down) / (2.0 * eps as f64);
        let analytic = [&grads.dq, &grads.dk, &grads.dv][which][idx] as f64;
        assert!(
            (numeric - analytic).abs() < 1e-3 * (1.0 + numeric.abs()),
            "array {which} entry {idx}: numeric {numeric}, analytic {analytic}"
        );
    }
}

#[test]
fn dropout_keeps_the_right_share() {
    let a = TrainAttention {
        heads: 4,
        head_dim: 8,
        seq: 512,
        lens: vec![512; 2],
        dropout: Some(AttentionDropout { prob: 0.1, key: 99 }),
    };
    let (mut kept, mut total) = (0usize, 0usize);
    for c in 0..2 {
        for h in 0..4 {
            for r in 0..512 {
                let m = a.row_mask(c, h, r).unwrap();
                kept += (0..512).filter(|&j| m.keeps(j)).count();
                total += 512;
            }
        }
    }
    let share = kept as f64 / total as f64;
    assert!((share - 0.9).abs() < 0.002, "kept share {share}");
}
