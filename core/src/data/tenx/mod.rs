//! 10x Genomics Cell Ranger outputs: the matrix folder (v2 `genes.tsv`, v3 `features.tsv.gz`,
//! `barcodes.tsv`, `matrix.mtx`, optionally gzip'd) and the `.h5` files (v2 group per genome,
//! v3 `matrix/`). Matrices are genes × cells on disk and are delivered as cells × genes.
//!
//! Only features of type "Gene Expression" are genes: other features (antibody capture, CRISPR
//! guides, peaks, …) are dropped from the columns and reported in the warnings.

mod h5;
mod mtx;

pub(crate) use h5::open as open_h5;
#[cfg(not(target_arch = "wasm32"))]
pub use h5::open_tenx_h5;
pub use h5::{TenxH5Source, open_tenx_h5_bytes};
#[cfg(not(target_arch = "wasm32"))]
pub use mtx::open_tenx_dir;
pub use mtx::open_tenx_mtx_bytes;

use super::{CsrChunk, GeneColumns};

/// Which genome(s) of a multi-genome file to read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum GenomeChoice {
    /// The only genome; with several, all of them side by side (as [`Self::Concatenate`]),
    /// with a warning.
    #[default]
    Auto,
    /// Only the genes of this genome.
    One(String),
    /// All genomes, genes of each genome appended in file order (`GeneColumns::genomes` says
    /// which is which).
    Concatenate,
}

/// The feature type that denotes genes.
pub const GENE_EXPRESSION: &str = "Gene Expression";

/// Which file columns survive, and the renumbering applied to chunk indices.
pub(crate) struct ColumnFilter {
    /// New index of each original column, `None` = dropped. `None` overall = keep everything.
    map: Option<Vec<Option<u32>>>,
}

impl ColumnFilter {
    /// Keeps the columns for which `keep` is true, restricting `genes` to them.
    pub fn new(genes: &mut GeneColumns, keep: &[bool]) -> ColumnFilter {
        if keep.iter().all(|&k| k) {
            return ColumnFilter { map: None };
        }
        let mut next = 0u32;
        let map = keep
            .iter()
            .map(|&k| {
                k.then(|| {
                    next += 1;
                    next - 1
                })
            })
            .collect();
        let pick = |v: &mut Vec<String>| {
            let mut i = 0;
            v.retain(|_| {
                i += 1;
                keep[i - 1]
            });
        };
        pick(&mut genes.names);
        for v in [&mut genes.ids, &mut genes.feature_types, &mut genes.genomes]
            .into_iter()
            .flatten()
        {
            pick(v);
        }
        ColumnFilter { map: Some(map) }
    }

    /// Renumbers (and drops) entries of a chunk.
    pub fn apply(&self, chunk: CsrChunk) -> CsrChunk {
        let Some(map) = &self.map else { return chunk };
        let mut out = CsrChunk {
            first_cell: chunk.first_cell,
            indptr: vec![0],
            ..Default::default()
        };
        for i in 0..chunk.n_cells() {
            let (idx, val) = chunk.cell(i);
            for (&g, &v) in idx.iter().zip(val) {
                if let Some(Some(n)) = map.get(g as usize) {
                    out.indices.push(*n);
                    out.data.push(v);
                }
            }
            out.indptr.push(out.indices.len());
        }
        out
    }

    /// Maps one original column.
    pub fn map(&self, g: u32) -> Option<u32> {
        match &self.map {
            None => Some(g),
            Some(m) => m.get(g as usize).copied().flatten(),
        }
    }
}

/// The keep-mask for "Gene Expression" features plus a warning listing what was dropped.
/// Files without feature types (v2) keep everything.
pub(crate) fn gene_expression_mask(file: &str, genes: &GeneColumns) -> (Vec<bool>, Vec<String>) {
    let n = genes.names.len();
    let Some(types) = &genes.feature_types else {
        return (vec![true; n], Vec::new());
    };
    let keep: Vec<bool> = types.iter().map(|t| t == GENE_EXPRESSION).collect();
    let mut dropped: Vec<(String, usize)> = Vec::new();
    for t in types.iter().filter(|t| *t != GENE_EXPRESSION) {
        match dropped.iter_mut().find(|(n, _)| n == t) {
            Some(d) => d.1 += 1,
            None => dropped.push((t.clone(), 1)),
        }
    }
    let warnings = if dropped.is_empty() {
        Vec::new()
    } else {
        let list: Vec<String> = dropped.iter().map(|(t, c)| format!("{t}: {c}")).collect();
        vec![format!(
            "{file}: dropped {} non-gene features ({}); only \"{GENE_EXPRESSION}\" features are genes",
            dropped.iter().map(|d| d.1).sum::<usize>(),
            list.join(", ")
        )]
    };
    (keep, warnings)
}

/// Splits a 10x TSV line into fields.
pub(crate) fn tsv_fields(line: &str) -> Vec<&str> {
    line.split('\t').collect()
}
