//! Byte-level helpers for the text formats: gzip detection/decompression and line splitting.

use std::borrow::Cow;
use std::io::Read;

use super::DataError;
use super::csr::format_err;

/// The two magic bytes of a gzip stream.
pub(crate) const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Whether the bytes start a gzip stream.
pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
}

/// Decompresses gzip data (by magic bytes, not by name); other bytes are returned as they are.
/// A truncated or corrupt stream is an error rather than a silently short file.
pub(crate) fn maybe_gunzip<'a>(bytes: &'a [u8], name: &str) -> Result<Cow<'a, [u8]>, DataError> {
    if !is_gzip(bytes) {
        return Ok(Cow::Borrowed(bytes));
    }
    let mut out = Vec::with_capacity(bytes.len() * 4);
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| {
            format_err(
                name,
                format!(
                    "gzip data is truncated or corrupt ({e}); the download or upload was \
                     probably incomplete: fetch the file again"
                ),
            )
        })?;
    Ok(Cow::Owned(out))
}

/// The file as UTF-8 text.
pub(crate) fn as_text<'a>(bytes: &'a [u8], name: &str) -> Result<&'a str, DataError> {
    std::str::from_utf8(bytes).map_err(|e| {
        format_err(
            name,
            format!(
                "not a text file (invalid UTF-8 at byte {}); expected a tab- or comma-separated \
                 table, .mtx or .tsv",
                e.valid_up_to()
            ),
        )
    })
}

/// Non-empty lines, with `\r` stripped.
pub(crate) fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_roundtrip_and_truncation() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&b"hello\tworld\n".repeat(1000)).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(maybe_gunzip(&gz, "x").unwrap().len(), 12_000);
        assert_eq!(&*maybe_gunzip(b"plain", "x").unwrap(), b"plain");
        let err = maybe_gunzip(&gz[..gz.len() / 2], "x.gz")
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.gz") && err.contains("truncated"), "{err}");
    }
}
