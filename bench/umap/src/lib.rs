//! core's `tasks::umap` (and what it uses) compiled on its own, natively and for wasm32.
//! The module tree mirrors genecompass-core so the sources compile unchanged. Build only the
//! lib and bin here: `umap/`'s tests need the rest of core (run them there).

// Top-level `#[path]`s (inside an inline module they would resolve from a folder that does not
// exist): `umap/` reaches `super::pca` and `crate::priors::SplitMix64`, which these provide.
#[path = "../../../core/src/tasks/pca.rs"]
pub mod pca;
#[path = "../../../core/src/priors/rng.rs"]
mod rng;
#[path = "../../../core/src/tasks/umap/mod.rs"]
pub mod umap;

pub mod priors {
    pub use super::rng::SplitMix64;
}

use priors::SplitMix64;
use umap::{Metric, UmapOptions, umap};

/// `k` Gaussian-ish blobs (Irwin–Hall sums of 12 uniforms: plain arithmetic, so native and
/// wasm get the same numbers) of `n` points in `dim` dimensions, row-major.
pub fn blobs(n: usize, dim: usize, k: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    let mut gauss = || (0..12).map(|_| rng.next_f64()).sum::<f64>() - 6.0;
    let centres: Vec<f64> = (0..k * dim).map(|_| 3.0 * gauss()).collect();
    let mut x = Vec::with_capacity(n * dim);
    for i in 0..n {
        let c = i % k;
        x.extend((0..dim).map(|d| (centres[c * dim + d] + gauss()) as f32));
    }
    x
}

/// Options of a run: metric 0 = cosine, 1 = euclidean; epochs 0 = umap-learn's default.
pub fn options(seed: u64, metric: u32, epochs: u32) -> UmapOptions {
    UmapOptions {
        seed,
        metric: if metric == 0 {
            Metric::Cosine
        } else {
            Metric::Euclidean
        },
        n_epochs: (epochs > 0).then_some(epochs as usize),
        ..Default::default()
    }
}

/// FNV-1a over the bits of the layout of [`blobs`]`(n, dim, 10, 1)`; 0 on error.
#[unsafe(no_mangle)]
pub extern "C" fn umap_hash(n: u32, dim: u32, seed: u64, metric: u32, epochs: u32) -> u64 {
    let (n, dim) = (n as usize, dim as usize);
    let x = blobs(n, dim, 10, 1);
    let Ok(p) = umap(&x, n, dim, &options(seed, metric, epochs), |_| {}) else {
        return 0;
    };
    p.iter().flatten().fold(0xcbf2_9ce4_8422_2325u64, |h, v| {
        (h ^ u64::from(v.to_bits())).wrapping_mul(0x0100_0000_01b3)
    })
}
