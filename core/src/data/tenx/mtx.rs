//! Cell Ranger matrix folder: `matrix.mtx` (Matrix Market coordinate, genes × cells, 1-based),
//! `genes.tsv` (v2) or `features.tsv` (v3) and `barcodes.tsv`, each optionally gzip'd.
//!
//! Memory: text cannot be sliced by cell, so the matrix is parsed once into an in-memory CSR
//! (about 12 bytes per non-zero while parsing, 8 afterwards) plus the decompressed text.

use super::{ColumnFilter, gene_expression_mask, tsv_fields};
use crate::data::csr::{MemCsr, MemSource, duplicate_name_warnings, format_err};
use crate::data::text::{as_text, lines, maybe_gunzip};
use crate::data::{CellTable, DataError, GeneColumns, MatrixInfo};

/// Builds a source from the three files' bytes (browser upload of a matrix folder). Each may be
/// gzip'd; `features` may be a v2 `genes.tsv` (id, name) or v3 `features.tsv` (id, name, type).
pub fn open_tenx_mtx_bytes(
    matrix: &[u8],
    features: &[u8],
    barcodes: &[u8],
    name: &str,
) -> Result<MemSource, DataError> {
    let mname = format!("{name}/matrix.mtx");
    let fname = format!("{name}/features.tsv");
    let bname = format!("{name}/barcodes.tsv");
    let fbytes = maybe_gunzip(features, &fname)?;
    let mut genes = parse_features(as_text(&fbytes, &fname)?, &fname)?;
    let bbytes = maybe_gunzip(barcodes, &bname)?;
    let cells: Vec<String> = lines(as_text(&bbytes, &bname)?)
        .map(|l| tsv_fields(l)[0].to_string())
        .collect();
    let mbytes = maybe_gunzip(matrix, &mname)?;
    let v3 = genes.feature_types.is_some();
    let (mut warnings, filter) = {
        let (keep, w) = gene_expression_mask(name, &genes);
        if !keep.iter().any(|&k| k) {
            return Err(format_err(
                &fname,
                "no \"Gene Expression\" features; this is not gene-expression data",
            ));
        }
        (w, keep)
    };
    let n_file_genes = genes.names.len();
    let filter = ColumnFilter::new(&mut genes, &filter);
    let matrix = parse_mtx(
        as_text(&mbytes, &mname)?,
        &mname,
        n_file_genes,
        cells.len(),
        &filter,
    )?;
    warnings.extend(duplicate_name_warnings(name, "gene", &genes.names));
    Ok(MemSource {
        info: MatrixInfo {
            format: format!(
                "10x Cell Ranger {} matrix folder (Matrix Market genes × cells, read as cells × genes)",
                if v3 { "v3" } else { "v2" }
            ),
            matrix_path: "matrix.mtx".into(),
            n_cells: cells.len(),
            n_genes: genes.names.len(),
        },
        genes,
        cells: CellTable {
            names: cells,
            columns: Vec::new(),
        },
        matrix,
        warnings,
        pos: 0,
    })
}

/// Opens a Cell Ranger matrix folder (v2 or v3 file names, gzip'd or not).
#[cfg(not(target_arch = "wasm32"))]
pub fn open_tenx_dir(dir: &std::path::Path) -> Result<MemSource, DataError> {
    let find = |stems: &[&str]| -> Result<Vec<u8>, DataError> {
        for s in stems {
            for ext in ["", ".gz"] {
                let p = dir.join(format!("{s}{ext}"));
                if p.is_file() {
                    return std::fs::read(&p).map_err(|source| DataError::Io {
                        path: p.display().to_string(),
                        source,
                    });
                }
            }
        }
        Err(format_err(
            &dir.display().to_string(),
            format!(
                "not a 10x matrix folder: missing {} (need matrix.mtx, features.tsv or \
                 genes.tsv, barcodes.tsv, optionally .gz)",
                stems.join(" / ")
            ),
        ))
    };
    let matrix = find(&["matrix.mtx"])?;
    let features = find(&["features.tsv", "genes.tsv"])?;
    let barcodes = find(&["barcodes.tsv"])?;
    open_tenx_mtx_bytes(&matrix, &features, &barcodes, &dir.display().to_string())
}

fn parse_features(text: &str, name: &str) -> Result<GeneColumns, DataError> {
    let mut ids = Vec::new();
    let mut names = Vec::new();
    let mut types = Vec::new();
    let mut ncols = None;
    for (i, l) in lines(text).enumerate() {
        let f = tsv_fields(l);
        if *ncols.get_or_insert(f.len()) != f.len() {
            return Err(format_err(
                name,
                format!(
                    "line {} has {} columns, line 1 has {}",
                    i + 1,
                    f.len(),
                    ncols.unwrap_or(0)
                ),
            ));
        }
        ids.push(f[0].to_string());
        names.push(f.get(1).unwrap_or(&f[0]).to_string());
        if let Some(t) = f.get(2) {
            types.push(t.to_string());
        }
    }
    let two = ncols.unwrap_or(0) >= 2;
    Ok(GeneColumns {
        names,
        ids: two.then_some(ids),
        feature_types: (ncols.unwrap_or(0) >= 3).then_some(types),
        genomes: None,
    })
}

/// Parses a Matrix Market coordinate matrix of `n_genes` × `n_cells` into cells × genes CSR.
fn parse_mtx(
    text: &str,
    name: &str,
    n_genes: usize,
    n_cells: usize,
    filter: &ColumnFilter,
) -> Result<MemCsr, DataError> {
    let mut it = lines(text);
    let header = it.next().unwrap_or("");
    let h: Vec<String> = header.split_whitespace().map(str::to_lowercase).collect();
    if h.first().map(String::as_str) != Some("%%matrixmarket")
        || h.get(1).map(String::as_str) != Some("matrix")
    {
        return Err(format_err(
            name,
            "not a Matrix Market file (first line must be `%%MatrixMarket matrix coordinate …`)",
        ));
    }
    if h.get(2).map(String::as_str) != Some("coordinate") {
        return Err(format_err(
            name,
            "only coordinate (sparse) Matrix Market files are supported",
        ));
    }
    let pattern = h.get(3).map(String::as_str) == Some("pattern");
    let symmetric = h.get(4).is_some_and(|s| s != "general");
    if symmetric {
        return Err(format_err(
            name,
            "symmetric Matrix Market files are not count matrices",
        ));
    }
    let mut it = it.filter(|l| !l.starts_with('%'));
    let size: Vec<usize> = it
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(|x| {
            x.parse()
                .map_err(|_| format_err(name, format!("bad size line value `{x}`")))
        })
        .collect::<Result<_, _>>()?;
    let [rows, cols, nnz] = size[..] else {
        return Err(format_err(name, "missing `rows cols entries` size line"));
    };
    if rows != n_genes || cols != n_cells {
        return Err(format_err(
            name,
            format!(
                "matrix is {rows} × {cols} (genes × cells) but there are {n_genes} features and \
             {n_cells} barcodes; the three files do not belong together"
            ),
        ));
    }
    if rows == 0 || cols == 0 {
        return Err(format_err(
            name,
            "the matrix is empty (0 genes or 0 cells); nothing to read",
        ));
    }
    let mut triplets = Vec::with_capacity(nnz);
    let mut seen = 0usize;
    for (k, l) in it.enumerate() {
        let mut f = l.split_whitespace();
        let mut num = |what: &str| -> Result<&str, DataError> {
            f.next()
                .ok_or_else(|| format_err(name, format!("entry {} lacks its {what}", k + 1)))
        };
        let bad = |x: &str| {
            format_err(
                name,
                format!("entry {}: `{x}` is not a valid number", k + 1),
            )
        };
        let (gs, cs) = (num("row")?, num("column")?);
        let g: usize = gs.parse().map_err(|_| bad(gs))?;
        let c: usize = cs.parse().map_err(|_| bad(cs))?;
        let v: f32 = if pattern {
            1.0
        } else {
            let s = num("value")?;
            s.parse().map_err(|_| bad(s))?
        };
        if g == 0 || c == 0 || g > rows || c > cols {
            return Err(format_err(
                name,
                format!(
                    "entry {}: ({g}, {c}) is outside the {rows} × {cols} matrix (indices are 1-based)",
                    k + 1
                ),
            ));
        }
        seen += 1;
        if let Some(g) = filter.map(g as u32 - 1) {
            triplets.push(((c - 1) as u32, g, v));
        }
    }
    if seen != nnz {
        return Err(format_err(
            name,
            format!(
                "the size line promises {nnz} entries but {seen} were found; the file is truncated"
            ),
        ));
    }
    Ok(MemCsr::from_triplets(n_cells, triplets))
}
