//! Files read by position, on demand, instead of whole: the browser hands its worker a `File`
//! (a Blob), whose bytes are fetched slice by slice, so annotating a file of several GB needs
//! memory for the chunk being read, not for the file. HDF5 files are parsed straight from such
//! a source; tables stream through [`SourceReader`].

use std::collections::VecDeque;
use std::io::Read;
use std::sync::{Arc, Mutex};

/// A file's bytes, read by position. `Send + Sync + 'static` because the HDF5 reader keeps
/// its source; a browser implementation keeps its (thread-bound) Blob elsewhere and holds an
/// index to it (wasm has one thread).
pub trait ByteSource: Send + Sync + 'static {
    /// The file's length in bytes.
    fn len(&self) -> u64;

    /// Whether the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `buf` from `offset`; reading past the end is an error.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

fn past_end(offset: u64, want: usize, len: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        format!("read of {want} bytes at {offset} runs past the end of the file ({len} bytes)"),
    )
}

impl ByteSource for Vec<u8> {
    fn len(&self) -> u64 {
        self.as_slice().len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or_else(|| past_end(offset, buf.len(), ByteSource::len(self)))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

impl ByteSource for Arc<dyn ByteSource> {
    fn len(&self) -> u64 {
        self.as_ref().len()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.as_ref().read_at(offset, buf)
    }
}

/// A file on disk read by position (`pread`: one system call per read, no shared cursor, so
/// the tokenizer's read-ahead thread can read while the main thread does).
#[cfg(not(target_arch = "wasm32"))]
pub struct FileSource {
    file: std::fs::File,
    len: u64,
}

#[cfg(not(target_arch = "wasm32"))]
impl FileSource {
    /// Opens `path`.
    pub fn open(path: &std::path::Path) -> std::io::Result<Self> {
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        Ok(Self { file, len })
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl ByteSource for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|end| end > self.len)
        {
            return Err(past_end(offset, buf.len(), self.len));
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::FileExt::read_exact_at(&self.file, buf, offset)
        }
        #[cfg(windows)]
        {
            let mut done = 0;
            while done < buf.len() {
                let n = std::os::windows::fs::FileExt::seek_read(
                    &self.file,
                    &mut buf[done..],
                    offset + done as u64,
                )?;
                if n == 0 {
                    return Err(past_end(offset, buf.len(), self.len));
                }
                done += n;
            }
            Ok(())
        }
    }
}

/// A [`ByteSource`] read through a few aligned blocks kept in memory. HDF5 metadata and table
/// parsing issue many small reads; in a browser each read is a call into the page's `File`,
/// so small reads are served from the last blocks read. Memory: `blocks × block` bytes.
pub struct CachedSource<S> {
    inner: S,
    block: usize,
    blocks: usize,
    cache: Mutex<VecDeque<(u64, Arc<Vec<u8>>)>>,
}

impl<S: ByteSource> CachedSource<S> {
    /// Caches up to `blocks` blocks of `block` bytes (both at least 1).
    pub fn new(inner: S, block: usize, blocks: usize) -> Self {
        Self {
            inner,
            block: block.max(1),
            blocks: blocks.max(1),
            cache: Mutex::new(VecDeque::new()),
        }
    }

    /// The block starting at `start` (a multiple of the block size), read if not cached.
    fn block_at(&self, start: u64) -> std::io::Result<Arc<Vec<u8>>> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = cache.iter().position(|(s, _)| *s == start) {
            let hit = cache.remove(i).expect("found above");
            let data = hit.1.clone();
            cache.push_front(hit);
            return Ok(data);
        }
        let n = (self.inner.len() - start).min(self.block as u64) as usize;
        let mut data = vec![0u8; n];
        self.inner.read_at(start, &mut data)?;
        let data = Arc::new(data);
        cache.push_front((start, data.clone()));
        cache.truncate(self.blocks);
        Ok(data)
    }
}

impl<S: ByteSource> ByteSource for CachedSource<S> {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let len = self.len();
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= len)
            .ok_or_else(|| past_end(offset, buf.len(), len))?;
        // Large reads (compressed chunks, table pages) go straight through: caching them would
        // evict the metadata for data that is read once.
        if buf.len() >= self.block {
            return self.inner.read_at(offset, buf);
        }
        let bs = self.block as u64;
        let mut pos = offset;
        while pos < end {
            let start = pos / bs * bs;
            let block = self.block_at(start)?;
            let from = (pos - start) as usize;
            let take = ((end - pos) as usize).min(block.len() - from);
            let at = (pos - offset) as usize;
            buf[at..at + take].copy_from_slice(&block[from..from + take]);
            pos += take as u64;
        }
        Ok(())
    }
}

/// Reads a [`ByteSource`] from start to end, as [`std::io::Read`].
pub struct SourceReader<S> {
    source: S,
    pos: u64,
}

impl<S: ByteSource> SourceReader<S> {
    /// A reader at the start of `source`.
    pub fn new(source: S) -> Self {
        Self { source, pos: 0 }
    }
}

impl<S: ByteSource> Read for SourceReader<S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.source.len().saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.source.read_at(self.pos, &mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// The first `n` bytes of `source` (fewer when it is shorter).
pub fn head(source: &dyn ByteSource, n: usize) -> std::io::Result<Vec<u8>> {
    let n = (n as u64).min(source.len()) as usize;
    let mut buf = vec![0u8; n];
    source.read_at(0, &mut buf)?;
    Ok(buf)
}

/// Lets the HDF5 reader parse a [`ByteSource`] in place.
pub(crate) struct Hdf5Source(pub(crate) Arc<dyn ByteSource>);

impl hdf5_pure::Source for Hdf5Source {
    fn len(&self) -> u64 {
        self.0.len()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), hdf5_pure::FormatError> {
        let len = self.0.len();
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|end| end > len)
        {
            return Err(hdf5_pure::FormatError::UnexpectedEof {
                expected: usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .saturating_add(buf.len()),
                available: usize::try_from(len).unwrap_or(usize::MAX),
            });
        }
        self.0
            .read_at(offset, buf)
            .map_err(|e| hdf5_pure::FormatError::Source(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts the reads that reach the inner source.
    struct Counting(Vec<u8>, std::sync::atomic::AtomicUsize);

    impl ByteSource for Counting {
        fn len(&self) -> u64 {
            ByteSource::len(&self.0)
        }
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.0.read_at(offset, buf)
        }
    }

    fn bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn cached_reads_equal_direct_reads_across_block_edges() {
        let data = bytes(10_000);
        let cached = CachedSource::new(data.clone(), 64, 3);
        for (offset, n) in [
            (0, 1),
            (60, 10),
            (63, 1),
            (64, 64),
            (100, 200),
            (9_990, 10),
            (0, 0),
        ] {
            let mut buf = vec![0u8; n];
            cached.read_at(offset as u64, &mut buf).unwrap();
            assert_eq!(buf, data[offset..offset + n], "read of {n} at {offset}");
        }
        let mut buf = [0u8; 2];
        let e = cached.read_at(9_999, &mut buf).unwrap_err();
        assert!(e.to_string().contains("past the end"), "{e}");
    }

    #[test]
    fn small_reads_in_one_block_read_the_source_once() {
        let inner = Counting(bytes(4_096), Default::default());
        let cached = CachedSource::new(inner, 1_024, 2);
        let mut buf = [0u8; 8];
        for i in 0..100 {
            cached.read_at(i * 8, &mut buf).unwrap();
        }
        assert_eq!(cached.inner.1.load(std::sync::atomic::Ordering::Relaxed), 1);
        // A read as large as a block bypasses the cache.
        let mut big = vec![0u8; 1_024];
        cached.read_at(5, &mut big).unwrap();
        assert_eq!(cached.inner.1.load(std::sync::atomic::Ordering::Relaxed), 2);
    }

    #[test]
    fn reader_streams_the_whole_source() {
        let data = bytes(5_000);
        let mut out = Vec::new();
        SourceReader::new(CachedSource::new(data.clone(), 128, 2))
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }
}
