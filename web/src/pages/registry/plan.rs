//! The pure half of the upload: dataset names from file names, chunk ranges, what to do after
//! each chunk's reply, and the messages for the server's refusals. The browser half is in
//! [`super::upload`].

/// Default chunk size: 8 MiB.
pub const DEFAULT_CHUNK: u64 = 8 << 20;
/// Smallest chunk accepted from `?upload_chunk=` (tests use small chunks to send several).
pub const MIN_CHUNK: u64 = 64 << 10;
/// Largest chunk accepted from `?upload_chunk=`.
pub const MAX_CHUNK: u64 = 64 << 20;
/// Failed attempts in a row before the upload gives up.
pub const MAX_RETRIES: u32 = 5;
/// Longest dataset name the server accepts.
pub const MAX_NAME_LEN: usize = 128;

/// A valid dataset name from a file name: the name without its extension (and `.gz`), other
/// characters than `[A-Za-z0-9._-]` as `_`, no leading `.` or `-`, at most 128 characters.
pub fn dataset_name(file_name: &str) -> String {
    let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    let stem = base.strip_suffix(".gz").unwrap_or(base);
    let stem = stem.rsplit_once('.').map_or(stem, |(s, _)| s);
    let s: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s: String = s
        .trim_start_matches(['.', '-'])
        .chars()
        .take(MAX_NAME_LEN)
        .collect();
    if s.is_empty() { "dataset".into() } else { s }
}

/// Why a typed dataset name would be refused, in words; `None` when it is fine.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("Give the dataset a name.".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Some(format!(
            "The name has {} characters; use at most {MAX_NAME_LEN}.",
            name.len()
        ));
    }
    if name.starts_with(['.', '-']) {
        return Some("The name cannot start with `.` or `-`.".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c)))
    {
        return Some(format!(
            "The name cannot contain `{c}`: use letters, digits, `.`, `_` or `-`."
        ));
    }
    None
}

/// The chunk size from the page's query string (`?upload_chunk=BYTES`), clamped; the default
/// when absent or unreadable.
pub fn chunk_size_from_query(search: &str) -> u64 {
    search
        .trim_start_matches('?')
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "upload_chunk")
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .map_or(DEFAULT_CHUNK, |n| n.clamp(MIN_CHUNK, MAX_CHUNK))
}

/// The byte range `[start, end)` of the chunk that starts at `offset`, or `None` when the file
/// is complete.
pub fn chunk_range(offset: u64, size: u64, chunk: u64) -> Option<(u64, u64)> {
    (offset < size).then(|| (offset, size.min(offset + chunk.max(1))))
}

/// What to do after a `PATCH` of a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// It was stored: go on from this offset.
    Advance(u64),
    /// Ask the server where to resume (`GET /uploads/{id}`) and send from there.
    Resume(String),
    /// Stop with this message.
    Fail(String),
}

/// Decides after a chunk `[start, end)`: `reply` is `Err(network error)` or
/// `Ok((status, offset the reply reports, server message))`.
pub fn after_chunk(end: u64, reply: Result<(u16, Option<u64>, String), String>) -> Next {
    match reply {
        Err(e) => Next::Resume(format!("network error: {e}")),
        Ok((200..=299, offset, _)) => Next::Advance(offset.unwrap_or(end)),
        // 409: the offset was wrong (another tab, or a reply lost after the bytes arrived).
        // 400: the chunk was cut short (the server kept what arrived). Both: resume.
        Ok((409 | 400 | 408 | 429, _, m)) => Next::Resume(m),
        Ok((s, _, m)) if s >= 500 => Next::Resume(format!("HTTP {s}: {m}")),
        Ok((status, _, m)) => Next::Fail(refusal(status, &m)),
    }
}

/// The pause before retry `n` (1, 2, ...), in milliseconds: 0.5 s doubling, at most 8 s.
pub fn backoff_ms(n: u32) -> i32 {
    (500i32 << n.saturating_sub(1).min(4)).min(8_000)
}

/// A server refusal of an upload step, said so the user knows what to do.
pub fn refusal(status: u16, message: &str) -> String {
    match status {
        401 => format!("Your sign-in is no longer valid ({message}): sign out and sign in again."),
        403 => format!(
            "You may not upload to this team ({message}): ask a team admin for the editor role."
        ),
        404 => format!("The upload is gone from the server ({message}): start the upload again."),
        409 => format!("{message}. Choose another dataset name, or use the existing dataset."),
        413 => format!(
            "The file is too large for this server: {message}. Ask the administrator to raise \
             --max-upload-bytes, or upload a smaller file."
        ),
        422 => format!(
            "The server cannot read this file: {message}. Upload an h5ad, 10x .h5 or CSV/TSV \
             matrix of cells × genes."
        ),
        _ => format!("The server refused the upload (HTTP {status}): {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_file_names_are_valid() {
        assert_eq!(
            dataset_name("baron_mouse_pancreas_822.h5ad"),
            "baron_mouse_pancreas_822"
        );
        assert_eq!(dataset_name("counts.csv.gz"), "counts");
        assert_eq!(dataset_name("C:\\data\\my file (v2).tsv"), "my_file__v2_");
        assert_eq!(dataset_name("Zellen-ä.h5"), "Zellen-_");
        assert_eq!(dataset_name(".h5ad"), "dataset");
        assert_eq!(dataset_name("--x.h5ad"), "x");
        assert_eq!(dataset_name("noext"), "noext");
        assert_eq!(dataset_name(&"a".repeat(300)).len(), MAX_NAME_LEN);
        for n in ["baron_mouse_pancreas_822", "my_file__v2_", "dataset", "x"] {
            assert_eq!(name_problem(n), None, "{n}");
        }
        assert!(name_problem("").is_some());
        assert!(name_problem(".hidden").is_some());
        assert!(name_problem("a b").unwrap().contains("` `"));
        assert!(name_problem(&"a".repeat(129)).is_some());
    }

    #[test]
    fn chunk_size_comes_from_the_query_clamped() {
        assert_eq!(chunk_size_from_query(""), DEFAULT_CHUNK);
        assert_eq!(chunk_size_from_query("?upload_chunk=1048576"), 1 << 20);
        assert_eq!(chunk_size_from_query("?a=1&upload_chunk=1"), MIN_CHUNK);
        assert_eq!(
            chunk_size_from_query("?upload_chunk=999999999999"),
            MAX_CHUNK
        );
        assert_eq!(chunk_size_from_query("?upload_chunk=big"), DEFAULT_CHUNK);
    }

    #[test]
    fn chunks_cover_the_file_exactly() {
        let (size, chunk) = (3_595_061u64, 1u64 << 20);
        let mut offset = 0;
        let mut ranges = Vec::new();
        while let Some((s, e)) = chunk_range(offset, size, chunk) {
            ranges.push((s, e));
            offset = e;
        }
        assert_eq!(ranges.len(), 4);
        assert_eq!(ranges[0], (0, 1 << 20));
        assert_eq!(ranges[3], (3 << 20, size));
        assert_eq!(chunk_range(size, size, chunk), None);
        assert_eq!(chunk_range(0, 10, DEFAULT_CHUNK), Some((0, 10)));
    }

    #[test]
    fn replies_advance_resume_or_fail() {
        // Stored: the server's offset wins over the planned end.
        assert_eq!(
            after_chunk(100, Ok((200, Some(100), String::new()))),
            Next::Advance(100)
        );
        assert_eq!(
            after_chunk(100, Ok((200, None, String::new()))),
            Next::Advance(100)
        );
        // Lost connection, wrong offset, cut-short chunk, server trouble: ask and resume.
        assert!(
            matches!(after_chunk(100, Err("reset".into())), Next::Resume(m) if m.contains("reset"))
        );
        for s in [409, 400, 408, 429, 500, 503] {
            assert!(
                matches!(after_chunk(1, Ok((s, None, "m".into()))), Next::Resume(_)),
                "{s}"
            );
        }
        // Refusals stop with a message that says what to do.
        let Next::Fail(m) = after_chunk(1, Ok((413, None, "limited to 10 bytes".into()))) else {
            panic!()
        };
        assert!(m.contains("too large") && m.contains("limited to 10 bytes"));
        assert!(
            matches!(after_chunk(1, Ok((404, None, "x".into()))), Next::Fail(m) if m.contains("start the upload again"))
        );
        assert!(
            matches!(after_chunk(1, Ok((401, None, "x".into()))), Next::Fail(m) if m.contains("sign in again"))
        );
    }

    #[test]
    fn refusals_name_the_fix_and_backoff_grows() {
        assert!(refusal(422, "not HDF5").contains("cannot read this file: not HDF5"));
        assert!(refusal(409, "dataset `baron` exists").contains("another dataset name"));
        assert!(refusal(418, "teapot").contains("HTTP 418"));
        assert_eq!(
            (1..=7).map(backoff_ms).collect::<Vec<_>>(),
            [500, 1000, 2000, 4000, 8000, 8000, 8000]
        );
    }
}
