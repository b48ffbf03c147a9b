//! Thin layer over `hdf5-pure` shared by the h5ad and 10x readers: opening from bytes or a path,
//! errors that name the file and field, and decoding of the string, numeric and compound
//! datasets those formats use.

use hdf5_pure::{Dataset, Datatype, DatatypeByteOrder, File, Group};

use super::DataError;
use super::csr::format_err;

/// An open HDF5 file plus the name used in messages.
#[derive(Clone)]
pub(crate) struct H5 {
    pub file: File,
    pub name: String,
    /// The file's bytes when it is read by position (a file on disk, a browser `File`): plain
    /// datasets are then read straight into their buffers ([`super::h5direct`]).
    pub source: Option<std::sync::Arc<dyn super::source::ByteSource>>,
}

/// Names of a group's sub-groups and datasets.
pub(crate) type Children = (Vec<String>, Vec<String>);

/// A decoded 1-D column: text or numbers (booleans and integers become numbers).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Column {
    Text(Vec<String>),
    Number(Vec<f64>),
}

impl Column {
    pub fn len(&self) -> usize {
        match self {
            Column::Text(v) => v.len(),
            Column::Number(v) => v.len(),
        }
    }
}

fn corrupt(name: &str, e: hdf5_pure::Error) -> DataError {
    format_err(
        name,
        format!(
            "not a readable HDF5 file ({e}). It may be truncated (an incomplete download or \
             upload) or corrupt: download or export it again"
        ),
    )
}

/// Block size and count of the cache in front of a file on disk ([`H5::open_path`]).
#[cfg(not(target_arch = "wasm32"))]
const READ_BLOCK: usize = 64 * 1024;
#[cfg(not(target_arch = "wasm32"))]
const READ_BLOCKS: usize = 64;

impl H5 {
    /// Parses an HDF5 file held in memory (the browser path).
    pub fn from_bytes(bytes: Vec<u8>, name: &str) -> Result<H5, DataError> {
        if !hdf5_pure::is_hdf5_bytes(&bytes) {
            return Err(format_err(
                name,
                "not an HDF5 file (no HDF5 signature); expected .h5ad or a 10x .h5",
            ));
        }
        let file = File::from_bytes(bytes).map_err(|e| corrupt(name, e))?;
        let h5 = H5 {
            file,
            name: name.to_string(),
            source: None,
        };
        h5.probe()?;
        Ok(h5)
    }

    /// Parses an HDF5 file read on demand from `source` (the browser's `File`): metadata and
    /// chunks are fetched as they are needed, as from a file on disk.
    pub fn from_source(
        source: std::sync::Arc<dyn super::source::ByteSource>,
        name: &str,
    ) -> Result<H5, DataError> {
        let file = File::from_source(super::source::Hdf5Source(source.clone()))
            .map_err(|e| corrupt(name, e))?;
        let h5 = H5 {
            file,
            name: name.to_string(),
            source: Some(source),
        };
        h5.probe()?;
        Ok(h5)
    }

    /// Opens a file on disk for streaming reads: metadata and chunks are fetched on demand, so
    /// memory stays bounded by what is read, not the file size.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open_path(path: &std::path::Path) -> Result<H5, DataError> {
        let name = path.display().to_string();
        let is = hdf5_pure::is_hdf5(path).map_err(|source| DataError::Io {
            path: name.clone(),
            source,
        })?;
        if !is {
            return Err(format_err(
                &name,
                "not an HDF5 file (no HDF5 signature); expected .h5ad or a 10x .h5",
            ));
        }
        let source = super::source::FileSource::open(path).map_err(|source| DataError::Io {
            path: name.clone(),
            source,
        })?;
        // HDF5 metadata and variable-length strings are many small reads (about 100,000 for
        // 30,000 gene names, two system calls each through `File::open_streaming`, most of a
        // small file's tokenization): serve them from 4 MiB of cached 64 KiB blocks. Reads of
        // a block or more (the matrix's chunks) go straight to the file.
        let cached = super::source::CachedSource::new(source, READ_BLOCK, READ_BLOCKS);
        Self::from_source(std::sync::Arc::new(cached), &name)
    }

    /// Lists the root so a file truncated after its superblock fails at open, not mid-read.
    fn probe(&self) -> Result<(), DataError> {
        let root = self.file.root();
        root.groups().map_err(|e| corrupt(&self.name, e))?;
        root.datasets().map_err(|e| corrupt(&self.name, e))?;
        Ok(())
    }

    /// An error about `field` of this file.
    pub fn err(&self, field: &str, e: hdf5_pure::Error) -> DataError {
        format_err(
            &self.name,
            format!(
                "cannot read `{field}` ({e}); the file may be truncated or corrupt, or use a \
                 compression filter other than gzip/LZF (re-save it with gzip compression)"
            ),
        )
    }

    /// A format error with a message.
    pub fn msg(&self, message: impl Into<String>) -> DataError {
        format_err(&self.name, message)
    }

    /// The group at `path` ("" = root).
    pub fn group(&self, path: &str) -> Result<Group, DataError> {
        if path.is_empty() {
            return Ok(self.file.root());
        }
        self.file.group(path).map_err(|e| self.err(path, e))
    }

    /// Sub-group and dataset names of the group at `path`, or `None` if there is no such group.
    pub fn children(&self, path: &str) -> Result<Option<Children>, DataError> {
        if !path.is_empty() && !self.is_group(path)? {
            return Ok(None);
        }
        let g = self.group(path)?;
        let groups = g.groups().map_err(|e| self.err(path, e))?;
        let datasets = g.datasets().map_err(|e| self.err(path, e))?;
        Ok(Some((groups, datasets)))
    }

    fn split(path: &str) -> (&str, &str) {
        match path.rfind('/') {
            Some(i) => (&path[..i], &path[i + 1..]),
            None => ("", path),
        }
    }

    /// Whether `path` names a group.
    pub fn is_group(&self, path: &str) -> Result<bool, DataError> {
        let (parent, leaf) = Self::split(path);
        Ok(match self.children(parent)? {
            Some((groups, _)) => groups.iter().any(|g| g == leaf),
            None => false,
        })
    }

    /// Whether `path` names a dataset.
    pub fn is_dataset(&self, path: &str) -> Result<bool, DataError> {
        let (parent, leaf) = Self::split(path);
        Ok(match self.children(parent)? {
            Some((_, ds)) => ds.iter().any(|d| d == leaf),
            None => false,
        })
    }

    /// The dataset at `path`.
    pub fn dataset(&self, path: &str) -> Result<Dataset, DataError> {
        self.file.dataset(path).map_err(|e| self.err(path, e))
    }

    /// The shape of the dataset at `path`.
    pub fn shape(&self, ds: &Dataset, path: &str) -> Result<Vec<usize>, DataError> {
        let s = ds.shape().map_err(|e| self.err(path, e))?;
        Ok(s.into_iter().map(|d| d as usize).collect())
    }

    /// A string attribute of the object at `path` (group or dataset).
    pub fn attr_str(&self, path: &str, key: &str) -> Result<Option<String>, DataError> {
        let attrs = if self.is_dataset(path)? {
            self.dataset(path)?.attrs()
        } else {
            self.group(path)?.attrs()
        }
        .map_err(|e| self.err(path, e))?;
        Ok(attrs.get(key).and_then(|v| v.as_str()).map(str::to_string))
    }

    /// An integer-array attribute of the object at `path`.
    pub fn attr_ints(&self, path: &str, key: &str) -> Result<Option<Vec<i64>>, DataError> {
        let attrs = if self.is_dataset(path)? {
            self.dataset(path)?.attrs()
        } else {
            self.group(path)?.attrs()
        }
        .map_err(|e| self.err(path, e))?;
        Ok(attrs.get(key).and_then(|v| v.to_i64s()))
    }

    /// String-array attribute of the object at `path`.
    pub fn attr_strings(&self, path: &str, key: &str) -> Result<Option<Vec<String>>, DataError> {
        let attrs = if self.is_dataset(path)? {
            self.dataset(path)?.attrs()
        } else {
            self.group(path)?.attrs()
        }
        .map_err(|e| self.err(path, e))?;
        Ok(attrs
            .get(key)
            .and_then(|v| v.as_strings())
            .map(<[String]>::to_vec))
    }

    /// All strings of a (fixed- or variable-length) string dataset.
    pub fn strings(&self, path: &str) -> Result<Vec<String>, DataError> {
        let ds = self.dataset(path)?;
        let mut v = ds.read_string().map_err(|e| self.err(path, e))?;
        for s in &mut v {
            let t = s.trim_end_matches('\0');
            if t.len() != s.len() {
                *s = t.to_string();
            }
        }
        Ok(v)
    }

    /// All values of an integer dataset as `i64`.
    pub fn i64s(&self, path: &str) -> Result<Vec<i64>, DataError> {
        self.dataset(path)?
            .read_i64()
            .map_err(|e| self.err(path, e))
    }

    /// Reads a 1-D dataset as a [`Column`]: strings as text; integers, floats and booleans
    /// (HDF5 enums) as numbers. `None` for types a metadata column cannot be (references…).
    pub fn column(&self, path: &str) -> Result<Option<Column>, DataError> {
        let ds = self.dataset(path)?;
        let dt = ds.datatype().map_err(|e| self.err(path, e))?;
        Ok(match dt {
            Datatype::String { .. }
            | Datatype::VariableLength {
                is_string: true, ..
            } => Some(Column::Text(self.strings(path)?)),
            Datatype::FixedPoint { .. } | Datatype::FloatingPoint { .. } => Some(Column::Number(
                ds.read_f64().map_err(|e| self.err(path, e))?,
            )),
            Datatype::Enumeration { .. } => {
                let raw = ds.read_raw().map_err(|e| self.err(path, e))?;
                let size = dt_size(&dt);
                let vals = raw
                    .chunks_exact(size.max(1))
                    .map(|b| decode_number(b, &dt).unwrap_or(f64::NAN))
                    .collect();
                Some(Column::Number(vals))
            }
            _ => None,
        })
    }

    /// Decodes a 1-D compound dataset (legacy AnnData `obs`/`var`) into named columns; members
    /// that are neither numbers nor strings (array members such as `obsm` rows) are skipped.
    pub fn compound(&self, path: &str) -> Result<Vec<(String, Column)>, DataError> {
        let ds = self.dataset(path)?;
        let dt = ds.datatype().map_err(|e| self.err(path, e))?;
        let Datatype::Compound { size, members } = dt else {
            return Err(self.msg(format!("`{path}` is not a compound (table) dataset")));
        };
        let raw = ds.read_raw().map_err(|e| self.err(path, e))?;
        let size = size as usize;
        let n = raw.len() / size.max(1);
        let mut out = Vec::new();
        for m in members {
            let off = m.byte_offset as usize;
            let msize = dt_size(&m.datatype);
            if off + msize > size {
                return Err(self.msg(format!("`{path}`: member `{}` overruns its record", m.name)));
            }
            let field = |i: usize| &raw[i * size + off..i * size + off + msize];
            let col = match &m.datatype {
                Datatype::String { .. } => Column::Text(
                    (0..n)
                        .map(|i| {
                            let b = field(i);
                            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                            String::from_utf8_lossy(&b[..end]).trim_end().to_string()
                        })
                        .collect(),
                ),
                Datatype::FixedPoint { .. }
                | Datatype::FloatingPoint { .. }
                | Datatype::Enumeration { .. } => Column::Number(
                    (0..n)
                        .map(|i| decode_number(field(i), &m.datatype).unwrap_or(f64::NAN))
                        .collect(),
                ),
                _ => continue,
            };
            out.push((m.name.clone(), col));
        }
        Ok(out)
    }
}

/// Byte size of a datatype (0 when unknown).
fn dt_size(dt: &Datatype) -> usize {
    match dt {
        Datatype::FixedPoint { size, .. }
        | Datatype::FloatingPoint { size, .. }
        | Datatype::String { size, .. }
        | Datatype::BitField { size, .. }
        | Datatype::Opaque { size, .. }
        | Datatype::Compound { size, .. }
        | Datatype::Reference { size, .. }
        | Datatype::Enumeration { size, .. }
        | Datatype::Time { size, .. } => *size as usize,
        Datatype::Array {
            base_type,
            dimensions,
        } => dt_size(base_type) * dimensions.iter().map(|&d| d as usize).product::<usize>(),
        Datatype::VariableLength { .. } => 16,
        _ => 0,
    }
}

/// Decodes one integer, float or enum value from its bytes.
fn decode_number(b: &[u8], dt: &Datatype) -> Option<f64> {
    let ordered = |b: &[u8], order: &DatatypeByteOrder| -> Vec<u8> {
        let mut v = b.to_vec();
        if matches!(order, DatatypeByteOrder::BigEndian) {
            v.reverse();
        }
        v
    };
    match dt {
        Datatype::FixedPoint {
            size,
            byte_order,
            layout,
        } => {
            let v = ordered(b.get(..*size as usize)?, byte_order);
            let mut buf = [0u8; 8];
            let n = v.len().min(8);
            buf[..n].copy_from_slice(&v[..n]);
            let negative = layout.signed && n > 0 && v[n - 1] & 0x80 != 0;
            if negative {
                buf[n..].fill(0xff);
            }
            Some(if layout.signed {
                i64::from_le_bytes(buf) as f64
            } else {
                u64::from_le_bytes(buf) as f64
            })
        }
        Datatype::FloatingPoint {
            size, byte_order, ..
        } => {
            let v = ordered(b.get(..*size as usize)?, byte_order);
            match *size {
                4 => Some(f32::from_le_bytes(v.try_into().ok()?) as f64),
                8 => Some(f64::from_le_bytes(v.try_into().ok()?)),
                _ => None,
            }
        }
        Datatype::Enumeration { base_type, .. } => decode_number(b, base_type),
        _ => None,
    }
}
