//! Reading cells × genes windows out of an HDF5 matrix: compressed cell-major (h5ad CSR, 10x
//! CSC genes × cells), compressed gene-major (h5ad CSC) and dense.
//!
//! Memory: cell-major and dense matrices are read with `hdf5-pure` row-window reads
//! (`read_*_rows`), so a chunk costs only its own entries plus the HDF5 chunks it touches.
//! Gene-major (CSC) storage cannot deliver a cell without scanning every gene, so it is
//! transposed once, on first use, into an in-memory CSR: about `8 × nnz + 8 × n_cells` bytes
//! (the file itself is read in bounded windows). Files too large for that should be re-saved
//! as CSR (`adata.X = adata.X.tocsr()`).

use hdf5_pure::Dataset;

use super::csr::{MemCsr, check_chunk, check_chunk_lengths, format_err};
use super::h5direct::{DirectDataset, Elem};
use super::h5util::H5;
use super::{CsrChunk, DataError};

/// How a matrix is laid out in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Compressed, one row per cell (h5ad CSR; 10x `.h5` CSC of genes × cells).
    CellMajor,
    /// Compressed, one row per gene (h5ad CSC): transposed in memory on first read.
    GeneMajor,
    /// A dense 2-D array, cells × genes.
    Dense,
}

/// Entries per window when scanning a gene-major matrix.
const WINDOW: usize = 1 << 20;

/// One of a sparse matrix's entry arrays (`data`, `indices`), with where its elements lie in
/// the file when it is plain enough to be read straight into a buffer.
struct EntryArray {
    ds: Dataset,
    direct: Option<DirectDataset>,
}

impl EntryArray {
    fn new(h5: &H5, ds: Dataset) -> Self {
        let direct = h5.source.as_ref().and_then(|_| DirectDataset::new(&ds));
        Self { ds, direct }
    }
}

// One value per open matrix: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
enum Kind {
    Compressed {
        data: EntryArray,
        indices: EntryArray,
        indptr: Dataset,
        nnz: usize,
        transposed: Option<MemCsr>,
    },
    Dense(Dataset),
}

/// One matrix of an HDF5 file, readable a window of cells at a time.
pub(crate) struct H5Matrix {
    h5: H5,
    /// Path in the file, for messages and [`super::MatrixInfo::matrix_path`].
    pub field: String,
    pub n_cells: usize,
    pub n_genes: usize,
    pub storage: Storage,
    kind: Kind,
    /// Buffers of chunks handed back ([`H5Matrix::recycle`]), filled again by the next reads.
    spare: Vec<(Vec<u32>, Vec<f32>)>,
}

impl H5Matrix {
    /// A compressed matrix in group `group` with datasets `data`, `indices`, `indptr`.
    pub fn sparse(
        h5: &H5,
        group: &str,
        storage: Storage,
        n_cells: usize,
        n_genes: usize,
    ) -> Result<H5Matrix, DataError> {
        let p = |n: &str| format!("{group}/{n}");
        for n in ["data", "indices", "indptr"] {
            if !h5.is_dataset(&p(n))? {
                return Err(h5.msg(format!(
                    "sparse matrix `{group}` has no `{n}` dataset; the file is incomplete"
                )));
            }
        }
        let data = h5.dataset(&p("data"))?;
        let indices = h5.dataset(&p("indices"))?;
        let indptr = h5.dataset(&p("indptr"))?;
        let nnz = h5.shape(&data, &p("data"))?.first().copied().unwrap_or(0);
        let n_idx = h5
            .shape(&indices, &p("indices"))?
            .first()
            .copied()
            .unwrap_or(0);
        let n_ptr = h5
            .shape(&indptr, &p("indptr"))?
            .first()
            .copied()
            .unwrap_or(0);
        let major = if storage == Storage::GeneMajor {
            n_genes
        } else {
            n_cells
        };
        if n_idx != nnz {
            return Err(h5.msg(format!(
                "`{group}`: `data` has {nnz} entries but `indices` has {n_idx}; the file is corrupt"
            )));
        }
        if n_ptr != major + 1 {
            return Err(h5.msg(format!(
                "`{group}/indptr` has {n_ptr} entries but the shape says {} {}; the matrix \
                 shape does not match its data",
                major + 1,
                if storage == Storage::GeneMajor {
                    "(genes + 1)"
                } else {
                    "(cells + 1)"
                }
            )));
        }
        Ok(H5Matrix {
            h5: h5.clone(),
            field: group.to_string(),
            n_cells,
            n_genes,
            storage,
            kind: Kind::Compressed {
                data: EntryArray::new(h5, data),
                indices: EntryArray::new(h5, indices),
                indptr,
                nnz,
                transposed: None,
            },
            spare: Vec::new(),
        })
    }

    /// A dense cells × genes dataset.
    pub fn dense(h5: &H5, path: &str) -> Result<H5Matrix, DataError> {
        let ds = h5.dataset(path)?;
        let shape = h5.shape(&ds, path)?;
        let [n_cells, n_genes] = shape[..] else {
            return Err(h5.msg(format!(
                "`{path}` is a dataset of shape {shape:?}, not a 2-D cells × genes matrix"
            )));
        };
        Ok(H5Matrix {
            h5: h5.clone(),
            field: path.to_string(),
            n_cells,
            n_genes,
            storage: Storage::Dense,
            kind: Kind::Dense(ds),
            spare: Vec::new(),
        })
    }

    /// Keeps a used chunk's buffers for the next reads (two at most: one chunk is being used
    /// while the next is read).
    pub fn recycle(&mut self, chunk: CsrChunk) {
        if self.spare.len() < 2 {
            self.spare.push((chunk.indices, chunk.data));
        }
    }

    /// The entries a sparse matrix stores (`None` for a dense one: its non-zeros are not known
    /// before reading).
    pub fn stored_entries(&self) -> Option<usize> {
        match &self.kind {
            Kind::Compressed { nnz, .. } => Some(*nnz),
            Kind::Dense(_) => None,
        }
    }

    /// Cells `start..start+count` (clamped to the end).
    pub fn read(&mut self, start: usize, count: usize) -> Result<CsrChunk, DataError> {
        let count = count.min(self.n_cells.saturating_sub(start));
        let h5 = &self.h5;
        let field = &self.field;
        let chunk = match &mut self.kind {
            Kind::Dense(ds) => {
                let vals = ds
                    .read_f32_rows(start as u64, count as u64)
                    .map_err(|e| h5.err(field, e))?;
                if vals.len() != count * self.n_genes {
                    return Err(h5.msg(format!("`{field}`: short read of dense rows")));
                }
                let mut c = CsrChunk {
                    first_cell: start,
                    indptr: Vec::with_capacity(count + 1),
                    ..Default::default()
                };
                c.indptr.push(0);
                for row in vals.chunks(self.n_genes.max(1)).take(count) {
                    for (g, &v) in row.iter().enumerate() {
                        if v != 0.0 {
                            c.indices.push(g as u32);
                            c.data.push(v);
                        }
                    }
                    c.indptr.push(c.indices.len());
                }
                c
            }
            Kind::Compressed {
                data,
                indices,
                indptr,
                nnz,
                transposed,
            } => {
                if self.storage == Storage::GeneMajor {
                    if transposed.is_none() {
                        *transposed = Some(transpose(
                            h5,
                            field,
                            data,
                            indices,
                            indptr,
                            *nnz,
                            self.n_cells,
                            self.n_genes,
                        )?);
                    }
                    let m = transposed.as_ref().expect("transposed just above");
                    m.slice(start, count)
                } else {
                    let spare = self.spare.pop();
                    let chunk = read_rows(
                        h5,
                        field,
                        (data, indices, indptr),
                        *nnz,
                        (start, count),
                        self.n_genes,
                        spare,
                    )?;
                    // Its indices were checked against the gene count as they were read.
                    check_chunk_lengths(&h5.name, field, &chunk)?;
                    return Ok(chunk);
                }
            }
        };
        check_chunk(&h5.name, field, &chunk, self.n_genes)?;
        Ok(chunk)
    }
}

/// Reads `count + 1` pointers from `start` and checks they are a valid window into `nnz` entries.
fn ptr_window(
    h5: &H5,
    field: &str,
    indptr: &Dataset,
    nnz: usize,
    start: usize,
    count: usize,
) -> Result<Vec<usize>, DataError> {
    let ptr = indptr
        .read_i64_rows(start as u64, count as u64 + 1)
        .map_err(|e| h5.err(&format!("{field}/indptr"), e))?;
    if ptr.len() != count + 1 {
        return Err(h5.msg(format!(
            "`{field}/indptr` is shorter than the matrix shape says"
        )));
    }
    let mut out = Vec::with_capacity(ptr.len());
    for (i, &p) in ptr.iter().enumerate() {
        if p < 0 || p as usize > nnz || (i > 0 && (p as usize) < out[i - 1]) {
            return Err(h5.msg(format!(
                "`{field}/indptr` has an invalid offset {p} at row {} (must rise from 0 to {nnz}); \
                 the file is corrupt",
                start + i
            )));
        }
        out.push(p as usize);
    }
    Ok(out)
}

/// Reads entries `a..b` of `indices` (each checked to lie in `0..bound`) and `data`.
/// `spare`: buffers of a used chunk to read into.
fn entries(
    h5: &H5,
    field: &str,
    data: &EntryArray,
    indices: &EntryArray,
    (a, b): (usize, usize),
    bound: usize,
    spare: Option<(Vec<u32>, Vec<f32>)>,
) -> Result<(Vec<u32>, Vec<f32>), DataError> {
    let (idx, val) = spare.unzip();
    let idx = read_indices(h5, field, indices, (a, b), bound, idx)?;
    let val = read_values(h5, field, data, (a, b), val)?;
    if idx.len() != b - a || val.len() != b - a {
        return Err(h5.msg(format!(
            "`{field}`: data or indices shorter than indptr says"
        )));
    }
    Ok((idx, val))
}

/// [`entries`]' `indices`: read in place when plain 32-bit, else decoded by `hdf5-pure`.
fn read_indices(
    h5: &H5,
    field: &str,
    indices: &EntryArray,
    (a, b): (usize, usize),
    bound: usize,
    spare: Option<Vec<u32>>,
) -> Result<Vec<u32>, DataError> {
    let n = b - a;
    let name = format!("{field}/indices");
    if let (Some(d), Some(src)) = (&indices.direct, &h5.source) {
        match d.elem {
            Elem::I32 | Elem::U32 => {
                let mut idx = sized(spare, n);
                d.read(src.as_ref(), a as u64, bytemuck::cast_slice_mut(&mut idx))
                    .map_err(|e| read_failed(h5, &name, e))?;
                // Negative int32 read as u32 are 2^31 and up: one bound covers both checks.
                let limit = if d.elem == Elem::I32 {
                    bound.min(1 << 31)
                } else {
                    bound
                };
                check_below(h5, field, &idx, limit, bound, d.elem == Elem::I32)?;
                return Ok(idx);
            }
            Elem::I64 => {
                let mut raw = vec![0i64; n];
                d.read(src.as_ref(), a as u64, bytemuck::cast_slice_mut(&mut raw))
                    .map_err(|e| read_failed(h5, &name, e))?;
                return raw
                    .into_iter()
                    .map(|i| to_u32(h5, field, i, bound))
                    .collect();
            }
            Elem::F32 => {}
        }
    }
    // 32-bit signed indices (anndata's usual) convert in place; any other integer type goes
    // through i64.
    let int32 = matches!(
        indices.ds.datatype(),
        Ok(hdf5_pure::Datatype::FixedPoint {
            size: 4,
            layout: hdf5_pure::FixedPointLayout { signed: true, .. },
            ..
        })
    );
    if int32 {
        let raw = indices
            .ds
            .read_i32_rows(a as u64, n as u64)
            .map_err(|e| h5.err(&name, e))?;
        let idx: Vec<u32> = raw.into_iter().map(|i| i as u32).collect();
        check_below(h5, field, &idx, bound.min(1 << 31), bound, true)?;
        Ok(idx)
    } else {
        indices
            .ds
            .read_i64_rows(a as u64, n as u64)
            .map_err(|e| h5.err(&name, e))?
            .into_iter()
            .map(|i| to_u32(h5, field, i, bound))
            .collect()
    }
}

/// Checks every index is below `limit` in one branch-free (vectorised) pass; the per-value
/// checked conversion was 7 % of tokenizing a 1 GB file. The error names the first offender
/// (as a signed number when the file stores `signed` indices) against `bound`.
fn check_below(
    h5: &H5,
    field: &str,
    idx: &[u32],
    limit: usize,
    bound: usize,
    signed: bool,
) -> Result<(), DataError> {
    // The largest index, in 32-bit lanes (a comparison widened to `usize` ran one by one).
    let largest = idx.iter().fold(0u32, |m, &i| m.max(i));
    if !idx.is_empty() && largest as usize >= limit {
        let &i = idx
            .iter()
            .find(|&&i| i as usize >= limit)
            .expect("an index out of range was seen");
        let i = if signed {
            i64::from(i as i32)
        } else {
            i64::from(i)
        };
        to_u32(h5, field, i, bound)?;
        return Err(h5.msg(format!(
            "`{field}/indices` holds {i}, outside 0..{bound}; the matrix does not match its shape"
        )));
    }
    Ok(())
}

/// [`entries`]' `data`: read in place when plain float32 (or int32, 10x's counts), else
/// decoded by `hdf5-pure`.
fn read_values(
    h5: &H5,
    field: &str,
    data: &EntryArray,
    (a, b): (usize, usize),
    spare: Option<Vec<f32>>,
) -> Result<Vec<f32>, DataError> {
    let n = b - a;
    let name = format!("{field}/data");
    if let (Some(d), Some(src)) = (&data.direct, &h5.source) {
        match d.elem {
            Elem::F32 => {
                let mut val = sized(spare, n);
                d.read(src.as_ref(), a as u64, bytemuck::cast_slice_mut(&mut val))
                    .map_err(|e| read_failed(h5, &name, e))?;
                return Ok(val);
            }
            Elem::I32 => {
                let mut raw = vec![0i32; n];
                d.read(src.as_ref(), a as u64, bytemuck::cast_slice_mut(&mut raw))
                    .map_err(|e| read_failed(h5, &name, e))?;
                return Ok(raw.into_iter().map(|v| v as f32).collect());
            }
            Elem::U32 | Elem::I64 => {}
        }
    }
    data.ds
        .read_f32_rows(a as u64, n as u64)
        .map_err(|e| h5.err(&name, e))
}

/// `spare` (or a new vector) holding `n` elements, to be overwritten: only elements beyond its
/// old length are zeroed, where a new `vec![0; n]` zeroed all of them.
fn sized<T: Copy + Default>(spare: Option<Vec<T>>, n: usize) -> Vec<T> {
    let mut v = spare.unwrap_or_default();
    v.resize(n, T::default());
    v
}

fn read_failed(h5: &H5, name: &str, e: std::io::Error) -> DataError {
    format_err(
        &h5.name,
        format!("cannot read `{name}` ({e}); the file may be truncated or corrupt"),
    )
}

fn to_u32(h5: &H5, field: &str, i: i64, bound: usize) -> Result<u32, DataError> {
    if i < 0 || i as usize >= bound {
        return Err(h5.msg(format!(
            "`{field}/indices` holds {i}, outside 0..{bound}; the matrix does not match its shape"
        )));
    }
    Ok(i as u32)
}

#[allow(clippy::too_many_arguments)]
fn read_rows(
    h5: &H5,
    field: &str,
    (data, indices, indptr): (&EntryArray, &EntryArray, &Dataset),
    nnz: usize,
    (start, count): (usize, usize),
    n_genes: usize,
    spare: Option<(Vec<u32>, Vec<f32>)>,
) -> Result<CsrChunk, DataError> {
    let ptr = ptr_window(h5, field, indptr, nnz, start, count)?;
    let (a, b) = (ptr[0], ptr[count]);
    let (indices, data) = entries(h5, field, data, indices, (a, b), n_genes, spare)?;
    Ok(CsrChunk {
        first_cell: start,
        indptr: ptr.iter().map(|p| p - a).collect(),
        indices,
        data,
    })
}

/// Transposes a gene-major matrix into cell-major CSR with two windowed passes (count, fill).
#[allow(clippy::too_many_arguments)]
fn transpose(
    h5: &H5,
    field: &str,
    data: &EntryArray,
    indices: &EntryArray,
    indptr: &Dataset,
    nnz: usize,
    n_cells: usize,
    n_genes: usize,
) -> Result<MemCsr, DataError> {
    let gptr = ptr_window(h5, field, indptr, nnz, 0, n_genes)?;
    if gptr[0] != 0 || gptr[n_genes] != nnz {
        return Err(h5.msg(format!("`{field}/indptr` does not span all {nnz} entries")));
    }
    let mut counts = vec![0usize; n_cells + 1];
    let mut a = 0;
    while a < nnz {
        let b = (a + WINDOW).min(nnz);
        let idx = indices
            .ds
            .read_i64_rows(a as u64, (b - a) as u64)
            .map_err(|e| h5.err(&format!("{field}/indices"), e))?;
        for i in idx {
            counts[to_u32(h5, field, i, n_cells)? as usize + 1] += 1;
        }
        a = b;
    }
    for i in 0..n_cells {
        counts[i + 1] += counts[i];
    }
    let mut next = counts.clone();
    let mut out_idx = vec![0u32; nnz];
    let mut out_val = vec![0f32; nnz];
    let mut gene = 0usize;
    let mut a = 0;
    while a < nnz {
        let b = (a + WINDOW).min(nnz);
        let (idx, val) = entries(h5, field, data, indices, (a, b), n_cells, None)?;
        for (k, (cell, v)) in idx.into_iter().zip(val).enumerate() {
            let e = a + k;
            while gptr[gene + 1] <= e {
                gene += 1;
            }
            let cell = cell as usize;
            let slot = next[cell];
            next[cell] += 1;
            out_idx[slot] = gene as u32;
            out_val[slot] = v;
        }
        a = b;
    }
    Ok(MemCsr {
        indptr: counts,
        indices: out_idx,
        data: out_val,
    })
}
