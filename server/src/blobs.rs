//! Content-addressed blob store: `DATA_DIR/blobs/sha256/ab/cdef...`.
//!
//! Writes go to `DATA_DIR/tmp/` while hashing and are renamed into place only when complete,
//! so a blob path either holds the full content of its hash or does not exist. An unfinished
//! [`BlobWriter`] or uncommitted [`TempBlob`] deletes its temp file when dropped (a client
//! disconnect drops the handler's future, and with it the writer).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::auth::random_hex;

/// The store rooted at a data directory.
#[derive(Debug, Clone)]
pub struct BlobStore {
    blobs: PathBuf,
    tmp: PathBuf,
}

impl BlobStore {
    /// Opens (creating folders as needed) the store of `data_dir`.
    pub fn open(data_dir: &Path) -> std::io::Result<Self> {
        let blobs = data_dir.join("blobs").join("sha256");
        let tmp = data_dir.join("tmp");
        std::fs::create_dir_all(&blobs)?;
        std::fs::create_dir_all(&tmp)?;
        Ok(Self { blobs, tmp })
    }

    /// Where the blob with this hex SHA-256 lives (whether or not it exists).
    /// `sha256` must be 64 lowercase hex digits (callers pass stored or computed hashes only).
    pub fn path_of(&self, sha256: &str) -> PathBuf {
        debug_assert!(sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit()));
        self.blobs.join(&sha256[..2]).join(&sha256[2..])
    }

    /// Number of files in the temp folder (tests check that failed uploads leave none).
    pub fn temp_files(&self) -> usize {
        std::fs::read_dir(&self.tmp).map(|d| d.count()).unwrap_or(0)
    }

    /// Starts a new blob.
    pub async fn writer(&self) -> std::io::Result<BlobWriter> {
        let path = self.tmp.join(format!("upload-{}", random_hex(12)));
        let file = tokio::fs::File::create(&path).await?;
        Ok(BlobWriter {
            file: Some(file),
            path,
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// Copies a local file into the store; returns `(sha256, size)`.
    pub async fn put_file(&self, src: &Path) -> std::io::Result<(String, u64)> {
        use tokio::io::AsyncReadExt;
        let mut input = tokio::fs::File::open(src).await?;
        let mut w = self.writer().await?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = input.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            w.write(&buf[..n]).await?;
        }
        let blob = w.finish().await?;
        let (sha, size) = (blob.sha256.clone(), blob.size);
        blob.commit(self)?;
        Ok((sha, size))
    }
}

/// A blob being written: hashes as it goes.
#[derive(Debug)]
pub struct BlobWriter {
    file: Option<tokio::fs::File>,
    path: PathBuf,
    hasher: Sha256,
    size: u64,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a chunk.
    pub async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        let file = self.file.as_mut().expect("writer used after finish");
        file.write_all(chunk).await?;
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        Ok(())
    }

    /// Flushes and syncs the temp file; the blob is complete but not yet in place.
    pub async fn finish(mut self) -> std::io::Result<TempBlob> {
        let mut file = self.file.take().expect("finish called twice");
        file.flush().await?;
        file.sync_all().await?;
        drop(file);
        let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        Ok(TempBlob {
            path: Some(std::mem::take(&mut self.path)),
            sha256,
            size: self.size,
        })
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A complete blob in the temp folder.
#[derive(Debug)]
pub struct TempBlob {
    path: Option<PathBuf>,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

impl TempBlob {
    /// The temp file (to read metadata from before committing).
    pub fn path(&self) -> &Path {
        self.path.as_deref().expect("temp blob already committed")
    }

    /// Moves the file to its content address and returns that path. If the blob already
    /// exists (same content uploaded before) the temp file is simply removed.
    pub fn commit(mut self, store: &BlobStore) -> std::io::Result<PathBuf> {
        let tmp = self.path.take().expect("temp blob already committed");
        let dest = store.path_of(&self.sha256);
        if dest.is_file() {
            std::fs::remove_file(&tmp)?;
        } else {
            std::fs::create_dir_all(dest.parent().expect("blob path has a parent"))?;
            std::fs::rename(&tmp, &dest)?;
        }
        Ok(dest)
    }
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}
