//! The page's `File`, read by the worker slice by slice (`FileReaderSync`, which dedicated
//! workers have) instead of copied whole into wasm memory: a file of several GB annotates with
//! the memory of the chunk being read.

use std::cell::RefCell;
use std::collections::HashMap;

use genecompass_core::data::ByteSource;
use web_sys::{Blob, FileReaderSync};

thread_local! {
    /// Blobs by id. JS objects cannot cross threads, but core's readers want a `Send + Sync`
    /// source: the source holds an id into this table instead (wasm has one thread).
    static BLOBS: RefCell<HashMap<u32, (Blob, FileReaderSync)>> = RefCell::new(HashMap::new());
    static NEXT: RefCell<u32> = const { RefCell::new(0) };
}

/// A registered Blob; unregistered when dropped.
pub struct BlobSource {
    id: u32,
    len: u64,
}

impl BlobSource {
    /// Registers `blob` for reading.
    pub fn new(blob: Blob) -> Result<Self, String> {
        let reader = FileReaderSync::new()
            .map_err(|e| format!("this browser cannot read files in a worker: {e:?}"))?;
        let len = blob.size() as u64;
        let id = NEXT.with_borrow_mut(|n| {
            *n = n.wrapping_add(1);
            *n
        });
        BLOBS.with_borrow_mut(|b| b.insert(id, (blob, reader)));
        Ok(Self { id, len })
    }
}

impl Drop for BlobSource {
    fn drop(&mut self) {
        BLOBS.with_borrow_mut(|b| b.remove(&self.id));
    }
}

impl ByteSource for BlobSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let fail = |what: String| std::io::Error::other(what);
        let end = offset + buf.len() as u64;
        if end > self.len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("read past the end of the file ({} bytes)", self.len),
            ));
        }
        if buf.is_empty() {
            return Ok(());
        }
        BLOBS.with_borrow(|b| {
            let (blob, reader) = b
                .get(&self.id)
                .ok_or_else(|| fail("the file was released".into()))?;
            let slice = blob
                .slice_with_f64_and_f64(offset as f64, end as f64)
                .map_err(|e| fail(format!("cannot slice the file: {e:?}")))?;
            let data = reader.read_as_array_buffer(&slice).map_err(|e| {
                fail(format!(
                    "cannot read the file ({e:?}); it may have been moved or changed since it \
                     was chosen: choose it again"
                ))
            })?;
            let data = js_sys::Uint8Array::new(&data);
            if data.length() as usize != buf.len() {
                return Err(fail(format!(
                    "the file returned {} bytes where {} were asked for: it changed since it \
                     was chosen; choose it again",
                    data.length(),
                    buf.len()
                )));
            }
            data.copy_to(buf);
            Ok(())
        })
    }
}
