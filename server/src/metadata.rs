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
    /// `raw_counts`, `non_integer_non_negative`, `has_negative`, `empty` or `tokenized`.
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
    use genecompass_core::tokenize::{
        EmbeddedGenes, GeneMatchOptions, SpeciesEvidence, match_genes,
    };
    let m = match_genes(genes, &EmbeddedGenes, &GeneMatchOptions::default()).ok()?;
    let r = &m.report;
    let evidence = match r.species_evidence {
        SpeciesEvidence::Override => "override",
        SpeciesEvidence::EnsemblPrefix { .. } => "ensembl_prefix",
        SpeciesEvidence::SymbolTables { .. } => "symbol_tables",
    };
    Some(GeneMeta {
        species: r.species.name().to_string(),
        species_evidence: evidence.to_string(),
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

/// `value_kind` of a tokenized dataset (cells already ranked and normalised as model input).
pub const TOKENIZED: &str = "tokenized";

/// Largest safetensors header read (the CELLS header is a few hundred bytes plus the labels).
const MAX_HEADER: u64 = 256 << 20;

/// Describes a CELLS safetensors file (`genecompass-train tokenize` output): `None` when the
/// file is not a safetensors file, an error when it is one but not of cells.
fn tokenized_metadata(path: &Path) -> Option<Result<DatasetMeta, String>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let mut len = [0u8; 9];
    f.read_exact(&mut len).ok()?;
    let n = u64::from_le_bytes(len[..8].try_into().expect("8 bytes"));
    if !(2..=MAX_HEADER).contains(&n) || len[8] != b'{' {
        return None;
    }
    let mut header = vec![0u8; n as usize];
    f.seek(SeekFrom::Start(8)).ok()?;
    f.read_exact(&mut header).ok()?;
    let h: serde_json::Value = serde_json::from_slice(&header).ok()?;
    Some((|| {
        let bad = |what: &str| {
            format!(
                "a safetensors file, but not tokenized cells: {what}; upload a count matrix \
                 (h5ad, 10x, CSV) or the output of `genecompass-train tokenize`"
            )
        };
        let ids = &h["input_ids"];
        let shape: Vec<u64> = ids["shape"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_u64()).collect())
            .unwrap_or_default();
        let [cells, len] = shape[..] else {
            return Err(bad("no input_ids tensor of shape [cells, genes]"));
        };
        for t in ["values", "species"] {
            if h[t]["shape"].as_array().and_then(|a| a.first()?.as_u64()) != Some(cells) {
                return Err(bad(&format!("no `{t}` tensor with one row per cell")));
            }
        }
        // Species codes, to name the species.
        let sp = &h["species"];
        let (start, end) = (
            sp["data_offsets"][0].as_u64().unwrap_or(0),
            sp["data_offsets"][1].as_u64().unwrap_or(0),
        );
        if sp["dtype"] != "I64" || end < start || end - start != cells * 8 {
            return Err(bad("`species` is not one int64 per cell"));
        }
        let mut raw = vec![0u8; (end - start) as usize];
        f.seek(SeekFrom::Start(8 + n + start))
            .and_then(|_| f.read_exact(&mut raw))
            .map_err(|e| bad(&format!("reading `species`: {e}")))?;
        let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
        for c in raw.chunks_exact(8) {
            let code = i64::from_le_bytes(c.try_into().expect("8 bytes"));
            let name = genecompass_core::cells::Species::from_code(code)
                .map_or_else(|| format!("code {code}"), |s| s.name().to_string());
            *counts.entry(name).or_default() += 1;
        }
        let meta = &h["__metadata__"];
        let labels: Option<Vec<String>> = meta["labels"]
            .as_str()
            .and_then(|t| serde_json::from_str(t).ok());
        let mut obs_columns = Vec::new();
        let mut warnings = Vec::new();
        match labels {
            Some(l) if l.len() as u64 == cells => obs_columns.push(ObsColumnMeta {
                name: meta["label_column"].as_str().unwrap_or("label").to_string(),
                kind: "text".into(),
                distinct: Some(l.iter().collect::<HashSet<_>>().len()),
            }),
            Some(_) => return Err(bad("metadata `labels` does not have one entry per cell")),
            None => warnings.push(
                "no labels: tokenize with --label-column to fine-tune on this file".to_string(),
            ),
        }
        let species = counts
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        Ok(DatasetMeta {
            format: format!(
                "tokenized cells (safetensors): {cells} cells padded to {len} genes; species {species}"
            ),
            matrix_path: "input_ids".into(),
            n_cells: cells as usize,
            n_genes: len as usize,
            value_kind: TOKENIZED.into(),
            obs_columns,
            warnings,
            genes: None,
        })
    })())
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
    if let Some(tokenized) = tokenized_metadata(path) {
        return tokenized;
    }
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
