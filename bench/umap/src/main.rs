//! Native timing and layout hashes of core's UMAP (see run.sh).
//!
//!   umap-bench N DIM           time: neighbours + graph + init (n_epochs 0), then a full run
//!   umap-bench 0 N DIM SEED METRIC EPOCHS    print the layout hash (as the wasm export does)
use std::time::Instant;
use umap_bench::{blobs, options, umap::umap, umap_hash};

fn main() {
    let a: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("integer"))
        .collect();
    if a[0] == 0 {
        println!(
            "{:016x}",
            umap_hash(a[1] as u32, a[2] as u32, a[3], a[4] as u32, a[5] as u32)
        );
        return;
    }
    let (n, dim) = (a[0] as usize, a[1] as usize);
    let x = blobs(n, dim, 10, 1);
    let time = |epochs: Option<usize>| {
        let o = umap_bench::umap::UmapOptions {
            n_epochs: epochs,
            ..options(42, 0, 0)
        };
        let t = Instant::now();
        umap(&x, n, dim, &o, |_| {}).expect("umap");
        t.elapsed().as_secs_f64()
    };
    let prep = time(Some(0));
    let total = time(None);
    println!(
        "n {n} × dim {dim}, cosine, default epochs: neighbours+graph+init {prep:.2} s, \
         SGD {:.2} s, total {total:.2} s",
        total - prep
    );
}
