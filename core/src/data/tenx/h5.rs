//! Cell Ranger `.h5`: v3 (`matrix/` with `features/`) and v2 (one group per genome). Both are
//! CSC genes × cells, i.e. one compressed row per cell, so cells stream with bounded memory.

use super::{ColumnFilter, GenomeChoice, gene_expression_mask};
use crate::data::csr::{check_chunk, duplicate_name_warnings};
use crate::data::h5matrix::{H5Matrix, Storage};
use crate::data::h5util::H5;
use crate::data::{CellSource, CellTable, CsrChunk, DataError, GeneColumns, MatrixInfo};

/// An opened 10x `.h5`, delivering cells × genes chunks.
pub struct TenxH5Source {
    info: MatrixInfo,
    genes: GeneColumns,
    cells: CellTable,
    /// One matrix per genome read, with the number of file columns before it.
    parts: Vec<(H5Matrix, u32)>,
    filter: ColumnFilter,
    genomes: Vec<String>,
    warnings: Vec<String>,
    pos: usize,
}

impl TenxH5Source {
    /// Genomes present in the file (v2: groups; v3: distinct `features/genome` values).
    pub fn genomes(&self) -> &[String] {
        &self.genomes
    }
}

/// Opens a 10x `.h5` held in memory.
pub fn open_tenx_h5_bytes(
    bytes: Vec<u8>,
    name: &str,
    genome: GenomeChoice,
) -> Result<TenxH5Source, DataError> {
    open(H5::from_bytes(bytes, name)?, genome)
}

/// Opens a 10x `.h5` on disk with streaming reads.
#[cfg(not(target_arch = "wasm32"))]
pub fn open_tenx_h5(
    path: &std::path::Path,
    genome: GenomeChoice,
) -> Result<TenxH5Source, DataError> {
    open(H5::open_path(path)?, genome)
}

/// Reads `[genes, cells]` from a `shape` dataset.
fn shape(h5: &H5, path: &str) -> Result<(usize, usize), DataError> {
    let s = h5.i64s(path)?;
    match s[..] {
        [g, c] if g >= 0 && c >= 0 => Ok((g as usize, c as usize)),
        _ => Err(h5.msg(format!("`{path}` is {s:?}, expected [genes, cells]"))),
    }
}

fn check_len(h5: &H5, field: &str, got: usize, want: usize, what: &str) -> Result<(), DataError> {
    if got != want {
        return Err(h5.msg(format!(
            "`{field}` has {got} entries but the matrix has {want} {what}; the matrix and its \
             {what} list do not match (re-export the file from Cell Ranger)"
        )));
    }
    Ok(())
}

pub(crate) fn open(h5: H5, choice: GenomeChoice) -> Result<TenxH5Source, DataError> {
    let (groups, _) = h5.children("")?.unwrap_or_default();
    if groups.iter().any(|g| g == "matrix") && h5.is_group("matrix/features")? {
        return open_v3(h5, choice);
    }
    let mut genomes = Vec::new();
    for g in &groups {
        if h5.is_dataset(&format!("{g}/indptr"))? && h5.is_dataset(&format!("{g}/barcodes"))? {
            genomes.push(g.clone());
        }
    }
    if genomes.is_empty() {
        return Err(h5.msg(format!(
            "not a 10x Cell Ranger .h5: no `matrix/` group (v3) and no genome group with \
             `indptr` and `barcodes` (v2); top-level groups: {groups:?}"
        )));
    }
    open_v2(h5, genomes, choice)
}

fn open_v3(h5: H5, choice: GenomeChoice) -> Result<TenxH5Source, DataError> {
    let (n_genes, n_cells) = shape(&h5, "matrix/shape")?;
    let barcodes = h5.strings("matrix/barcodes")?;
    check_len(&h5, "matrix/barcodes", barcodes.len(), n_cells, "cells")?;
    let f = |n: &str| format!("matrix/features/{n}");
    let ids = h5.strings(&f("id"))?;
    let names = if h5.is_dataset(&f("name"))? {
        h5.strings(&f("name"))?
    } else {
        ids.clone()
    };
    let opt = |n: &str| -> Result<Option<Vec<String>>, DataError> {
        Ok(if h5.is_dataset(&f(n))? {
            Some(h5.strings(&f(n))?)
        } else {
            None
        })
    };
    let mut genes = GeneColumns {
        names,
        ids: Some(ids),
        feature_types: opt("feature_type")?,
        genomes: opt("genome")?,
    };
    check_len(&h5, &f("name"), genes.names.len(), n_genes, "features")?;
    for (what, v) in [
        ("feature_type", &genes.feature_types),
        ("genome", &genes.genomes),
        ("id", &genes.ids),
    ] {
        if let Some(v) = v {
            check_len(&h5, &f(what), v.len(), n_genes, "features")?;
        }
    }
    let mut genomes: Vec<String> = Vec::new();
    for g in genes.genomes.iter().flatten() {
        if !genomes.contains(g) {
            genomes.push(g.clone());
        }
    }
    let (mut keep, mut warnings) = gene_expression_mask(&h5.name, &genes);
    if let GenomeChoice::One(want) = &choice {
        if !genomes.contains(want) {
            return Err(h5.msg(format!(
                "no genome `{want}` in the file; genomes: {genomes:?}"
            )));
        }
        for (k, g) in keep.iter_mut().zip(genes.genomes.iter().flatten()) {
            *k &= g == want;
        }
    } else if genomes.len() > 1 {
        warnings.push(format!(
            "{}: genes of {} genomes {genomes:?} read side by side",
            h5.name,
            genomes.len()
        ));
    }
    if !keep.iter().any(|&k| k) {
        return Err(h5.msg(format!(
            "no \"Gene Expression\" features among {n_genes}; this is not gene-expression data"
        )));
    }
    let filter = ColumnFilter::new(&mut genes, &keep);
    let m = H5Matrix::sparse(&h5, "matrix", Storage::CellMajor, n_cells, n_genes)?;
    finish(
        h5,
        "10x Cell Ranger v3 .h5",
        "matrix",
        vec![(m, 0)],
        genes,
        barcodes,
        filter,
        genomes,
        warnings,
    )
}

fn open_v2(h5: H5, genomes: Vec<String>, choice: GenomeChoice) -> Result<TenxH5Source, DataError> {
    let chosen: Vec<String> = match &choice {
        GenomeChoice::One(g) if genomes.contains(g) => vec![g.clone()],
        GenomeChoice::One(g) => {
            return Err(h5.msg(format!("no genome `{g}` in the file; genomes: {genomes:?}")));
        }
        _ => genomes.clone(),
    };
    let mut warnings = Vec::new();
    if chosen.len() > 1 && choice == GenomeChoice::Auto {
        warnings.push(format!(
            "{}: {} genomes {genomes:?}; their genes are read side by side (read one with \
             `--genome NAME` on the command line)",
            h5.name,
            genomes.len()
        ));
    }
    let mut genes = GeneColumns {
        names: vec![],
        ids: Some(vec![]),
        feature_types: None,
        genomes: Some(vec![]),
    };
    let mut parts = Vec::new();
    let mut barcodes: Option<Vec<String>> = None;
    let mut offset = 0u32;
    for g in &chosen {
        let (n_genes, n_cells) = shape(&h5, &format!("{g}/shape"))?;
        let bc = h5.strings(&format!("{g}/barcodes"))?;
        check_len(&h5, &format!("{g}/barcodes"), bc.len(), n_cells, "cells")?;
        let ids = h5.strings(&format!("{g}/genes"))?;
        let names = if h5.is_dataset(&format!("{g}/gene_names"))? {
            h5.strings(&format!("{g}/gene_names"))?
        } else {
            ids.clone()
        };
        check_len(&h5, &format!("{g}/genes"), ids.len(), n_genes, "genes")?;
        check_len(
            &h5,
            &format!("{g}/gene_names"),
            names.len(),
            n_genes,
            "genes",
        )?;
        match &barcodes {
            Some(b) if *b != bc => {
                return Err(h5.msg(format!(
                    "genomes {chosen:?} have different barcodes, so they cannot be read side by \
                     side; read one genome (`--genome NAME` on the command line)"
                )));
            }
            _ => barcodes = Some(bc),
        }
        genes.names.extend(names);
        genes.ids.as_mut().expect("set above").extend(ids);
        genes
            .genomes
            .as_mut()
            .expect("set above")
            .extend(std::iter::repeat_n(g.clone(), n_genes));
        parts.push((
            H5Matrix::sparse(&h5, g, Storage::CellMajor, n_cells, n_genes)?,
            offset,
        ));
        offset += n_genes as u32;
    }
    let keep = vec![true; genes.names.len()];
    let filter = ColumnFilter::new(&mut genes, &keep);
    let field = chosen.join("+");
    let barcodes = barcodes.expect("at least one genome");
    finish(
        h5,
        "10x Cell Ranger v2 .h5",
        &field,
        parts,
        genes,
        barcodes,
        filter,
        genomes,
        warnings,
    )
}

#[allow(clippy::too_many_arguments)]
fn finish(
    h5: H5,
    format: &str,
    field: &str,
    parts: Vec<(H5Matrix, u32)>,
    genes: GeneColumns,
    barcodes: Vec<String>,
    filter: ColumnFilter,
    genomes: Vec<String>,
    mut warnings: Vec<String>,
) -> Result<TenxH5Source, DataError> {
    let n_cells = barcodes.len();
    if n_cells == 0 || genes.names.is_empty() {
        return Err(h5.msg(format!(
            "the matrix is empty ({n_cells} cells × {} genes); nothing to read",
            genes.names.len()
        )));
    }
    warnings.extend(duplicate_name_warnings(&h5.name, "gene", &genes.names));
    Ok(TenxH5Source {
        info: MatrixInfo {
            format: format!("{format} (genes × cells CSC, read as cells × genes)"),
            matrix_path: field.to_string(),
            n_cells,
            n_genes: genes.names.len(),
        },
        genes,
        cells: CellTable {
            names: barcodes,
            columns: Vec::new(),
        },
        parts,
        filter,
        genomes,
        warnings,
        pos: 0,
    })
}

impl CellSource for TenxH5Source {
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
        if self.pos >= self.info.n_cells {
            return Ok(None);
        }
        let count = max_cells.max(1).min(self.info.n_cells - self.pos);
        let mut chunk = if self.parts.len() == 1 {
            self.parts[0].0.read(self.pos, count)?
        } else {
            let reads: Vec<(CsrChunk, u32)> = self
                .parts
                .iter_mut()
                .map(|(m, off)| Ok((m.read(self.pos, count)?, *off)))
                .collect::<Result<_, DataError>>()?;
            let mut c = CsrChunk {
                first_cell: self.pos,
                indptr: vec![0],
                ..Default::default()
            };
            for i in 0..count {
                for (r, off) in &reads {
                    let (idx, val) = r.cell(i);
                    c.indices.extend(idx.iter().map(|g| g + off));
                    c.data.extend_from_slice(val);
                }
                c.indptr.push(c.indices.len());
            }
            c
        };
        chunk = self.filter.apply(chunk);
        check_chunk(
            &self.info.format,
            &self.info.matrix_path,
            &chunk,
            self.info.n_genes,
        )?;
        self.pos += chunk.n_cells();
        Ok(Some(chunk))
    }
    fn rewind(&mut self) -> Result<(), DataError> {
        self.pos = 0;
        Ok(())
    }
    fn stored_entries(&self) -> Option<usize> {
        // Before the feature filter: a bound on what the chunks hold.
        self.parts.iter().map(|(m, _)| m.stored_entries()).sum()
    }
    fn warnings(&self) -> &[String] {
        &self.warnings
    }
}
