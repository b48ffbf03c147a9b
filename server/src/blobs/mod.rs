//! Content-addressed blob store: `DATA_DIR/blobs/sha256/ab/cdef...` by default, or an
//! S3-compatible bucket for teams ([`remote`]).
//!
//! Writes go to `DATA_DIR/tmp/` while hashing and are moved (renamed, or uploaded) into place
//! only when complete, so a blob address either holds the full content of its hash or does not
//! exist. An unfinished [`BlobWriter`] or uncommitted [`TempBlob`] deletes its temp file when
//! dropped (a client disconnect drops the handler's future, and with it the writer).
//!
//! With a bucket, `DATA_DIR/blob-cache/` keeps local copies of the blobs that jobs read (the
//! trainer needs files); they are fetched on first use and verified against their hash.

pub mod remote;
mod serve;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::auth::random_hex;
use crate::error::AppError;
pub use remote::{Remote, RemoteConfig};

/// What can go wrong with blobs.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// Local disk.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The bucket configuration is unusable.
    #[error("blob store {url}: {message}")]
    Config {
        /// The configured URL.
        url: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The object store refused or failed a request.
    #[error(
        "blob store {url}: {op} failed: {source}; check that the bucket exists and the \
         server's AWS_* credentials and endpoint are right"
    )]
    Remote {
        /// The configured URL.
        url: String,
        /// The operation.
        op: &'static str,
        /// The cause.
        source: object_store::Error,
    },
    /// A blob the registry refers to is not in the store.
    #[error("blob {0} is missing from the store")]
    Missing(String),
    /// A fetched copy does not hash to its address.
    #[error(
        "blob {expected} fetched from the store hashes to {actual}; the stored object is corrupt"
    )]
    Corrupt {
        /// The address.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
}

impl From<BlobError> for AppError {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::Remote { .. } => AppError::Unavailable(e.to_string()),
            other => AppError::Internal(other.to_string()),
        }
    }
}

/// The store rooted at a data directory, optionally backed by a bucket.
#[derive(Debug, Clone)]
pub struct BlobStore {
    blobs: PathBuf,
    tmp: PathBuf,
    cache: PathBuf,
    remote: Option<Remote>,
}

impl BlobStore {
    /// Opens (creating folders as needed) the store of `data_dir`; with `remote`, blobs live
    /// in that bucket instead of `DATA_DIR/blobs`.
    pub fn open(data_dir: &Path, remote: Option<&RemoteConfig>) -> Result<Self, BlobError> {
        let blobs = data_dir.join("blobs").join("sha256");
        let tmp = data_dir.join("tmp");
        let cache = data_dir.join("blob-cache").join("sha256");
        let remote = remote.map(Remote::connect).transpose()?;
        let local = if remote.is_some() { &cache } else { &blobs };
        std::fs::create_dir_all(local)?;
        std::fs::create_dir_all(&tmp)?;
        Ok(Self {
            blobs,
            tmp,
            cache,
            remote,
        })
    }

    /// The bucket, when blobs live in one.
    pub fn remote(&self) -> Option<&Remote> {
        self.remote.as_ref()
    }

    /// Where a local copy of the blob with this hex SHA-256 lives (whether or not it exists):
    /// the blob itself for a local store, the cached copy for a bucket.
    /// `sha256` must be 64 lowercase hex digits (callers pass stored or computed hashes only).
    fn local_of(&self, sha256: &str) -> PathBuf {
        debug_assert!(sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit()));
        let root = if self.remote.is_some() {
            &self.cache
        } else {
            &self.blobs
        };
        root.join(&sha256[..2]).join(&sha256[2..])
    }

    /// Number of files in the temp folder (tests check that failed uploads leave none).
    pub fn temp_files(&self) -> usize {
        std::fs::read_dir(&self.tmp).map(|d| d.count()).unwrap_or(0)
    }

    /// A local file holding the blob, for readers that need a path (the trainer). For a bucket
    /// the blob is fetched into the cache on first use, hashed on the way, and only renamed
    /// into place when the hash matches.
    pub async fn local_path(&self, sha256: &str) -> Result<PathBuf, BlobError> {
        let path = self.local_of(sha256);
        if path.is_file() {
            return Ok(path);
        }
        let Some(remote) = &self.remote else {
            return Err(BlobError::Missing(sha256.to_string()));
        };
        if remote.size_of(sha256).await?.is_none() {
            return Err(BlobError::Missing(sha256.to_string()));
        }
        use futures_util::StreamExt;
        let (mut stream, _, _) = remote.get(sha256, None).await?;
        let mut w = self.writer().await?;
        while let Some(chunk) = stream.next().await {
            w.write(&chunk?).await?;
        }
        let blob = w.finish().await?;
        if blob.sha256 != sha256 {
            return Err(BlobError::Corrupt {
                expected: sha256.to_string(),
                actual: blob.sha256.clone(),
            });
        }
        let mut blob = blob;
        let tmp = blob.path.take().expect("finished blob has a path");
        std::fs::create_dir_all(path.parent().expect("blob path has a parent"))?;
        if let Err(e) = tokio::fs::rename(&tmp, &path).await {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
        Ok(path)
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
    pub async fn put_file(&self, src: &Path) -> Result<(String, u64), BlobError> {
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
        blob.commit(self).await?;
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

    /// Moves the blob to its content address: a rename into `DATA_DIR/blobs`, or an upload
    /// to the bucket (then the temp file is removed). A blob already stored (same content
    /// uploaded before) is not stored twice. On error the temp file is removed and nothing is
    /// visible at the address.
    pub async fn commit(mut self, store: &BlobStore) -> Result<(), BlobError> {
        let tmp = self.path.clone().expect("temp blob already committed");
        if let Some(remote) = &store.remote {
            remote.put_file(&self.sha256, &tmp, self.size).await?;
            return Ok(()); // dropping self removes the temp file
        }
        let dest = store.local_of(&self.sha256);
        self.path = None;
        let moved = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if dest.is_file() {
                std::fs::remove_file(&tmp)
            } else {
                std::fs::create_dir_all(dest.parent().expect("blob path has a parent"))?;
                std::fs::rename(&tmp, &dest).inspect_err(|_| {
                    let _ = std::fs::remove_file(&tmp);
                })
            }
        })
        .await
        .map_err(std::io::Error::other)?;
        Ok(moved?)
    }
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}
