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

/// What the file's genes are, as the tokenizer sees them (no model needed: measured against
/// the embedded HGNC/MGI nomenclature, which every vocabulary is drawn from).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneMeta {
    /// `human` or `mouse`, as the tokenizer detects it.
    pub species: String,
    /// How it was decided (`ensembl_prefix`, `symbol_tables`).
    pub species_evidence: String,
    /// Which identifiers name the genes: `ensembl (names)`, `ensembl (ids column)`, `symbols`.
    pub identifier: String,
    /// Genes mapped to an Ensembl id of that species (the tokenizer drops the others).
    pub recognised: usize,
    /// `recognised` / genes in the file.
    pub recognised_share: f64,
    /// Symbols naming several genes (dropped, never guessed).
    pub ambiguous: usize,
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
    /// Species, gene identifiers and how many genes the nomenclature recognises; `None` when
    /// the species cannot be told (the file's gene names are neither Ensembl ids nor symbols).
    pub genes: Option<GeneMeta>,
}

/// Matches the genes against every embedded human and mouse gene.
fn gene_meta(genes: &genecompass_core::data::GeneColumns) -> Option<GeneMeta> {
    use genecompass_core::cells::Species;
    use genecompass_core::tokenize::{GeneMatchOptions, GeneTable, TokenDictionary, match_genes};
    use std::sync::OnceLock;
    static ALL: OnceLock<TokenDictionary> = OnceLock::new();
    let all = ALL.get_or_init(|| {
        let ids = [Species::Human, Species::Mouse].into_iter().flat_map(|s| {
            GeneTable::embedded(s)
                .records
                .iter()
                .filter(|r| !r.ensembl_id.is_empty())
                .map(|r| r.ensembl_id.clone())
        });
        TokenDictionary::build(ids)
    });
    let m = match_genes(genes, all, &GeneMatchOptions::default()).ok()?;
    let r = &m.report;
    let evidence = serde_json::to_value(&r.species_evidence)
        .ok()
        .and_then(|v| v["how"].as_str().map(String::from))
        .unwrap_or_default();
    Some(GeneMeta {
        species: r.species.name().to_string(),
        species_evidence: evidence,
        identifier: r.identifier.clone(),
        recognised: r.mapped_to_ensembl,
        recognised_share: if r.genes_in_file > 0 {
            r.mapped_to_ensembl as f64 / r.genes_in_file as f64
        } else {
            0.0
        },
        ambiguous: r.ambiguous.len(),
    })
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
        genes: gene_meta(src.genes()),
    })
}
