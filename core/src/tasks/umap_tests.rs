use super::*;

/// `per` points around each centre, N(0, sd²) noise per dimension; labels are blob indices.
fn blobs(centres: &[Vec<f32>], per: usize, sd: f64, seed: u64) -> (Vec<f32>, Vec<usize>) {
    let mut rng = SplitMix64::new(seed);
    let (mut x, mut labels) = (Vec::new(), Vec::new());
    for (c, centre) in centres.iter().enumerate() {
        for _ in 0..per {
            x.extend(centre.iter().map(|&m| m + (rng.normal() * sd) as f32));
            labels.push(c);
        }
    }
    (x, labels)
}

fn random_centres(count: usize, dim: usize, scale: f64, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = SplitMix64::new(seed);
    (0..count)
        .map(|_| (0..dim).map(|_| (rng.normal() * scale) as f32).collect())
        .collect()
}

/// Each row's `k` nearest other rows (Euclidean, or cosine when `metric` says so).
fn neighbours(x: &[f32], dim: usize, k: usize, metric: Metric) -> Vec<Vec<usize>> {
    let ranked = ranked(x, dim, metric);
    ranked.into_iter().map(|r| r[..k].to_vec()).collect()
}

/// Every row's other rows, nearest first (ties by index).
fn ranked(x: &[f32], dim: usize, metric: Metric) -> Vec<Vec<usize>> {
    let rows = match metric {
        Metric::Euclidean => x.to_vec(),
        Metric::Cosine => normalised(x, dim).0,
    };
    let n = x.len() / dim;
    let row = |i: usize| &rows[i * dim..(i + 1) * dim];
    (0..n)
        .map(|i| {
            let mut o: Vec<(f32, usize)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| (sq_dist(row(i), row(j)), j))
                .collect();
            o.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            o.into_iter().map(|(_, j)| j).collect()
        })
        .collect()
}

fn flat(p: &[[f32; 2]]) -> Vec<f32> {
    p.iter().flatten().copied().collect()
}

/// Mean share of each point's `k` nearest layout neighbours with its label.
fn label_agreement<L: PartialEq>(p: &[[f32; 2]], labels: &[L], k: usize) -> f64 {
    let nn = neighbours(&flat(p), 2, k, Metric::Euclidean);
    let same = nn
        .iter()
        .enumerate()
        .map(|(i, js)| js.iter().filter(|&&j| labels[j] == labels[i]).count() as f64 / k as f64);
    same.sum::<f64>() / p.len() as f64
}

/// Mean share of the `k` input-space neighbours among the `k` layout neighbours.
fn preservation(high: &[Vec<usize>], p: &[[f32; 2]], k: usize) -> f64 {
    let low = neighbours(&flat(p), 2, k, Metric::Euclidean);
    let kept = high
        .iter()
        .zip(&low)
        .map(|(h, l)| l.iter().filter(|j| h[..k].contains(j)).count() as f64 / k as f64);
    kept.sum::<f64>() / p.len() as f64
}

/// sklearn.manifold.trustworthiness, given every row's input-space ranking.
fn trustworthiness(ranked: &[Vec<usize>], p: &[[f32; 2]], k: usize) -> f64 {
    let n = p.len();
    let low = neighbours(&flat(p), 2, k, Metric::Euclidean);
    let mut t = 0f64;
    for (i, r) in ranked.iter().enumerate() {
        let mut rank = vec![0usize; n];
        r.iter().enumerate().for_each(|(pos, &j)| rank[j] = pos + 1);
        t += low[i]
            .iter()
            .map(|&j| rank[j].saturating_sub(k) as f64)
            .sum::<f64>();
    }
    let (n, k) = (n as f64, k as f64);
    1.0 - t * 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0))
}

fn opts(n_epochs: usize, seed: u64) -> UmapOptions {
    UmapOptions {
        n_epochs: Some(n_epochs),
        seed,
        ..Default::default()
    }
}

#[test]
fn same_seed_same_layout_other_seed_differs() {
    let (x, _) = blobs(&random_centres(3, 10, 3.0, 1), 40, 1.0, 2);
    for init in [Init::Pca, Init::Random] {
        let o = UmapOptions {
            init,
            ..opts(100, 7)
        };
        let mut seen = Vec::new();
        let a = umap(&x, 120, 10, &o, |f| seen.push(f)).unwrap();
        let b = umap(&x, 120, 10, &o, |_| {}).unwrap();
        let bits = |p: &[[f32; 2]]| p.iter().flatten().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b), "{init:?}: same seed, same bits");
        let c = umap(&x, 120, 10, &UmapOptions { seed: 8, ..o }, |_| {}).unwrap();
        assert_ne!(bits(&a), bits(&c), "{init:?}: another seed moves points");
        assert!(a.iter().flatten().all(|v| v.is_finite()));
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "progress goes up");
        assert_eq!(seen.last(), Some(&1.0));
        assert!(
            seen.len() >= 10 && seen.len() <= 201,
            "{} calls",
            seen.len()
        );
    }
}

#[test]
fn separates_gaussian_blobs() {
    let (x, labels) = blobs(&random_centres(5, 20, 2.0, 11), 60, 1.0, 12);
    for metric in [Metric::Cosine, Metric::Euclidean] {
        let o = UmapOptions {
            metric,
            ..opts(200, 3)
        };
        let p = umap(&x, 300, 20, &o, |_| {}).unwrap();
        let agree = label_agreement(&p, &labels, 10);
        eprintln!("blobs {metric:?}: kNN label agreement {agree:.3}");
        assert!(agree >= 0.95, "{metric:?}: {agree}");
    }
}

/// Clusters that differ only in low-variance directions, plus a 2-D high-variance nuisance
/// shared by all: PCA shows the nuisance and mixes the clusters; UMAP's neighbour graph sees
/// them.
#[test]
fn beats_pca_when_clusters_hide_in_low_variance_directions() {
    let (k, per, dim) = (5, 60, 12);
    let mut rng = SplitMix64::new(21);
    let (mut x, mut labels) = (Vec::new(), Vec::new());
    for c in 0..k {
        for _ in 0..per {
            // Nuisance: uniform on a 100 × 100 square; clusters 40 apart on axes 2..2+k.
            let mut row = vec![
                (rng.next_f64() * 100.0) as f32,
                (rng.next_f64() * 100.0) as f32,
            ];
            row.extend((2..dim).map(|d| {
                let centre = if d - 2 == c { 40.0 / 2f64.sqrt() } else { 0.0 };
                (centre + rng.normal()) as f32
            }));
            x.extend(row);
            labels.push(c);
        }
    }
    let n = k * per;
    let pca = pca_2d(&x, n, dim).points;
    let o = UmapOptions {
        metric: Metric::Euclidean,
        ..opts(200, 5)
    };
    let p = umap(&x, n, dim, &o, |_| {}).unwrap();
    let (a_pca, a_umap) = (
        label_agreement(&pca, &labels, 10),
        label_agreement(&p, &labels, 10),
    );
    eprintln!("hidden clusters: kNN label agreement PCA {a_pca:.3}, UMAP {a_umap:.3}");
    assert!(a_pca < 0.6, "PCA should mix these clusters: {a_pca}");
    assert!(
        a_umap >= 0.95 && a_umap >= a_pca,
        "UMAP {a_umap} vs PCA {a_pca}"
    );
}

const BARON: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/h5ad/baron_mouse_pancreas_822.h5ad"
);

/// Baron mouse pancreas: log1p(CP10k) of the `top` most variable genes, and the cell types.
#[cfg(not(target_arch = "wasm32"))]
fn baron(top: usize) -> (Vec<f32>, usize, Vec<String>) {
    use crate::data::{MatrixChoice, ObsColumn, open_path};
    let path = std::path::Path::new(BARON);
    assert!(
        path.is_file(),
        "{BARON} is missing: this test needs the shared data"
    );
    let mut src = open_path(path, MatrixChoice::Auto).expect("open the Baron h5ad");
    let genes = src.genes().names.len();
    let types = match src.cells().column("cell_type") {
        Some(ObsColumn::Text(t)) => t.clone(),
        other => panic!("no text cell_type column: {other:?}"),
    };
    let mut cells = Vec::new();
    while let Some(chunk) = src.next_chunk(256).unwrap() {
        for i in 0..chunk.n_cells() {
            let (ix, v) = chunk.cell(i);
            let total: f32 = v.iter().sum();
            let v = v
                .iter()
                .map(|&c| (c / total * 1e4).ln_1p())
                .collect::<Vec<_>>();
            cells.push((ix.to_vec(), v));
        }
    }
    let n = cells.len();
    let (mut s, mut s2) = (vec![0f64; genes], vec![0f64; genes]);
    for (ix, v) in &cells {
        for (&g, &x) in ix.iter().zip(v) {
            s[g as usize] += f64::from(x);
            s2[g as usize] += f64::from(x) * f64::from(x);
        }
    }
    let var = |g: usize| s2[g] / n as f64 - (s[g] / n as f64).powi(2);
    let mut order: Vec<usize> = (0..genes).collect();
    order.sort_by(|&a, &b| var(b).total_cmp(&var(a)).then(a.cmp(&b)));
    let mut col = vec![usize::MAX; genes];
    order[..top]
        .iter()
        .enumerate()
        .for_each(|(c, &g)| col[g] = c);
    let mut x = vec![0f32; n * top];
    for (i, (ix, v)) in cells.iter().enumerate() {
        for (&g, &val) in ix.iter().zip(v) {
            if col[g as usize] != usize::MAX {
                x[i * top + col[g as usize]] = val;
            }
        }
    }
    assert_eq!(types.len(), n);
    (x, n, types)
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn baron_pancreas_neighbourhoods_beat_pca() {
    let top = 500;
    let (x, n, types) = baron(top);
    let pca = pca_2d(&x, n, top).points;
    for metric in [Metric::Cosine, Metric::Euclidean] {
        let o = UmapOptions {
            metric,
            ..Default::default()
        };
        let p = umap(&x, n, top, &o, |_| {}).unwrap();
        let ranked = ranked(&x, top, metric);
        let (pres_u, pres_p) = (
            preservation(&ranked, &p, 15),
            preservation(&ranked, &pca, 15),
        );
        let (tw_u, tw_p) = (
            trustworthiness(&ranked, &p, 15),
            trustworthiness(&ranked, &pca, 15),
        );
        let (lab_u, lab_p) = (
            label_agreement(&p, &types, 10),
            label_agreement(&pca, &types, 10),
        );
        eprintln!(
            "baron {n} cells × {top} genes, {metric:?}: 15-NN preservation UMAP {pres_u:.3} / \
             PCA {pres_p:.3}; trustworthiness(15) UMAP {tw_u:.3} / PCA {tw_p:.3}; \
             cell-type 10-NN agreement UMAP {lab_u:.3} / PCA {lab_p:.3}"
        );
        assert!(
            pres_u > pres_p + 0.1,
            "{metric:?} preservation {pres_u} vs {pres_p}"
        );
        assert!(tw_u > tw_p, "{metric:?} trustworthiness {tw_u} vs {tw_p}");
        assert!(lab_u >= lab_p, "{metric:?} cell types {lab_u} vs {lab_p}");
    }
}

#[test]
fn find_ab_matches_umap_learn() {
    let (a, b) = find_ab_params(1.0, 0.1);
    eprintln!("find_ab_params(1, 0.1) = ({a}, {b})");
    // umap-learn 0.5.12 (scipy curve_fit): 1.5769434603, 0.8950608779.
    assert!(
        (a - 1.577).abs() < 1e-2 && (b - 0.895).abs() < 1e-2,
        "{a} {b}"
    );
    assert!(
        (a - 1.576_943).abs() < 1e-4 && (b - 0.895_061).abs() < 1e-4,
        "{a} {b}"
    );
    // min_dist 0.001: umap-learn 0.5.12 gives 1.9290733959, 0.7915045334.
    let (a2, b2) = find_ab_params(1.0, 0.001);
    assert!(
        (a2 - 1.929_073).abs() < 1e-4 && (b2 - 0.791_505).abs() < 1e-4,
        "{a2} {b2}"
    );
}

#[test]
fn deterministic_math_matches_std() {
    let mut worst = (0f64, 0f64);
    for i in -4000..4000 {
        let x = i as f64 * 0.177;
        let (e, s) = (exp_det(x), x.exp());
        worst.0 = worst.0.max(((e - s) / s).abs());
        if x > 0.0 {
            for y in [x, 1e-300 * x, 1e300 * x, 1.0 + x * 1e-9] {
                let (l, s) = (ln_det(y), y.ln());
                worst.1 = worst.1.max((l - s).abs() / s.abs().max(1e-300));
            }
        }
    }
    assert!(worst.0 < 1e-14 && worst.1 < 1e-14, "{worst:?}");
    assert_eq!(exp_det(0.0), 1.0);
    assert_eq!(ln_det(1.0), 0.0);
    assert_eq!(exp_det(-800.0), 0.0);
    assert_eq!(exp_det(800.0), f64::INFINITY);
    assert!(
        (exp_det(-740.0) / (-740f64).exp() - 1.0).abs() < 1e-10,
        "subnormal"
    );
    assert!(
        (ln_det(5e-320) / 5e-320f64.ln() - 1.0).abs() < 1e-12,
        "subnormal"
    );
    assert_eq!(ln_det(0.0), f64::NEG_INFINITY);
    assert!(ln_det(-1.0).is_nan());
}

#[test]
fn rejects_bad_input() {
    let o = UmapOptions::default();
    let shape = umap(&[1.0; 10], 3, 3, &o, |_| {}).unwrap_err();
    assert_eq!(
        shape,
        UmapError::Shape {
            len: 10,
            n: 3,
            dim: 3
        }
    );
    let mut x = vec![1.0f32; 12];
    x[7] = f32::NAN;
    let e = umap(&x, 4, 3, &o, |_| {}).unwrap_err();
    assert!(
        matches!(e, UmapError::NonFinite { row: 2, col: 1, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("cell 2"), "{e}");
    x[7] = f32::NEG_INFINITY;
    assert!(matches!(
        umap(&x, 4, 3, &o, |_| {}),
        Err(UmapError::NonFinite { row: 2, .. })
    ));
    let big = vec![0.0; MAX_CELLS + 1];
    let e = umap(&big, MAX_CELLS + 1, 1, &o, |_| {}).unwrap_err();
    assert_eq!(
        e,
        UmapError::TooManyCells {
            n: MAX_CELLS + 1,
            max: MAX_CELLS
        }
    );
    assert!(e.to_string().contains("subsample"), "{e}");
    let huge = [3e38f32, 0.0, -3e38, 0.0, 0.0, 1.0];
    let o_eu = UmapOptions {
        metric: Metric::Euclidean,
        ..o.clone()
    };
    assert!(matches!(
        umap(&huge, 3, 2, &o_eu, |_| {}),
        Err(UmapError::Overflow { .. })
    ));
    for bad in [
        UmapOptions {
            n_neighbors: 1,
            ..o.clone()
        },
        UmapOptions {
            min_dist: -0.1,
            ..o.clone()
        },
        UmapOptions {
            min_dist: 2.0,
            ..o.clone()
        },
        UmapOptions {
            spread: 0.0,
            ..o.clone()
        },
        UmapOptions {
            spread: f32::NAN,
            ..o.clone()
        },
    ] {
        let e = umap(&[0.0; 4], 2, 2, &bad, |_| {}).unwrap_err();
        assert!(matches!(e, UmapError::Options(_)), "{bad:?}: {e:?}");
    }
}

#[test]
fn small_and_degenerate_inputs() {
    let o = opts(50, 1);
    assert!(umap(&[], 0, 4, &o, |_| {}).unwrap().is_empty());
    assert_eq!(
        umap(&[1.0, 2.0], 1, 2, &o, |_| {}).unwrap(),
        vec![[0.0, 0.0]]
    );
    let finite = |p: &[[f32; 2]]| p.iter().flatten().all(|v| v.is_finite());
    // Fewer cells than n_neighbors: k is clamped.
    for n in [2, 3, 5, 16] {
        let x: Vec<f32> = (0..n * 3).map(|i| ((i * 7) % 5) as f32 + 1.0).collect();
        let p = umap(&x, n, 3, &o, |_| {}).unwrap();
        assert!(p.len() == n && finite(&p), "{n}: {p:?}");
    }
    // All cells identical (zero distances, zero PCA): finite and pushed apart.
    let p = umap(&[1.0; 40 * 4], 40, 4, &o, |_| {}).unwrap();
    assert!(finite(&p));
    assert!(
        p.iter().any(|q| q != &p[0]),
        "coincident points are separated"
    );
    // Duplicates of a few points, and zero rows under the cosine metric.
    let (mut x, labels) = blobs(&random_centres(2, 6, 3.0, 4), 30, 0.5, 5);
    x.extend_from_within(..6 * 20);
    x.extend([0.0; 6 * 3]);
    let p = umap(&x, 60 + 20 + 3, 6, &o, |_| {}).unwrap();
    assert!(finite(&p));
    let agree = label_agreement(&p[..60], &labels, 5);
    assert!(agree > 0.9, "{agree}");
}
