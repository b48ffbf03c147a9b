//! Dataset metadata read with core's readers (`genecompass_core::data::open_path`), so the
//! registry describes a file exactly as the trainer will see it.

use std::collections::HashSet;
use std::path::Path;

use genecompass_core::data::{MatrixChoice, ObsColumn, ValueKind, open_path, value_kind};
use serde::{Deserialize, Serialize};

/// How many cells are sampled to classify the values.
const SAMPLE_CELLS: usize = 500;

/// One per-cell metadata column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObsColumnMeta {
    /// Column name.
    pub name: String,
    /// `text` or `number`.
    pub kind: String,
    /// Distinct values of a text column (capped at 10 000), `null` for numbers.
    pub distinct: Option<usize>,
}

/// What the registry stores about a dataset file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetMeta {
    /// Reader's format description, e.g. "h5ad (anndata 0.8 schema), X as CSR".
    pub format: String,
    /// The matrix read (`X`, `raw/X`, `layers/counts`...).
    pub matrix_path: String,
    /// Number of cells.
    pub n_cells: usize,
    /// Number of genes.
    pub n_genes: usize,
    /// `raw_counts`, `non_integer_non_negative`, `has_negative` or `empty`.
    pub value_kind: String,
    /// Per-cell metadata columns.
    pub obs_columns: Vec<ObsColumnMeta>,
    /// The reader's warnings.
    pub warnings: Vec<String>,
}

/// The stored name of a value kind.
pub fn value_kind_name(k: ValueKind) -> &'static str {
    match k {
        ValueKind::RawCounts => "raw_counts",
        ValueKind::NonIntegerNonNegative => "non_integer_non_negative",
        ValueKind::HasNegative => "has_negative",
        ValueKind::Empty => "empty",
    }
}

/// Opens `path` (any format core reads) and describes it. Blocking: call from
/// `spawn_blocking`. The error is the reader's message, meant for the user.
pub fn read_metadata(path: &Path) -> Result<DatasetMeta, String> {
    let mut src = open_path(path, MatrixChoice::Auto).map_err(|e| e.to_string())?;
    let info = src.info().clone();
    let sample = src.next_chunk(SAMPLE_CELLS).map_err(|e| e.to_string())?;
    let kind = sample.as_ref().map_or(ValueKind::Empty, value_kind);
    let obs_columns = src
        .cells()
        .columns
        .iter()
        .map(|(name, col)| match col {
            ObsColumn::Text(v) => {
                let mut seen = HashSet::new();
                for s in v {
                    if seen.len() >= 10_000 {
                        break;
                    }
                    seen.insert(s.as_str());
                }
                ObsColumnMeta {
                    name: name.clone(),
                    kind: "text".into(),
                    distinct: Some(seen.len()),
                }
            }
            ObsColumn::Number(_) => ObsColumnMeta {
                name: name.clone(),
                kind: "number".into(),
                distinct: None,
            },
        })
        .collect();
    Ok(DatasetMeta {
        format: info.format,
        matrix_path: info.matrix_path,
        n_cells: info.n_cells,
        n_genes: info.n_genes,
        value_kind: value_kind_name(kind).into(),
        obs_columns,
        warnings: src.warnings().to_vec(),
    })
}
