//! Ranking cells, single-threaded: the rank table ([`RankTable::rank`], the tokenizer's path
//! without normalisation) against sorting each cell ([`rank_cell_counted`], the general path),
//! on the 822 real cells of Baron's mouse pancreas (1.16 M counts), with every gene's divisor 1
//! (no medians) and with medians from 0.25 to 4. Both outputs are checked equal first.
//!
//!   cargo bench -p genecompass-core --bench rank_cells          (REPS=20 passes by default)

use std::path::Path;
use std::time::Instant;

use genecompass_core::data::{CsrChunk, MatrixChoice, open_path};
use genecompass_core::tokenize::rank_table::{RankScratch, RankTable};
use genecompass_core::tokenize::transform::{GeneValue, TieBreak, rank_cell_counted};

const MAX_LEN: Option<usize> = Some(2048);

fn main() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/h5ad/baron_mouse_pancreas_822.h5ad"
    );
    let mut src =
        open_path(Path::new(path), MatrixChoice::Auto).expect("../shared/data beside the checkout");
    let chunk = src.next_chunk(usize::MAX).unwrap().unwrap();
    let n_genes = src.genes().names.len();
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let values = chunk.data.len() * reps;
    println!(
        "{} cells, {} counts, {reps} passes",
        chunk.n_cells(),
        chunk.data.len()
    );
    println!("| divisors | table ns/count | sort ns/count | sort ÷ table |");
    println!("|---|---|---|---|");
    for (name, median) in [
        ("1 (no medians)", (|_| 1.0) as fn(usize) -> f64),
        ("0.25 to 4", |j| 0.25 * (1 + j % 16) as f64),
    ] {
        let used: Vec<Option<(u32, f64)>> = (0..n_genes)
            .map(|j| Some((j as u32 + 5, median(j))))
            .collect();
        // Baron's 1.16 M genes get counts up to 8 (`RankTable::counts_for`).
        let table = RankTable::new(&used, 8);
        let mut scratch = RankScratch::default();
        let mut buf = Vec::new();
        for i in 0..chunk.n_cells() {
            let (idx, val) = chunk.cell(i);
            assert_eq!(
                table.rank(idx, val, &mut scratch, MAX_LEN),
                by_sort(&chunk, i, &used, &mut buf),
                "cell {i}"
            );
        }
        let t = Instant::now();
        let mut tokens = 0;
        for _ in 0..reps {
            for i in 0..chunk.n_cells() {
                let (idx, val) = chunk.cell(i);
                tokens += table.rank(idx, val, &mut scratch, MAX_LEN).input_ids.len();
            }
        }
        let table_ns = t.elapsed().as_nanos() as f64 / values as f64;
        let t = Instant::now();
        let mut sorted = 0;
        for _ in 0..reps {
            for i in 0..chunk.n_cells() {
                sorted += by_sort(&chunk, i, &used, &mut buf).input_ids.len();
            }
        }
        let sort_ns = t.elapsed().as_nanos() as f64 / values as f64;
        assert_eq!(tokens, sorted);
        println!(
            "| {name} | {table_ns:.2} | {sort_ns:.2} | {:.2}× |",
            sort_ns / table_ns
        );
    }
}

/// Cell `i` ranked by sorting its keys, as the tokenizer's general path does.
fn by_sort(
    chunk: &CsrChunk,
    i: usize,
    used: &[Option<(u32, f64)>],
    buf: &mut Vec<GeneValue>,
) -> genecompass_core::tokenize::transform::RankedCell {
    let (idx, val) = chunk.cell(i);
    buf.clear();
    buf.extend(idx.iter().zip(val).filter_map(|(&j, &v)| {
        let (token, median) = used[j as usize]?;
        Some(GeneValue {
            column: j,
            token,
            count: f64::from(v),
            median,
        })
    }));
    rank_cell_counted(buf, None, TieBreak::TokenId, MAX_LEN)
}
