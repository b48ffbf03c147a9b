//! Cell quality control: official steps 2 (`normal_filter`), 3 (`gene_id_filter`) and 4
//! (`gene_number_filter`) of `preprocess.py`.

use serde::Serialize;

/// What zero spread of a z-scored statistic does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ZeroVariance {
    /// z = 0 for every cell, so none is dropped by that statistic. **Deviation**: chosen as the
    /// default because the official behaviour makes files without mitochondrial genes (or one-cell
    /// samples) lose every cell.
    #[default]
    Keep,
    /// Official: `scipy.stats.zscore` returns NaN when the standard deviation is 0, and NaN fails
    /// both comparisons, so every cell of the sample is dropped.
    DropLikeScipy,
}

/// Official step 2: drop cells with total counts ≤ 0, then cells whose z-score of total counts or of
/// mitochondrial fraction is outside (−limit, limit).
#[derive(Debug, Clone, PartialEq)]
pub struct CellQcOptions {
    /// Runs the z-score filter (the total > 0 filter always runs: empty cells cannot be tokenized).
    pub zscore_filter: bool,
    /// The z-score bound, strict on both sides (official 3).
    pub zscore_limit: f64,
    /// `obs` column naming each cell's sample; z-scores are computed within each sample, as the
    /// official per-sample script does. `None` treats the whole file as one sample.
    pub sample_column: Option<String>,
    /// Mitochondrial genes are those whose symbol starts with this prefix. `None`: `MT-` (human),
    /// `mt-` (mouse). The official list came from `{species}_mitochondria.xlsx`, which is not shipped.
    pub mito_prefix: Option<String>,
    /// Behaviour when a statistic has zero spread in a sample.
    pub zero_variance: ZeroVariance,
}

impl Default for CellQcOptions {
    fn default() -> Self {
        Self {
            zscore_filter: true,
            zscore_limit: 3.0,
            sample_column: None,
            mito_prefix: None,
            zero_variance: ZeroVariance::Keep,
        }
    }
}

/// Official steps 3 and 4: gene filter and the minimum number of expressed genes.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneCountFilter {
    /// Step 3 keeps genes of `gene_id_hpromoter.pickle` ("promoter ∩ gene2vec ∩ protein"), which is
    /// not shipped. `Some(biotypes)` keeps only genes of these canonical biotypes (e.g.
    /// `["protein_coding"]`); `None` (default) skips the step — the vocabulary filter (step 5) already
    /// restricts genes to those with prior knowledge.
    pub gene_biotypes: Option<Vec<String>>,
    /// Step 4 counts expressed genes of these biotypes (official: protein-coding and miRNA lists).
    pub count_biotypes: Vec<String>,
    /// Keep cells with strictly more than this many expressed counted genes (official 6).
    pub min_genes_exclusive: usize,
}

impl Default for GeneCountFilter {
    fn default() -> Self {
        Self {
            gene_biotypes: None,
            count_biotypes: vec!["protein_coding".into(), "miRNA".into()],
            min_genes_exclusive: 6,
        }
    }
}

/// Per-cell statistics gathered in the first pass.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CellStats {
    /// Sum of counts over genes mapped to an Ensembl id.
    pub total: f64,
    /// Sum of counts over mitochondrial genes.
    pub mito: f64,
    /// Number of expressed genes counted for step 4.
    pub n_counted: u32,
}

/// Cells remaining after each QC step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct QcCounts {
    /// Cells read.
    pub cells_in: usize,
    /// After total counts > 0.
    pub after_nonzero_total: usize,
    /// After the z-score filter.
    pub after_zscore: usize,
    /// After the expressed-gene filter.
    pub after_min_genes: usize,
}

/// Population z-scores (ddof = 0, as `scipy.stats.zscore`) of `x`; `None` entries when the spread is 0.
pub fn zscores(x: &[f64]) -> Vec<Option<f64>> {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let sd = var.sqrt();
    x.iter()
        .map(|v| (sd > 0.0).then(|| (v - mean) / sd))
        .collect()
}

/// Applies steps 2 and 4 to the first-pass statistics: which cells are kept.
///
/// `samples[i]` is cell `i`'s sample (z-scores are computed within each sample over its cells with
/// total > 0).
pub fn select_cells(
    stats: &[CellStats],
    samples: Option<&[String]>,
    qc: &CellQcOptions,
    genes: &GeneCountFilter,
) -> (Vec<bool>, QcCounts) {
    let n = stats.len();
    let mut keep: Vec<bool> = stats.iter().map(|s| s.total > 0.0).collect();
    let mut counts = QcCounts {
        cells_in: n,
        after_nonzero_total: keep.iter().filter(|&&k| k).count(),
        ..Default::default()
    };
    if qc.zscore_filter {
        let mut groups: std::collections::BTreeMap<&str, Vec<usize>> =
            std::collections::BTreeMap::new();
        for i in (0..n).filter(|&i| keep[i]) {
            let s = samples.map(|s| s[i].as_str()).unwrap_or("");
            groups.entry(s).or_default().push(i);
        }
        let lim = qc.zscore_limit;
        for idx in groups.values() {
            let tot: Vec<f64> = idx.iter().map(|&i| stats[i].total).collect();
            let frac: Vec<f64> = idx
                .iter()
                .map(|&i| stats[i].mito / stats[i].total)
                .collect();
            let (zt, zf) = (zscores(&tot), zscores(&frac));
            for (k, &i) in idx.iter().enumerate() {
                let ok = |z: Option<f64>| match z {
                    Some(z) => z > -lim && z < lim,
                    None => qc.zero_variance == ZeroVariance::Keep,
                };
                keep[i] = ok(zt[k]) && ok(zf[k]);
            }
        }
    }
    counts.after_zscore = keep.iter().filter(|&&k| k).count();
    for i in 0..n {
        if keep[i] && (stats[i].n_counted as usize) <= genes.min_genes_exclusive {
            keep[i] = false;
        }
    }
    counts.after_min_genes = keep.iter().filter(|&&k| k).count();
    (keep, counts)
}
