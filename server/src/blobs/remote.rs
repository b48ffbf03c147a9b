//! S3-compatible object storage behind the blob store (the `object_store` crate).
//!
//! Blobs are immutable and content-addressed, so the remote side only ever needs "is it
//! there", "put it once" and "read (a range of) it": no listing, no overwrite, no delete.
//! Uploads go up as a multipart upload from the finished temp file (bounded memory whatever
//! the file size); a failed upload is aborted, so no partial object is ever visible under a
//! blob's key (S3 makes a multipart object visible only on completion).

use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::io::AsyncReadExt;

use super::BlobError;

/// Multipart part size: S3's minimum is 5 MiB; 8 MiB parts keep a 2 GB upload at 250 parts.
const PART_BYTES: usize = 8 << 20;
/// Parts in flight at once (memory held: about this many parts).
const PARTS_IN_FLIGHT: usize = 2;

/// Where and how to reach the object store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteConfig {
    /// `s3://bucket` or `s3://bucket/prefix`.
    pub url: String,
    /// Extra `object_store` S3 options (`aws_endpoint`, `aws_access_key_id`,
    /// `aws_secret_access_key`, `aws_region`, `aws_allow_http`, ...). The server's CLI takes
    /// them from the standard `AWS_*` environment variables.
    pub options: Vec<(String, String)>,
}

impl RemoteConfig {
    /// `url` with the options of the process environment (`AWS_*`).
    pub fn from_env(url: impl Into<String>) -> Self {
        let options = std::env::vars()
            .filter(|(k, _)| k.starts_with("AWS_"))
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        Self {
            url: url.into(),
            options,
        }
    }
}

/// A connected bucket (cheap to clone).
#[derive(Debug, Clone)]
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    url: String,
}

impl Remote {
    /// Builds the client; fails on a malformed URL or option (no request is made).
    pub fn connect(config: &RemoteConfig) -> Result<Self, BlobError> {
        // reqwest is built without a TLS crypto default; use ring, as ureq does. (Fails only
        // when a provider is already installed, which is fine.)
        let _ = rustls::crypto::ring::default_provider().install_default();
        let bad = |message: String| BlobError::Config {
            url: config.url.clone(),
            message,
        };
        let rest = config.url.strip_prefix("s3://").ok_or_else(|| {
            bad("only s3:// URLs are supported (s3://bucket or s3://bucket/prefix)".into())
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("the URL names no bucket".into()));
        }
        let mut builder = AmazonS3Builder::new().with_bucket_name(bucket);
        for (key, value) in &config.options {
            let key = key
                .parse()
                .map_err(|e| bad(format!("option `{key}`: {e}")))?;
            builder = builder.with_config(key, value);
        }
        let store = builder.build().map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            store: Arc::new(store),
            prefix: Path::from(prefix.trim_matches('/')),
            url: config.url.clone(),
        })
    }

    fn key(&self, sha256: &str) -> Path {
        let name = format!("sha256/{}/{}", &sha256[..2], &sha256[2..]);
        if self.prefix.as_ref().is_empty() {
            Path::from(name)
        } else {
            Path::from(format!("{}/{name}", self.prefix))
        }
    }

    fn err(&self, op: &'static str) -> impl Fn(object_store::Error) -> BlobError + '_ {
        move |source| BlobError::Remote {
            url: self.url.clone(),
            op,
            source,
        }
    }

    /// The stored size of a blob, `None` when it is not there.
    pub async fn size_of(&self, sha256: &str) -> Result<Option<u64>, BlobError> {
        match self.store.head(&self.key(sha256)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err("head")(e)),
        }
    }

    /// Uploads `file` as blob `sha256` unless an object of that size is already there.
    pub async fn put_file(&self, sha256: &str, file: &FsPath, size: u64) -> Result<(), BlobError> {
        if self.size_of(sha256).await? == Some(size) {
            return Ok(());
        }
        let key = self.key(sha256);
        let upload = self
            .store
            .put_multipart(&key)
            .await
            .map_err(self.err("start upload"))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let result: Result<(), BlobError> = async {
            let mut input = tokio::fs::File::open(file).await?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(self.err("upload part"))?;
                let n = input.read(&mut buf).await?;
                if n == 0 {
                    return Ok(());
                }
                writer.write(&buf[..n]);
            }
        }
        .await;
        match result {
            Ok(()) => {
                writer.finish().await.map_err(self.err("complete upload"))?;
                Ok(())
            }
            Err(e) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(%sha256, error = %abort, "aborting a failed multipart upload failed");
                }
                Err(e)
            }
        }
    }

    /// Reads `range` of a blob (the whole blob for `None`) as a stream of chunks, with the
    /// range actually served and the blob's total size.
    pub async fn get(
        &self,
        sha256: &str,
        range: Option<GetRange>,
    ) -> Result<
        (
            BoxStream<'static, Result<Bytes, std::io::Error>>,
            Range<u64>,
            u64,
        ),
        BlobError,
    > {
        let options = GetOptions {
            range,
            ..Default::default()
        };
        let res = self
            .store
            .get_opts(&self.key(sha256), options)
            .await
            .map_err(self.err("get"))?;
        let (served, total) = (res.range.clone(), res.meta.size);
        let url = self.url.clone();
        let stream = res
            .into_stream()
            .map_err(move |e| std::io::Error::other(format!("reading from {url}: {e}")))
            .boxed();
        Ok((stream, served, total))
    }
}
