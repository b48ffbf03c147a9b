//! Blob downloads: `Range` (one range), `If-None-Match` on the content hash, and a
//! `Content-Disposition` file name, whether the blob is a local file or an object in a bucket.

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{
    ACCEPT_RANGES, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, RANGE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use object_store::GetRange;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::BlobStore;
use crate::error::AppError;

/// A parsed `Range` header.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Wanted {
    /// No usable range: the whole blob.
    All,
    /// One satisfiable range.
    Part(GetRange),
}

/// Parses a single `bytes=` range; several ranges, other units or junk mean "the whole blob"
/// (RFC 9110 lets a server ignore `Range`), as tower-http does for local files.
fn parse_range(headers: &HeaderMap) -> Wanted {
    let Some(spec) = headers
        .get(RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return Wanted::All;
    };
    if spec.contains(',') {
        return Wanted::All;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Wanted::All;
    };
    let (a, b) = (a.trim(), b.trim());
    match (a.parse::<u64>().ok(), b.parse::<u64>().ok()) {
        (Some(start), Some(end)) if start <= end => Wanted::Part(GetRange::Bounded(start..end + 1)),
        (Some(start), None) if b.is_empty() => Wanted::Part(GetRange::Offset(start)),
        (None, Some(n)) if a.is_empty() && n > 0 => Wanted::Part(GetRange::Suffix(n)),
        _ => Wanted::All,
    }
}

impl BlobStore {
    /// Answers a download request for a blob as `filename` (which must be safe inside quotes),
    /// with the blob's hash as its `ETag`.
    pub async fn serve(
        &self,
        sha256: &str,
        filename: &str,
        req: Request,
    ) -> Result<Response, AppError> {
        let etag = HeaderValue::from_str(&format!("\"{sha256}\"")).map_err(AppError::internal)?;
        let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
            .map_err(AppError::internal)?;
        let not_modified = req
            .headers()
            .get(IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
        if not_modified {
            return Ok((StatusCode::NOT_MODIFIED, [(ETAG, etag)]).into_response());
        }
        let local = self.local_of(sha256);
        let mut res = if local.is_file() {
            ServeFile::new(local)
                .oneshot(req)
                .await
                .map_err(AppError::internal)?
                .map(Body::new)
        } else if let Some(remote) = &self.remote {
            let total = remote
                .size_of(sha256)
                .await?
                .ok_or_else(|| super::BlobError::Missing(sha256.to_string()))?;
            let range = match parse_range(req.headers()) {
                Wanted::All => None,
                Wanted::Part(r) => match resolve(&r, total) {
                    Some(range) => Some(range),
                    None => {
                        let mut res = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
                        res.headers_mut().insert(
                            CONTENT_RANGE,
                            HeaderValue::from_str(&format!("bytes */{total}"))
                                .map_err(AppError::internal)?,
                        );
                        return Ok(res);
                    }
                },
            };
            let partial = range.is_some();
            let (stream, served, total) = remote.get(sha256, range.map(GetRange::Bounded)).await?;
            let mut res = Response::new(Body::from_stream(stream));
            res.headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(served.end - served.start));
            if partial {
                *res.status_mut() = StatusCode::PARTIAL_CONTENT;
                let cr = format!("bytes {}-{}/{total}", served.start, served.end - 1);
                res.headers_mut().insert(
                    CONTENT_RANGE,
                    HeaderValue::from_str(&cr).map_err(AppError::internal)?,
                );
            }
            res
        } else {
            return Err(AppError::Internal(format!("blob {sha256} is missing")));
        };
        let h = res.headers_mut();
        h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        h.entry(CONTENT_TYPE)
            .or_insert(HeaderValue::from_static("application/octet-stream"));
        h.insert(CONTENT_DISPOSITION, disposition);
        h.insert(ETAG, etag);
        Ok(res)
    }
}

/// The byte range a satisfiable request covers in a blob of `total` bytes (`None`: 416).
fn resolve(r: &GetRange, total: u64) -> Option<std::ops::Range<u64>> {
    match r {
        GetRange::Bounded(b) if b.start < total => Some(b.start..b.end.min(total)),
        GetRange::Offset(start) if *start < total => Some(*start..total),
        GetRange::Suffix(n) if total > 0 => Some(total - (*n).min(total)..total),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(v: &str) -> Wanted {
        let mut h = HeaderMap::new();
        h.insert(RANGE, HeaderValue::from_str(v).unwrap());
        parse_range(&h)
    }

    #[test]
    fn ranges_parse_like_rfc_9110() {
        assert_eq!(wanted("bytes=0-9"), Wanted::Part(GetRange::Bounded(0..10)));
        assert_eq!(wanted("bytes=100-"), Wanted::Part(GetRange::Offset(100)));
        assert_eq!(wanted("bytes=-5"), Wanted::Part(GetRange::Suffix(5)));
        assert_eq!(wanted("bytes=0-1,4-5"), Wanted::All);
        assert_eq!(wanted("items=0-1"), Wanted::All);
        assert_eq!(wanted("bytes=9-3"), Wanted::All);
        assert_eq!(wanted("bytes=-0"), Wanted::All);
        assert_eq!(parse_range(&HeaderMap::new()), Wanted::All);
    }

    #[test]
    fn ranges_clamp_to_the_blob() {
        assert_eq!(resolve(&GetRange::Bounded(2..50), 10), Some(2..10));
        assert_eq!(resolve(&GetRange::Bounded(10..12), 10), None);
        assert_eq!(resolve(&GetRange::Offset(3), 10), Some(3..10));
        assert_eq!(resolve(&GetRange::Offset(10), 10), None);
        assert_eq!(resolve(&GetRange::Suffix(4), 10), Some(6..10));
        assert_eq!(resolve(&GetRange::Suffix(40), 10), Some(0..10));
        assert_eq!(resolve(&GetRange::Suffix(4), 0), None);
    }
}
