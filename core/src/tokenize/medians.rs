//! Per-gene median dictionaries (`{ensembl_id: median}`), the divisor of the official
//! normalisation `x / median_j`.
//!
//! **What the official dict holds.** `human_gene_median_after_filter.pickle` is not shipped
//! (issue #12). Its name and the preprocessing code say: for each gene, the median of its
//! **non-zero** values over the corpus cells kept by the official QC. The example values quoted in
//! the official source (`1.4178…`, `0.8293…`, `0.44774532318115234` — the last one exactly a float32)
//! are not integers or half-integers, so they were not taken over raw counts: most likely over
//! library-size-normalised values (Geneformer's recipe: `count / cell_total × 1e4`). Whether that is
//! consistent with the tokenizer dividing *raw* counts by it is GitHub issue #23. [`MedianAccumulator`]
//! therefore takes whatever values the caller feeds; [`crate::tokenize::pipeline::compute_medians`]
//! offers both inputs (normalised to 1e4 by default, or raw counts).

use super::TokenizeError;
use crate::pickle;
use std::collections::{BTreeMap, HashMap};

/// Gene (Ensembl id) → median of its non-zero values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GeneMedians {
    /// The medians by Ensembl id.
    pub medians: HashMap<String, f64>,
}

impl GeneMedians {
    /// Reads a pickled `dict[str,float]` (numpy float scalars accepted).
    pub fn from_pickle(bytes: &[u8], source: &str) -> Result<Self, TokenizeError> {
        let v = pickle::unpickle(bytes, source)?;
        Ok(Self {
            medians: pickle::str_float_dict(&v, source)?,
        })
    }

    /// Reads JSON `{ensembl_id: number}` (`null` is read as NaN, which the pipeline turns into 0).
    pub fn from_json(bytes: &[u8], source: &str) -> Result<Self, TokenizeError> {
        let map: HashMap<String, Option<f64>> =
            serde_json::from_slice(bytes).map_err(|e| TokenizeError::Json {
                file: source.into(),
                message: e.to_string(),
            })?;
        Ok(Self {
            medians: map
                .into_iter()
                .map(|(k, v)| (k, v.unwrap_or(f64::NAN)))
                .collect(),
        })
    }

    /// Reads either format, by content.
    pub fn from_bytes(bytes: &[u8], source: &str) -> Result<Self, TokenizeError> {
        if bytes.first() == Some(&0x80) || bytes.starts_with(b"version https://git-lfs") {
            Self::from_pickle(bytes, source)
        } else {
            Self::from_json(bytes, source)
        }
    }

    /// Loads a `.pickle` or `.json` file (native only).
    pub fn load(path: &std::path::Path) -> Result<Self, TokenizeError> {
        Self::from_bytes(&super::read_path(path)?, &path.display().to_string())
    }

    /// Pretty JSON, keys sorted (NaN written as `null`).
    pub fn to_json(&self) -> String {
        let sorted: BTreeMap<&String, Option<f64>> = self
            .medians
            .iter()
            .map(|(k, &v)| (k, v.is_finite().then_some(v)))
            .collect();
        serde_json::to_string_pretty(&sorted).expect("medians serialise")
    }

    /// The median of a gene, if present.
    pub fn get(&self, ensembl_id: &str) -> Option<f64> {
        self.medians.get(ensembl_id).copied()
    }

    /// The official divisor: the median, or 1 when the gene is missing (`Normalized` in preprocess.py).
    pub fn divisor(&self, ensembl_id: &str) -> f64 {
        self.get(ensembl_id).unwrap_or(1.0)
    }
}

/// How [`MedianAccumulator`] keeps values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MedianMode {
    /// Keeps every non-zero value (as f32, 4 bytes per non-zero entry of the kept cells) and returns
    /// numpy's median of them (mean of the two middle values for even counts, in f64).
    Exact,
    /// Bounded memory: a sparse histogram over `log2(x)` with `bins_per_octave` bins per doubling.
    /// The median is the geometric centre of the bin holding it, so its relative error is at most
    /// `2^(1/(2·bins_per_octave)) − 1` (0.54 % at 64 bins). Memory per gene is at most one
    /// 8-byte entry per occupied bin (≤ 64 × ~40 octaves).
    Histogram {
        /// Bins per doubling of the value.
        bins_per_octave: u32,
    },
}

/// Accumulates non-zero values per gene slot in one streaming pass, then yields medians.
#[derive(Debug, Clone)]
pub struct MedianAccumulator {
    mode: MedianMode,
    exact: Vec<Vec<f32>>,
    hist: Vec<BTreeMap<i32, u32>>,
}

impl MedianAccumulator {
    /// An accumulator for `n_genes` gene slots.
    pub fn new(n_genes: usize, mode: MedianMode) -> Self {
        let (exact, hist) = match mode {
            MedianMode::Exact => (vec![Vec::new(); n_genes], Vec::new()),
            MedianMode::Histogram { .. } => (Vec::new(), vec![BTreeMap::new(); n_genes]),
        };
        Self { mode, exact, hist }
    }

    /// Adds a value of gene `slot`; zeros and non-finite values are ignored (non-zero medians).
    pub fn add(&mut self, slot: usize, value: f64) {
        if value == 0.0 || !value.is_finite() {
            return;
        }
        match self.mode {
            MedianMode::Exact => self.exact[slot].push(value as f32),
            MedianMode::Histogram { bins_per_octave } => {
                let bin = (value.log2() * bins_per_octave as f64).floor() as i32;
                *self.hist[slot].entry(bin).or_insert(0) += 1;
            }
        }
    }

    /// The median of each slot (`None` when the gene never had a non-zero value).
    pub fn finish(self) -> Vec<Option<f64>> {
        match self.mode {
            MedianMode::Exact => self
                .exact
                .into_iter()
                .map(|mut v| {
                    if v.is_empty() {
                        return None;
                    }
                    v.sort_unstable_by(f32::total_cmp);
                    let n = v.len();
                    Some(if n % 2 == 1 {
                        v[n / 2] as f64
                    } else {
                        (v[n / 2 - 1] as f64 + v[n / 2] as f64) / 2.0
                    })
                })
                .collect(),
            MedianMode::Histogram { bins_per_octave } => self
                .hist
                .into_iter()
                .map(|h| {
                    let n: u64 = h.values().map(|&c| c as u64).sum();
                    if n == 0 {
                        return None;
                    }
                    let centre = |bin: i32| ((bin as f64 + 0.5) / bins_per_octave as f64).exp2();
                    let at = |rank: u64| {
                        let mut seen = 0u64;
                        for (&bin, &c) in &h {
                            seen += c as u64;
                            if seen > rank {
                                return centre(bin);
                            }
                        }
                        unreachable!("rank < total")
                    };
                    Some(if n % 2 == 1 {
                        at(n / 2)
                    } else {
                        (at(n / 2 - 1) + at(n / 2)) / 2.0
                    })
                })
                .collect(),
        }
    }
}
