//! Format detection: one entry point for a path (CLI) and one for uploaded bytes (browser).
//! Detection uses content (magic bytes, HDF5 layout), never the file name alone, so a renamed
//! file still opens and a wrong file gets a message saying what it is.

use super::csr::format_err;
use super::h5util::H5;
use super::source::{ByteSource, SourceReader};
use super::table::{TableOrientation, open_table_bytes};
use super::tenx::GenomeChoice;
use super::text::{is_gzip, maybe_gunzip};
use super::{CellSource, DataError, MatrixChoice, h5ad, tenx};
use std::io::Read;
use std::sync::Arc;

/// Choices that only some formats use; the defaults pick automatically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// h5ad: which matrix.
    pub matrix: MatrixChoice,
    /// 10x `.h5`: which genome(s).
    pub genome: GenomeChoice,
    /// CSV/TSV: which axis holds cells.
    pub orientation: TableOrientation,
}

/// Opens any supported file or 10x folder, detecting the format from its contents.
#[cfg(not(target_arch = "wasm32"))]
pub fn open_path(
    path: &std::path::Path,
    choice: MatrixChoice,
) -> Result<Box<dyn CellSource>, DataError> {
    open_path_with(
        path,
        &OpenOptions {
            matrix: choice,
            ..Default::default()
        },
    )
}

/// [`open_path`] with all format-specific choices.
#[cfg(not(target_arch = "wasm32"))]
pub fn open_path_with(
    path: &std::path::Path,
    opts: &OpenOptions,
) -> Result<Box<dyn CellSource>, DataError> {
    let name = path.display().to_string();
    let io = |source| DataError::Io {
        path: name.clone(),
        source,
    };
    if path.is_dir() {
        let has = |f: &str| path.join(f).is_file() || path.join(format!("{f}.gz")).is_file();
        if has("matrix.mtx") {
            return Ok(Box::new(tenx::open_tenx_dir(path)?));
        }
        let mut entries: Vec<String> = std::fs::read_dir(path)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        entries.sort();
        return Err(format_err(
            &name,
            format!(
                "folder without matrix.mtx(.gz); a 10x matrix folder holds matrix.mtx, \
                 features.tsv (or genes.tsv) and barcodes.tsv. Contents: {entries:?}"
            ),
        ));
    }
    {
        let f = std::fs::File::open(path).map_err(io)?;
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        f.take(SNIFF_BYTES as u64)
            .read_to_end(&mut head)
            .map_err(io)?;
        if head.len() >= 8 && hdf5_pure::is_hdf5_bytes(&head[..8]) {
            return open_h5(H5::open_path(path)?, opts);
        }
        // Refuse what cannot be a table before reading the whole file into memory.
        if let Some(what) = known_other(&head) {
            return Err(format_err(&name, what));
        }
        // A table (not a Matrix Market file) is parsed as it streams from the disk.
        let text_head = if is_gzip(&head) {
            gunzipped_head(&head)
        } else {
            head.clone()
        };
        if let Some(what) = known_other(&text_head).filter(|_| is_gzip(&head)) {
            return Err(format_err(&name, what));
        }
        if !head.is_empty()
            && !text_head.is_empty()
            && !text_head
                .get(..14)
                .is_some_and(|h| h.eq_ignore_ascii_case(b"%%MatrixMarket"))
        {
            return Ok(Box::new(super::table::open_table(path, opts.orientation)?));
        }
    }
    let bytes = std::fs::read(path).map_err(io)?;
    if is_mtx(&bytes, &name)?
        && let Some(dir) = path.parent()
        && ["features.tsv", "genes.tsv"]
            .iter()
            .any(|f| dir.join(f).is_file() || dir.join(format!("{f}.gz")).is_file())
    {
        return Ok(Box::new(tenx::open_tenx_dir(dir)?));
    }
    open_bytes_with(&name, bytes, opts)
}

/// Opens uploaded bytes with automatic choices (see [`open_bytes_with`]).
pub fn open_bytes(name: &str, bytes: Vec<u8>) -> Result<Box<dyn CellSource>, DataError> {
    open_bytes_with(name, bytes, &OpenOptions::default())
}

/// Opens one uploaded file: h5ad, 10x `.h5`, or a CSV/TSV count table (gzip'd or not).
/// A 10x matrix folder needs its three files: use [`tenx::open_tenx_mtx_bytes`].
pub fn open_bytes_with(
    name: &str,
    bytes: Vec<u8>,
    opts: &OpenOptions,
) -> Result<Box<dyn CellSource>, DataError> {
    if hdf5_pure::is_hdf5_bytes(&bytes) {
        return open_h5(H5::from_bytes(bytes, name)?, opts);
    }
    if bytes.is_empty() {
        return Err(format_err(name, "the file is empty"));
    }
    if let Some(what) = known_other(&bytes) {
        return Err(format_err(name, what));
    }
    if is_mtx(&bytes, name)? {
        return Err(format_err(name, LONE_MTX));
    }
    if is_gzip(&bytes) {
        let inner = maybe_gunzip(&bytes, name)?;
        if let Some(what) = known_other(&inner) {
            return Err(format_err(name, what));
        }
    }
    Ok(Box::new(open_table_bytes(&bytes, name, opts.orientation)?))
}

/// Opens a file read on demand from `source` with automatic choices (see
/// [`open_source_with`]).
pub fn open_source(
    name: &str,
    source: Arc<dyn ByteSource>,
) -> Result<Box<dyn CellSource>, DataError> {
    open_source_with(name, source, &OpenOptions::default())
}

/// Opens one file read on demand (the browser's `File`): HDF5 (h5ad, 10x `.h5`) is parsed in
/// place and a CSV/TSV table streams, so memory does not grow with the file as with
/// [`open_bytes_with`]. Detection and messages are those of [`open_bytes_with`].
pub fn open_source_with(
    name: &str,
    source: Arc<dyn ByteSource>,
    opts: &OpenOptions,
) -> Result<Box<dyn CellSource>, DataError> {
    let head = super::source::head(source.as_ref(), SNIFF_BYTES).map_err(|e| DataError::Io {
        path: name.to_string(),
        source: e,
    })?;
    if head.len() >= 8 && hdf5_pure::is_hdf5_bytes(&head[..8]) {
        return open_h5(H5::from_source(source, name)?, opts);
    }
    if head.is_empty() {
        return Err(format_err(name, "the file is empty"));
    }
    if let Some(what) = known_other(&head) {
        return Err(format_err(name, what));
    }
    let text_head = if is_gzip(&head) {
        let out = gunzipped_head(&head);
        if let Some(what) = known_other(&out) {
            return Err(format_err(name, what));
        }
        out
    } else {
        head
    };
    if text_head
        .get(..14)
        .is_some_and(|h| h.eq_ignore_ascii_case(b"%%MatrixMarket"))
    {
        return Err(format_err(name, LONE_MTX));
    }
    Ok(Box::new(super::table::open_table_reader(
        SourceReader::new(source),
        name,
        opts.orientation,
    )?))
}

const LONE_MTX: &str = "a lone Matrix Market matrix: its features.tsv (or genes.tsv) and \
                        barcodes.tsv are needed too. Open the folder, or give all three files";

/// Routes an HDF5 file to the h5ad or the 10x reader by its layout.
fn open_h5(h5: H5, opts: &OpenOptions) -> Result<Box<dyn CellSource>, DataError> {
    let (groups, datasets) = h5.children("")?.unwrap_or_default();
    let has = |n: &str| groups.iter().chain(&datasets).any(|x| x == n);
    if has("X") || groups.iter().any(|g| g == "layers") {
        return Ok(Box::new(h5ad::open_h5(h5, opts.matrix.clone())?));
    }
    if datasets.iter().any(|d| d == "matrix") && groups.iter().any(|g| g == "row_attrs") {
        return Err(h5.msg(
            "a loom file, which is not supported; convert it to h5ad (e.g. \
             scanpy.read_loom(...).write_h5ad(...))",
        ));
    }
    let mut v2 = false;
    for g in &groups {
        v2 |= h5.is_dataset(&format!("{g}/indptr"))? && h5.is_dataset(&format!("{g}/barcodes"))?;
    }
    if v2 || groups.iter().any(|g| g == "matrix") {
        return Ok(Box::new(tenx::open_h5(h5, opts.genome.clone())?));
    }
    let mut all: Vec<&String> = groups.iter().chain(&datasets).collect();
    all.sort();
    Err(h5.msg(format!(
        "an HDF5 file that is neither h5ad (no `X`) nor 10x Cell Ranger (no `matrix/` or genome \
         groups); top-level objects: {all:?}. It does not look like single-cell data"
    )))
}

/// Whether the (possibly gzip'd) bytes are a Matrix Market file.
fn is_mtx(bytes: &[u8], name: &str) -> Result<bool, DataError> {
    let head = if is_gzip(bytes) {
        let mut buf = [0u8; 14];
        let mut d = flate2::read::GzDecoder::new(bytes);
        match d.read_exact(&mut buf) {
            Ok(()) => buf.to_vec(),
            Err(_) => return maybe_gunzip(bytes, name).map(|_| false),
        }
    } else {
        bytes.iter().take(14).copied().collect()
    };
    Ok(head.eq_ignore_ascii_case(b"%%MatrixMarket"))
}

/// Names file types that are recognisably not supported, with what to do instead.
fn known_other(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"PK\x03\x04") {
        Some(
            "a zip archive (a zipped folder or .zarr store?): unzip it and open the 10x folder, \
             or convert zarr to h5ad",
        )
    } else if bytes.starts_with(b"PAR1") {
        Some("a Parquet file, which is not a supported single-cell format; export h5ad or CSV")
    } else if bytes.starts_with(b"RDX") || bytes.starts_with(b"X\n") || bytes.starts_with(b"RDA") {
        Some(
            "an R data file (.rds/.RData); export it as h5ad (e.g. SeuratDisk or zellkonverter) \
             or as a 10x matrix folder",
        )
    } else if bytes.starts_with(b"\x93NUMPY") {
        Some("a NumPy array without gene or cell names; export h5ad instead")
    } else if !is_gzip(bytes) && bytes[..bytes.len().min(SNIFF_BYTES)].contains(&0) {
        // Text tables never hold NUL bytes: refuse a binary file before reading all of it.
        Some(
            "not a text file (it holds NUL bytes), nor HDF5 (h5ad, 10x .h5), nor gzip; give an \
             h5ad, a 10x .h5 or matrix folder, or a CSV/TSV table",
        )
    } else {
        None
    }
}

/// As much of the decompressed text as the first bytes of a gzip file hold (up to
/// [`SNIFF_BYTES`]); a stream cut off by the sniff window simply ends early.
fn gunzipped_head(head: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut d = flate2::read::MultiGzDecoder::new(head).take(SNIFF_BYTES as u64);
    let mut buf = [0u8; 4096];
    while let Ok(n) = d.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// How much of a file is looked at before deciding how to read it.
const SNIFF_BYTES: usize = 64 * 1024;
