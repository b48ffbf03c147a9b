//! AnnData `.h5ad` reader (pure Rust via `hdf5-pure`, so it also runs in the browser).
//!
//! Supports dense, CSR and CSC `X`, `raw/X` (and legacy root `raw.X`), `layers/<name>`; obs/var
//! in the current, 0.7-era and pre-0.7 schemas; gzip and LZF compression. Cells are delivered
//! in chunks read with row-window reads (see [`crate::data::h5matrix`] for the CSC memory cost).

pub mod annotate;
mod frame;

use frame::{Frame, read_frame};

use super::csr::{ValueKind, duplicate_name_warnings, value_kind};
use super::h5matrix::{H5Matrix, Storage};
use super::h5util::{Column, H5};
use super::{CellSource, CellTable, CsrChunk, DataError, GeneColumns, MatrixInfo, ObsColumn};

/// Which matrix of an h5ad file to read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MatrixChoice {
    /// The first of X, raw/X, layers (`counts` first) whose sampled values look like raw counts;
    /// X (with a warning) when none does.
    #[default]
    Auto,
    /// `X`.
    X,
    /// `raw/X` (or the legacy root `raw.X`), with the genes of `raw/var`.
    RawX,
    /// `layers/<name>`.
    Layer(String),
}

/// One matrix found in a file, for letting the user choose.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixSummary {
    /// Path in the file: "X", "raw/X", "raw.X", "layers/counts".
    pub path: String,
    /// Cells (rows).
    pub n_cells: usize,
    /// Genes (columns).
    pub n_genes: usize,
    /// On-disk layout.
    pub storage: Storage,
    /// What a sample of its stored values looks like.
    pub kind: ValueKind,
}

/// Values sampled per matrix for [`ValueKind`].
const SAMPLE_VALUES: usize = 200_000;

/// An opened h5ad file, delivering the chosen matrix chunk by chunk.
pub struct H5adSource {
    info: MatrixInfo,
    genes: GeneColumns,
    cells: CellTable,
    matrix: H5Matrix,
    pos: usize,
    matrices: Vec<MatrixSummary>,
    warnings: Vec<String>,
}

impl H5adSource {
    /// Every matrix in the file with its value kind, so a UI can offer the choice.
    pub fn matrices(&self) -> &[MatrixSummary] {
        &self.matrices
    }

    /// Where the chosen matrix is stored and how.
    pub fn storage(&self) -> Storage {
        self.matrix.storage
    }
}

/// Opens an h5ad held in memory (browser upload). `name` is only used in messages.
pub fn open_h5ad_bytes(
    bytes: Vec<u8>,
    name: &str,
    choice: MatrixChoice,
) -> Result<H5adSource, DataError> {
    open_h5(H5::from_bytes(bytes, name)?, choice)
}

/// Opens an h5ad on disk with streaming reads (memory bounded by the chunk, not the file).
#[cfg(not(target_arch = "wasm32"))]
pub fn open_h5ad(path: &std::path::Path, choice: MatrixChoice) -> Result<H5adSource, DataError> {
    open_h5(H5::open_path(path)?, choice)
}

/// Opens the matrix at `path` (a dense dataset or a sparse group).
fn open_matrix(h5: &H5, path: &str) -> Result<H5Matrix, DataError> {
    if h5.is_dataset(path)? {
        return H5Matrix::dense(h5, path);
    }
    let enc = match h5.attr_str(path, "encoding-type")? {
        Some(e) => e,
        None => h5.attr_str(path, "h5sparse_format")?.unwrap_or_default(),
    };
    let shape = match h5.attr_ints(path, "shape")? {
        Some(s) => s,
        None => h5.attr_ints(path, "h5sparse_shape")?.unwrap_or_default(),
    };
    let storage = match enc.as_str() {
        "csr_matrix" | "csr" => Storage::CellMajor,
        "csc_matrix" | "csc" => Storage::GeneMajor,
        other => {
            return Err(h5.msg(format!(
                "`{path}` has encoding `{other}`; only dense arrays and CSR/CSC sparse matrices \
                 are supported"
            )));
        }
    };
    let [c, g] = shape[..] else {
        return Err(h5.msg(format!("`{path}` has no 2-D `shape` attribute")));
    };
    if c < 0 || g < 0 {
        return Err(h5.msg(format!("`{path}` has a negative shape {shape:?}")));
    }
    H5Matrix::sparse(h5, path, storage, c as usize, g as usize)
}

/// A matrix summary from a cheap sample: the first stored values (sparse) or rows (dense).
fn summarize(h5: &H5, path: &str) -> Result<MatrixSummary, DataError> {
    let m = open_matrix(h5, path)?;
    let sample = if m.storage == Storage::Dense {
        let mut m = m;
        let c = m.read(0, (SAMPLE_VALUES / m.n_genes.max(1)).clamp(1, 500))?;
        return Ok(MatrixSummary {
            path: path.into(),
            n_cells: m.n_cells,
            n_genes: m.n_genes,
            storage: m.storage,
            kind: value_kind(&c),
        });
    } else {
        let ds = h5.dataset(&format!("{path}/data"))?;
        let v = ds
            .read_f32_rows(0, SAMPLE_VALUES as u64)
            .map_err(|e| h5.err(&format!("{path}/data"), e))?;
        CsrChunk {
            first_cell: 0,
            indptr: vec![0, v.len()],
            indices: vec![0; v.len()],
            data: v,
        }
    };
    Ok(MatrixSummary {
        path: path.into(),
        n_cells: m.n_cells,
        n_genes: m.n_genes,
        storage: m.storage,
        kind: value_kind(&sample),
    })
}

/// Opens an already-parsed HDF5 file as h5ad.
pub(crate) fn open_h5(h5: H5, choice: MatrixChoice) -> Result<H5adSource, DataError> {
    let (root_groups, root_ds) = h5.children("")?.unwrap_or_default();
    let has = |n: &str| root_groups.iter().chain(&root_ds).any(|x| x == n);
    if !has("X") && !has("layers") {
        let tenx = root_groups.iter().any(|g| g == "matrix") || has_v2_genome(&h5, &root_groups)?;
        let mut all: Vec<&String> = root_groups.iter().chain(&root_ds).collect();
        all.sort();
        return Err(h5.msg(if tenx {
            "this is a 10x Cell Ranger .h5 file, not an .h5ad; open it with the 10x reader \
             (open_path / open_tenx_h5 detect it)"
                .to_string()
        } else {
            format!(
                "HDF5 file without an AnnData `X` matrix (top-level objects: {all:?}); \
                 it does not look like single-cell data in h5ad format"
            )
        }));
    }
    let mut paths = Vec::new();
    if has("X") {
        paths.push("X".to_string());
    }
    if h5.is_group("raw")? && (h5.is_group("raw/X")? || h5.is_dataset("raw/X")?) {
        paths.push("raw/X".to_string());
    } else if has("raw.X") {
        paths.push("raw.X".to_string());
    }
    if let Some((lg, ld)) = h5.children("layers")? {
        let mut names: Vec<String> = lg.into_iter().chain(ld).collect();
        names.sort();
        paths.extend(names.into_iter().map(|n| format!("layers/{n}")));
    }
    let mut warnings = Vec::new();
    let mut matrices = Vec::new();
    for p in &paths {
        match summarize(&h5, p) {
            Ok(s) => matrices.push(s),
            Err(e) => warnings.push(format!("matrix `{p}` is unreadable and was skipped: {e}")),
        }
    }
    let listing = || {
        let v: Vec<&str> = matrices.iter().map(|m| m.path.as_str()).collect();
        format!(
            "available: {}",
            if v.is_empty() {
                "none".into()
            } else {
                v.join(", ")
            }
        )
    };
    let find = |p: &str| matrices.iter().find(|m| m.path == p);
    let raw_path = if paths.iter().any(|p| p == "raw.X") {
        "raw.X"
    } else {
        "raw/X"
    };
    let chosen: &MatrixSummary = match &choice {
        MatrixChoice::X => {
            find("X").ok_or_else(|| h5.msg(format!("no readable `X` ({})", listing())))?
        }
        MatrixChoice::RawX => find(raw_path).ok_or_else(|| {
            h5.msg(format!(
                "the file has no `raw/X` matrix ({}); pick one of those",
                listing()
            ))
        })?,
        MatrixChoice::Layer(l) => find(&format!("layers/{l}")).ok_or_else(|| {
            h5.msg(format!(
                "the file has no layer `{l}` ({}); pick one of those",
                listing()
            ))
        })?,
        MatrixChoice::Auto => {
            let preferred = ["counts", "raw_counts", "umi", "umis", "raw"];
            let mut order: Vec<&MatrixSummary> = matrices
                .iter()
                .filter(|m| !m.path.starts_with("layers/"))
                .collect();
            for p in preferred {
                order.extend(find(&format!("layers/{p}")));
            }
            order.extend(matrices.iter().filter(|m| m.path.starts_with("layers/")));
            match order.iter().find(|m| m.kind == ValueKind::RawCounts) {
                Some(m) => m,
                None => {
                    let first = order
                        .first()
                        .ok_or_else(|| h5.msg(format!("no readable matrix ({})", listing())))?;
                    let kinds: Vec<String> = matrices
                        .iter()
                        .map(|m| format!("{}: {}", m.path, m.kind.describe()))
                        .collect();
                    warnings.push(format!(
                        "{}: no matrix looks like raw counts ({}); using `{}`. GeneCompass \
                         expects raw UMI counts: results on transformed values are unreliable",
                        h5.name,
                        kinds.join("; "),
                        first.path
                    ));
                    first
                }
            }
        }
    };
    if chosen.kind != ValueKind::RawCounts && choice != MatrixChoice::Auto {
        warnings.push(format!(
            "{}: `{}` holds {}; GeneCompass expects raw counts",
            h5.name,
            chosen.path,
            chosen.kind.describe()
        ));
    }
    let path = chosen.path.clone();
    let matrix = open_matrix(&h5, &path)?;
    if matrix.n_cells == 0 || matrix.n_genes == 0 {
        return Err(h5.msg(format!(
            "the matrix `{path}` is empty ({} cells × {} genes); nothing to read",
            matrix.n_cells, matrix.n_genes
        )));
    }
    let var_path = match path.as_str() {
        "raw/X" => "raw/var",
        "raw.X" => "raw.var",
        _ => "var",
    };
    let var = read_frame(&h5, var_path, matrix.n_genes)?;
    let obs = read_frame(&h5, "obs", matrix.n_cells)?;
    warnings.extend(
        var.skipped
            .iter()
            .chain(&obs.skipped)
            .map(|s| format!("{}: {s}", h5.name)),
    );
    let genes = gene_columns(&var);
    warnings.extend(duplicate_name_warnings(&h5.name, "gene", &genes.names));
    let schema = schema_name(&h5)?;
    let storage = match matrix.storage {
        Storage::CellMajor => "CSR",
        Storage::GeneMajor => "CSC (transposed in memory)",
        Storage::Dense => "dense",
    };
    let info = MatrixInfo {
        format: format!("h5ad ({schema}), {path} as {storage}"),
        matrix_path: path,
        n_cells: matrix.n_cells,
        n_genes: matrix.n_genes,
    };
    let cells = CellTable {
        names: obs.index,
        columns: obs
            .columns
            .into_iter()
            .map(|(n, c)| {
                let c = match c {
                    Column::Text(v) => ObsColumn::Text(v),
                    Column::Number(v) => ObsColumn::Number(v),
                };
                (n, c)
            })
            .collect(),
    };
    Ok(H5adSource {
        info,
        genes,
        cells,
        matrix,
        pos: 0,
        matrices,
        warnings,
    })
}

fn has_v2_genome(h5: &H5, groups: &[String]) -> Result<bool, DataError> {
    for g in groups {
        if h5.is_dataset(&format!("{g}/indptr"))? && h5.is_dataset(&format!("{g}/barcodes"))? {
            return Ok(true);
        }
    }
    Ok(false)
}

fn schema_name(h5: &H5) -> Result<&'static str, DataError> {
    Ok(
        if h5.attr_str("", "encoding-type")?.as_deref() == Some("anndata") {
            "anndata ≥0.8 schema"
        } else if h5.is_group("obs")? {
            "anndata 0.7-era schema"
        } else {
            "legacy pre-0.7 schema"
        },
    )
}

fn gene_columns(var: &Frame) -> GeneColumns {
    let pick = |cands: &[&str]| cands.iter().find_map(|c| var.text(c).cloned());
    GeneColumns {
        names: var.index.clone(),
        ids: pick(&[
            "gene_ids",
            "gene_id",
            "ensembl_id",
            "ensembl_ids",
            "feature_id",
            "gene_ids-0",
        ]),
        feature_types: pick(&["feature_types", "feature_type"]),
        genomes: pick(&["genome", "genomes"]),
    }
}

impl CellSource for H5adSource {
    fn info(&self) -> &MatrixInfo {
        &self.info
    }
    fn genes(&self) -> &GeneColumns {
        &self.genes
    }
    fn cells(&self) -> &CellTable {
        &self.cells
    }
    fn next_chunk(&mut self, max_cells: usize) -> Result<Option<CsrChunk>, DataError> {
        if self.pos >= self.matrix.n_cells {
            return Ok(None);
        }
        let c = self.matrix.read(self.pos, max_cells.max(1))?;
        self.pos += c.n_cells();
        Ok(Some(c))
    }
    fn rewind(&mut self) -> Result<(), DataError> {
        self.pos = 0;
        Ok(())
    }
    fn warnings(&self) -> &[String] {
        &self.warnings
    }
    fn recycle(&mut self, chunk: CsrChunk) {
        self.matrix.recycle(chunk);
    }
    fn stored_entries(&self) -> Option<usize> {
        self.matrix.stored_entries()
    }
}
