//! 1-D datasets read straight into typed buffers. Most h5ad matrices are stored without
//! compression (anndata's default), as one contiguous run or as unfiltered chunks; their bytes
//! are then exactly the little-endian numbers wanted, and a window of entries is one
//! positioned read per run of adjacent chunks into the caller's buffer. Through `hdf5-pure`
//! the same window was read into a byte vector chunk by chunk, copied, then decoded into a
//! third: two fifths of the reading thread's time on a 1 GB file. Gzip-compressed chunks
//! (`compression="gzip"`, the other common choice) are inflated on every core at once, each
//! straight into its part of the window: inflating one after another was a tenth of
//! tokenizing Baron's 822 cells.

use hdf5_pure::{
    Dataset, Datatype, DatatypeByteOrder, FixedPointLayout, FloatingPointLayout, Layout,
};

use flate2::{Decompress, FlushDecompress, Status};
use rayon::prelude::*;

use super::source::ByteSource;

/// HDF5's filter id of deflate (gzip).
const DEFLATE: u16 = 1;
/// The largest inflated chunk read directly.
const MAX_CHUNK_BYTES: u64 = 64 << 20;

/// The element types read directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Elem {
    I32,
    U32,
    I64,
    F32,
}

impl Elem {
    fn of(dt: &Datatype) -> Option<Elem> {
        match *dt {
            Datatype::FixedPoint {
                size,
                byte_order: DatatypeByteOrder::LittleEndian,
                layout:
                    FixedPointLayout {
                        signed,
                        bit_offset: 0,
                        bit_precision,
                    },
            } if u32::from(bit_precision) == 8 * size => match (size, signed) {
                (4, true) => Some(Elem::I32),
                (4, false) => Some(Elem::U32),
                (8, true) => Some(Elem::I64),
                _ => None,
            },
            Datatype::FloatingPoint {
                size: 4,
                byte_order: DatatypeByteOrder::LittleEndian,
                layout,
            } if layout == FloatingPointLayout::IEEE754_BINARY32 => Some(Elem::F32),
            _ => None,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> u64 {
        match self {
            Elem::I32 | Elem::U32 | Elem::F32 => 4,
            Elem::I64 => 8,
        }
    }
}

/// Elements `first..first + count` of a dataset, stored from byte `at` of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    first: u64,
    count: u64,
    at: u64,
}

/// A deflate-compressed chunk: elements `first..first + edge` inflated from the `stored`
/// bytes at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Deflated {
    first: u64,
    at: u64,
    stored: u64,
}

/// Where a 1-D dataset's elements lie in the file.
#[derive(Debug, Clone)]
enum Storage {
    /// Plain bytes, in runs.
    Plain(Vec<Run>),
    /// Every chunk of `edge` elements deflated, in order.
    Deflated { edge: u64, chunks: Vec<Deflated> },
}

/// Where a 1-D dataset's elements lie in the file, and how they are stored.
#[derive(Debug, Clone)]
pub(crate) struct DirectDataset {
    storage: Storage,
    len: u64,
    pub elem: Elem,
}

impl DirectDataset {
    /// Where the dataset lies, or `None` when it must be decoded by `hdf5-pure`: filtered
    /// other than by deflate alone, not 1-D, of another element type or byte order (or on a
    /// big-endian machine), with chunks not yet written or not all filtered, or with storage
    /// this reader does not locate.
    pub fn new(ds: &Dataset) -> Option<Self> {
        if cfg!(target_endian = "big") {
            return None;
        }
        match ds.filters()[..] {
            [] => {}
            [DEFLATE] => return Self::deflated(ds),
            _ => return None,
        }
        let elem = Elem::of(&ds.datatype().ok()?)?;
        let [len] = ds.shape().ok()?[..] else {
            return None;
        };
        let size = elem.size();
        let runs = match ds.layout().ok()? {
            Layout::Contiguous {
                address: Some(at),
                size: bytes,
            } if bytes >= len.checked_mul(size)? => vec![Run {
                first: 0,
                count: len,
                at,
            }],
            Layout::Chunked { chunk_shape, .. } => {
                let [edge] = chunk_shape[..] else {
                    return None;
                };
                let mut chunks = ds.chunks().ok()?;
                chunks.sort_unstable_by_key(|c| c.offset.first().copied());
                let mut runs: Vec<Run> = Vec::new();
                for (k, c) in chunks.iter().enumerate() {
                    let first = k as u64 * edge;
                    // Every chunk present, in order, whole and unfiltered.
                    if c.offset[..] != [first]
                        || c.filter_mask != 0
                        || c.storage_size != edge.checked_mul(size)?
                    {
                        return None;
                    }
                    let count = edge.min(len.saturating_sub(first));
                    match runs.last_mut() {
                        Some(r) if r.at + r.count * size == c.address && r.count % edge == 0 => {
                            r.count += count;
                        }
                        _ => runs.push(Run {
                            first,
                            count,
                            at: c.address,
                        }),
                    }
                }
                let covered = runs.last().map_or(0, |r| r.first + r.count);
                if covered != len {
                    return None;
                }
                runs
            }
            _ => return None,
        };
        Some(Self {
            storage: Storage::Plain(runs),
            len,
            elem,
        })
    }

    /// A dataset of deflated chunks, every one present, in order.
    fn deflated(ds: &Dataset) -> Option<Self> {
        let elem = Elem::of(&ds.datatype().ok()?)?;
        let [len] = ds.shape().ok()?[..] else {
            return None;
        };
        let Layout::Chunked { chunk_shape, .. } = ds.layout().ok()? else {
            return None;
        };
        let [edge] = chunk_shape[..] else {
            return None;
        };
        // Each thread holds one inflated chunk: sizes a file may claim but no writer makes
        // (anndata's chunks are kilobytes) are left to `hdf5-pure`, as is a stored size
        // beyond what deflate can make of the chunk (it adds at most a few bytes per 16 KiB).
        let plain = edge.checked_mul(elem.size())?;
        if edge == 0 || plain > MAX_CHUNK_BYTES {
            return None;
        }
        let most_stored = plain + plain / 64 + 1024;
        let mut found = ds.chunks().ok()?;
        found.sort_unstable_by_key(|c| c.offset.first().copied());
        let mut chunks = Vec::with_capacity(found.len());
        for (k, c) in found.iter().enumerate() {
            let first = k as u64 * edge;
            // A set filter-mask bit: a chunk stored unfiltered, left to `hdf5-pure`.
            if c.offset[..] != [first] || c.filter_mask != 0 || c.storage_size > most_stored {
                return None;
            }
            chunks.push(Deflated {
                first,
                at: c.address,
                stored: c.storage_size,
            });
        }
        if (chunks.len() as u64).checked_mul(edge)? < len {
            return None;
        }
        Some(Self {
            storage: Storage::Deflated { edge, chunks },
            len,
            elem,
        })
    }

    /// Fills `dst` with elements `first..` (as many as `dst` holds, in `elem`'s bytes).
    pub fn read(&self, source: &dyn ByteSource, first: u64, dst: &mut [u8]) -> std::io::Result<()> {
        let size = self.elem.size();
        let n = dst.len() as u64 / size;
        if !(dst.len() as u64).is_multiple_of(size)
            || first.checked_add(n).is_none_or(|e| e > self.len)
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "elements {first}..+{n} of a dataset of {} ({} bytes asked)",
                    self.len,
                    dst.len()
                ),
            ));
        }
        let runs = match &self.storage {
            Storage::Plain(runs) => runs,
            Storage::Deflated { edge, chunks } => {
                return read_deflated(source, size, *edge, chunks, first, dst);
            }
        };
        let mut pos = first;
        let mut out = 0usize;
        let mut r = runs.partition_point(|r| r.first + r.count <= pos);
        while pos < first + n {
            let run = runs[r];
            let take = (run.first + run.count - pos).min(first + n - pos);
            let bytes = (take * size) as usize;
            source.read_at(
                run.at + (pos - run.first) * size,
                &mut dst[out..out + bytes],
            )?;
            out += bytes;
            pos += take;
            r += 1;
        }
        Ok(())
    }
}

/// Fills `dst` with elements `first..` of deflated `chunks` of `edge` elements of `size`
/// bytes: each chunk touched is read and inflated on its own thread, into its part of `dst`.
fn read_deflated(
    source: &dyn ByteSource,
    size: u64,
    edge: u64,
    chunks: &[Deflated],
    first: u64,
    dst: &mut [u8],
) -> std::io::Result<()> {
    let mut parts = Vec::new();
    let (mut pos, mut rest) = (first, dst);
    while !rest.is_empty() {
        let chunk = chunks[(pos / edge) as usize];
        let take = ((chunk.first + edge - pos) * size).min(rest.len() as u64) as usize;
        let (part, tail) = rest.split_at_mut(take);
        parts.push((chunk, ((pos - chunk.first) * size) as usize, part));
        pos += take as u64 / size;
        rest = tail;
    }
    let plain_len = (edge * size) as usize;
    parts.into_par_iter().try_for_each_init(
        || (Vec::new(), Vec::new(), Decompress::new(true)),
        |(stored, plain, inflater), (chunk, from, part)| {
            stored.resize(chunk.stored as usize, 0);
            source.read_at(chunk.at, stored)?;
            plain.resize(plain_len, 0);
            inflater.reset(true);
            let status = inflater.decompress(stored, plain, FlushDecompress::Finish);
            let bad = |why: String| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "the gzip chunk of elements {}..{} (byte {} of the file) {why}",
                        chunk.first,
                        chunk.first + edge,
                        chunk.at
                    ),
                )
            };
            match status {
                Ok(Status::StreamEnd) => {}
                Ok(_) => return Err(bad("is cut short or larger than its chunk".into())),
                Err(e) => return Err(bad(format!("is corrupt ({e})"))),
            }
            let got = inflater.total_out() as usize;
            if got < from + part.len() {
                return Err(bad(format!("inflates to {got} bytes, not {plain_len}")));
            }
            part.copy_from_slice(&plain[from..from + part.len()]);
            Ok(())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::h5util::H5;
    use std::sync::Arc;

    /// The same numbers stored plain (contiguous and in chunks that do not divide the length)
    /// and compressed.
    fn file() -> Arc<dyn ByteSource> {
        Arc::new(bytes())
    }

    fn bytes() -> Vec<u8> {
        let ints: Vec<i32> = (0..1000).map(|i| i * 7 - 3000).collect();
        let uints: Vec<u32> = (0..1000).map(|i| i * 11).collect();
        let longs: Vec<i64> = (0..1000).map(|i| i64::from(i) << 33).collect();
        let floats: Vec<f32> = (0..1000).map(|i| i as f32 * 0.5 - 7.25).collect();
        let mut b = hdf5_pure::FileBuilder::new();
        b.create_dataset("contiguous_i32").with_i32_data(&ints);
        b.create_dataset("chunked_i32")
            .with_i32_data(&ints)
            .with_chunks(&[97]);
        b.create_dataset("chunked_u32")
            .with_u32_data(&uints)
            .with_chunks(&[100]);
        b.create_dataset("contiguous_i64").with_i64_data(&longs);
        b.create_dataset("chunked_f32")
            .with_f32_data(&floats)
            .with_chunks(&[64]);
        b.create_dataset("gzip_f32")
            .with_f32_data(&floats)
            .with_chunks(&[64])
            .with_deflate(4);
        b.create_dataset("gzip_i32")
            .with_i32_data(&ints)
            .with_chunks(&[97])
            .with_deflate(1);
        b.create_dataset("gzip_i64")
            .with_i64_data(&longs)
            .with_chunks(&[1000])
            .with_deflate(9);
        b.finish().unwrap()
    }

    #[test]
    fn windows_read_directly_equal_the_decoded_bytes() {
        let source = file();
        let h5 = H5::from_source(source.clone(), "direct.h5").unwrap();
        for (name, elem) in [
            ("contiguous_i32", Elem::I32),
            ("chunked_i32", Elem::I32),
            ("chunked_u32", Elem::U32),
            ("contiguous_i64", Elem::I64),
            ("chunked_f32", Elem::F32),
            ("gzip_f32", Elem::F32),
            ("gzip_i32", Elem::I32),
            ("gzip_i64", Elem::I64),
        ] {
            let ds = h5.dataset(name).unwrap();
            let d = DirectDataset::new(&ds).unwrap_or_else(|| panic!("{name} is read directly"));
            assert_eq!(
                matches!(d.storage, Storage::Deflated { .. }),
                name.starts_with("gzip"),
                "{name}"
            );
            assert_eq!(d.elem, elem, "{name}");
            for (first, n) in [
                (0, 1000),
                (0, 1),
                (96, 2),
                (97, 97),
                (500, 321),
                (999, 1),
                (1000, 0),
            ] {
                let mut got = vec![0u8; n as usize * elem.size() as usize];
                d.read(source.as_ref(), first, &mut got).unwrap();
                let want = ds.read_raw_rows(first, n).unwrap();
                assert_eq!(got, want, "{name}: {n} from {first}");
            }
            let mut past = vec![0u8; 2 * elem.size() as usize];
            let e = d.read(source.as_ref(), 999, &mut past).unwrap_err();
            assert!(e.to_string().contains("of a dataset of 1000"), "{e}");
        }
    }

    /// A damaged gzip chunk is an error that names it, not wrong numbers.
    #[test]
    fn a_corrupt_gzip_chunk_is_an_error() {
        let good = bytes();
        let h5 = H5::from_source(Arc::new(good.clone()), "direct.h5").unwrap();
        let d = DirectDataset::new(&h5.dataset("gzip_f32").unwrap()).unwrap();
        let Storage::Deflated { chunks, .. } = &d.storage else {
            panic!("deflated")
        };
        let chunk = chunks[3];
        let mut bad = good;
        for b in &mut bad[chunk.at as usize + 2..(chunk.at + chunk.stored) as usize] {
            *b = !*b;
        }
        let bad: Arc<dyn ByteSource> = Arc::new(bad);
        let mut out = vec![0u8; 4 * 1000];
        let e = d.read(bad.as_ref(), 0, &mut out).unwrap_err();
        assert!(
            e.to_string().contains("gzip chunk of elements 192..256"),
            "{e}"
        );
        // Windows off the damaged chunk still read.
        d.read(bad.as_ref(), 0, &mut out[..4 * 192]).unwrap();
    }
}
