//! Dense count tables in CSV/TSV (comma or tab, detected; gzip'd or not, by magic bytes). The
//! first column holds row names and the first line column names (R's `write.csv` layout, with
//! one name fewer than columns, is accepted too). Whether rows are cells or genes is decided
//! from which axis' names look like gene symbols / Ensembl ids rather than barcodes, unless the
//! caller says so.
//!
//! Memory: the non-zero values and the names. The text is parsed as it streams from the file
//! (decompressed on the fly), never held whole; the non-zeros are kept because a genes × cells
//! table must be transposed before its first cell is known.

use std::io::{BufRead, Read};

use super::csr::{MemCsr, MemSource, duplicate_name_warnings, format_err};
use super::text::is_gzip;
use super::{CellTable, DataError, GeneColumns, MatrixInfo};

/// Which axis of a table holds cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TableOrientation {
    /// Decide from the row and column names.
    #[default]
    Auto,
    /// Rows are cells, columns are genes (AnnData convention).
    CellsByGenes,
    /// Rows are genes, columns are cells (R / Seurat / 10x convention).
    GenesByCells,
}

/// Opens a count table held in memory.
pub fn open_table_bytes(
    bytes: &[u8],
    name: &str,
    orientation: TableOrientation,
) -> Result<MemSource, DataError> {
    if is_gzip(bytes) {
        parse_table(
            flate2::read::MultiGzDecoder::new(bytes),
            name,
            true,
            orientation,
        )
    } else {
        parse_table(bytes, name, false, orientation)
    }
}

/// A csv error as the user should read it: bad UTF-8 means "not a text file", an I/O error
/// inside a gzip stream means a truncated download.
fn record_err(name: &str, gz: bool, at: &str, e: csv::Error) -> DataError {
    match e.kind() {
        csv::ErrorKind::Utf8 { .. } => format_err(
            name,
            format!(
                "not a text file ({at}: invalid UTF-8); expected a tab- or comma-separated \
                 table, .mtx or .tsv"
            ),
        ),
        csv::ErrorKind::Io(io) if gz => format_err(
            name,
            format!(
                "gzip data is truncated or corrupt ({io}); the download or upload was \
                 probably incomplete: fetch the file again"
            ),
        ),
        _ => format_err(name, format!("{at}: {e}")),
    }
}

/// Parses a table streamed from `input` (already decompressed).
fn parse_table(
    input: impl Read,
    name: &str,
    gz: bool,
    orientation: TableOrientation,
) -> Result<MemSource, DataError> {
    let mut input = std::io::BufReader::with_capacity(1 << 20, input);
    // The delimiter is decided from the first line, which is then parsed with the rest.
    let mut first = Vec::new();
    input
        .read_until(b'\n', &mut first)
        .map_err(|e| record_err(name, gz, "reading the header line", csv::Error::from(e)))?;
    if std::str::from_utf8(&first).is_err() {
        return Err(format_err(
            name,
            "not a text file (invalid UTF-8 in the first line); expected a tab- or \
             comma-separated table, .mtx or .tsv",
        ));
    }
    let delim = if first.contains(&b'\t') { b'\t' } else { b',' };
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delim)
        .has_headers(false)
        .flexible(true)
        .from_reader(std::io::Cursor::new(first).chain(input));
    let mut records = rdr.records();
    let header = match records.next() {
        Some(r) => r.map_err(|e| record_err(name, gz, "the header line", e))?,
        None => {
            return Err(format_err(
                name,
                "the file is empty; expected a count table",
            ));
        }
    };
    let mut row_names = Vec::new();
    let mut triplets = Vec::new();
    let mut width = None;
    for (r, rec) in records.enumerate() {
        let line = r + 2;
        let rec = rec.map_err(|e| record_err(name, gz, &format!("line {line}"), e))?;
        if rec.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let w = *width.get_or_insert(rec.len());
        if rec.len() != w {
            return Err(format_err(
                name,
                format!(
                    "line {line} has {} fields but line 2 has {w}; the table is ragged",
                    rec.len()
                ),
            ));
        }
        row_names.push(rec[0].trim().to_string());
        let row = row_names.len() as u32 - 1;
        for (c, f) in rec.iter().enumerate().skip(1) {
            let f = f.trim();
            let v: f32 = f.parse().map_err(|_| {
                format_err(
                    name,
                    format!(
                        "line {line}, column {}: `{f}` is not a number. A count table has names in \
                     the first row and column and numbers elsewhere; this file does not look \
                     like single-cell count data",
                        c + 1
                    ),
                )
            })?;
            if v != 0.0 {
                triplets.push((row, c as u32 - 1, v));
            }
        }
    }
    let w = width.unwrap_or(header.len());
    let col_names: Vec<String> = if header.len() == w {
        header
            .iter()
            .skip(1)
            .map(|s| s.trim().to_string())
            .collect()
    } else if header.len() + 1 == w {
        header.iter().map(|s| s.trim().to_string()).collect()
    } else {
        return Err(format_err(
            name,
            format!(
                "the header has {} names but rows have {w} fields (name + values)",
                header.len()
            ),
        ));
    };
    if row_names.is_empty() || col_names.is_empty() {
        return Err(format_err(
            name,
            "the table is empty (no data rows or no value columns)",
        ));
    }
    let mut warnings = Vec::new();
    let (row_score, col_score) = (gene_score(&row_names), gene_score(&col_names));
    let (cells_by_genes, how) = match orientation {
        TableOrientation::CellsByGenes => (true, "as requested"),
        TableOrientation::GenesByCells => (false, "as requested"),
        TableOrientation::Auto if col_score > row_score + 0.2 => (true, "detected from names"),
        TableOrientation::Auto if row_score > col_score + 0.2 => (false, "detected from names"),
        TableOrientation::Auto => {
            warnings.push(format!(
                "{name}: cannot tell from the names whether rows are cells or genes; assuming \
                 rows are cells. If rows are genes, say so (`--orientation genes-by-cells` on \
                 the command line)"
            ));
            (true, "assumed")
        }
    };
    let (cells, genes, triplets) = if cells_by_genes {
        (row_names, col_names, triplets)
    } else {
        let t = triplets.into_iter().map(|(r, c, v)| (c, r, v)).collect();
        (col_names, row_names, t)
    };
    warnings.extend(duplicate_name_warnings(name, "gene", &genes));
    let format = format!(
        "{}{} table, {} ({how})",
        if delim == b'\t' { "TSV" } else { "CSV" },
        if gz { " (gzip)" } else { "" },
        if cells_by_genes {
            "cells × genes"
        } else {
            "genes × cells"
        },
    );
    Ok(MemSource {
        info: MatrixInfo {
            format,
            matrix_path: String::new(),
            n_cells: cells.len(),
            n_genes: genes.len(),
        },
        matrix: MemCsr::from_triplets(cells.len(), triplets),
        genes: GeneColumns {
            names: genes,
            ..Default::default()
        },
        cells: CellTable {
            names: cells,
            columns: Vec::new(),
        },
        warnings,
        pos: 0,
    })
}

/// Opens a count table on disk, streaming it (gzip decompressed on the fly).
#[cfg(not(target_arch = "wasm32"))]
pub fn open_table(
    path: &std::path::Path,
    orientation: TableOrientation,
) -> Result<MemSource, DataError> {
    let file = std::fs::File::open(path).map_err(|source| DataError::Io {
        path: path.display().to_string(),
        source,
    })?;
    open_table_reader(file, &path.display().to_string(), orientation)
}

/// Opens a count table streamed from `input` (gzip'd or not): only the table's non-zeros are
/// kept, never the file's text.
pub fn open_table_reader(
    input: impl Read,
    name: &str,
    orientation: TableOrientation,
) -> Result<MemSource, DataError> {
    let mut input = std::io::BufReader::new(input);
    let gz = input
        .fill_buf()
        .map_err(|source| DataError::Io {
            path: name.to_string(),
            source,
        })?
        .starts_with(&super::text::GZIP_MAGIC);
    if gz {
        parse_table(
            flate2::read::MultiGzDecoder::new(input),
            name,
            true,
            orientation,
        )
    } else {
        parse_table(input, name, false, orientation)
    }
}

/// Whether a name looks like a cell barcode / cell id rather than a gene.
fn looks_like_cell(s: &str) -> bool {
    let mut run = 0;
    let mut best = 0;
    for ch in s.chars() {
        run = if "ACGTN".contains(ch) { run + 1 } else { 0 };
        best = best.max(run);
    }
    let lower = s.to_ascii_lowercase();
    best >= 8
        || lower.contains("cell")
        || lower.starts_with("sample")
        || s.chars().all(|c| c.is_ascii_digit())
}

/// Whether a name looks like a gene symbol or Ensembl id.
fn looks_like_gene(s: &str) -> bool {
    if looks_like_cell(s) || s.is_empty() || s.len() > 24 {
        return false;
    }
    let ensembl = s.starts_with("ENS")
        && s.contains('G')
        && s.chars()
            .rev()
            .take(6)
            .all(|c| c.is_ascii_digit() || c == '.');
    let symbol = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._@()".contains(c));
    ensembl || symbol
}

/// Fraction of names that look like genes minus the fraction that look like cells.
fn gene_score(names: &[String]) -> f64 {
    let n = names.len().max(1) as f64;
    let g = names.iter().filter(|s| looks_like_gene(s)).count() as f64;
    let c = names.iter().filter(|s| looks_like_cell(s)).count() as f64;
    (g - c) / n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_heuristics() {
        for g in [
            "CD3E",
            "ENSG00000141510",
            "ENSMUSG00000025900.3",
            "Rp1",
            "HLA-DRA",
            "MT-CO1",
            "0610007P14Rik",
        ] {
            assert!(looks_like_gene(g), "{g}");
        }
        for c in [
            "AAACCTGAGATAGGAG-1",
            "mouse1_lib1.final_cell_0001",
            "Cell_12",
            "123",
        ] {
            assert!(looks_like_cell(c) && !looks_like_gene(c), "{c}");
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn streamed_gzip_file_equals_the_bytes_path_and_truncation_is_named() {
        use std::io::Write;
        let mut text = String::from("cell,CD3E,MS4A1,GAPDH\n");
        for c in 0..3000 {
            text.push_str(&format!("cell_{c},{},{},{}\n", c % 3, (c * 7) % 5, c % 11));
        }
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(text.as_bytes()).unwrap();
        let gz = enc.finish().unwrap();
        let dir = std::env::temp_dir().join(format!("gc-table-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.csv.gz");
        std::fs::write(&path, &gz).unwrap();
        let a = open_table(&path, TableOrientation::Auto).unwrap();
        let b = open_table_bytes(&gz, "t.csv.gz", TableOrientation::Auto).unwrap();
        assert_eq!(a.info.n_cells, 3000);
        assert_eq!(
            (&a.matrix.indices, &a.matrix.data),
            (&b.matrix.indices, &b.matrix.data)
        );
        assert_eq!(a.cells.names, b.cells.names);
        assert!(a.info.format.contains("(gzip)"), "{}", a.info.format);
        std::fs::write(&path, &gz[..gz.len() / 2]).unwrap();
        let Err(err) = open_table(&path, TableOrientation::Auto) else {
            panic!("a truncated gzip table opened");
        };
        let err = err.to_string();
        assert!(err.contains("truncated"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn r_style_header_and_quotes() {
        let t = b"\"AAACCTGAGATAGGAG-1\",\"AAACCTGAGCGTTGCC-1\"\n\"CD3E\",1,0\n\"MS4A1\",0,2\n";
        let s = open_table_bytes(t, "t.csv", TableOrientation::Auto).unwrap();
        assert_eq!(s.info.n_cells, 2);
        assert_eq!(s.genes.names, ["CD3E", "MS4A1"]);
        assert_eq!(s.matrix.indices, vec![0, 1]);
        assert!(s.info.format.contains("genes × cells"), "{}", s.info.format);
    }
}
