//! Server-sent events over `fetch`: `EventSource` cannot send the `Authorization` header the
//! API requires, so the page reads `GET /jobs/{id}/events` as a byte stream and parses the
//! `text/event-stream` format here ([`SseParser`], pure and unit-tested), then [`follow`]
//! feeds it from a `ReadableStream` reader until the stream ends or is aborted.

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, ReadableStreamDefaultReader, ReadableStreamReadResult};

use crate::http::{self, Body, js_err};

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field (`message` when absent).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// An incremental `text/event-stream` parser (the WHATWG rules: lines end in LF, CRLF or CR;
/// a blank line dispatches; `:` starts a comment; one space after the colon is dropped).
/// Bytes may arrive split anywhere, even inside a UTF-8 character.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    event: String,
    data: String,
    has_data: bool,
    after_cr: bool,
    started: bool,
}

impl SseParser {
    /// Feeds bytes; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' => self.end_line(&mut out),
                b'\r' => {
                    self.end_line(&mut out);
                    self.after_cr = true;
                }
                _ => self.line.push(b),
            }
        }
        out
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let mut raw = std::mem::take(&mut self.line);
        if !self.started {
            self.started = true;
            if raw.starts_with(&[0xEF, 0xBB, 0xBF]) {
                raw.drain(..3);
            }
        }
        let line = String::from_utf8_lossy(&raw);
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            _ => {} // `id`, `retry` and unknown fields: the page does not reconnect by id.
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = std::mem::take(&mut self.event);
        let mut data = std::mem::take(&mut self.data);
        if !std::mem::take(&mut self.has_data) {
            return;
        }
        data.pop();
        out.push(SseEvent {
            event: if event.is_empty() {
                "message".into()
            } else {
                event
            },
            data,
        });
    }
}

/// Why a stream stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamError {
    /// The server answered with an error status (no point retrying 401/403/404).
    Http(u16, String),
    /// The connection failed or dropped.
    Network(String),
}

/// Reads the event stream at `url` until it ends (`Ok`) or fails; `on_event` gets each event.
/// Aborting `signal` ends it with a network error.
pub async fn follow(
    url: &str,
    token: &str,
    signal: &AbortSignal,
    mut on_event: impl FnMut(SseEvent),
) -> Result<(), StreamError> {
    let resp = http::send(
        "GET",
        url,
        Some(token),
        Body::Empty,
        &[("Accept", "text/event-stream")],
        Some(signal),
    )
    .await
    .map_err(StreamError::Network)?;
    if !resp.ok() {
        let text = match resp.text() {
            Ok(p) => JsFuture::from(p)
                .await
                .ok()
                .and_then(|t| t.as_string())
                .unwrap_or_default(),
            Err(_) => String::new(),
        };
        return Err(StreamError::Http(resp.status(), http::error_message(&text)));
    }
    let body = resp
        .body()
        .ok_or_else(|| StreamError::Network(format!("{url}: the reply has no body")))?;
    let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let mut parser = SseParser::default();
    loop {
        let next = JsFuture::from(reader.read())
            .await
            .map_err(|e| StreamError::Network(js_err(url, e)))?;
        let next: ReadableStreamReadResult = next.unchecked_into();
        if next.get_done().unwrap_or(false) {
            return Ok(());
        }
        let chunk = js_sys::Uint8Array::new(&next.get_value()).to_vec();
        for ev in parser.push(&chunk) {
            on_event(ev);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
        }
    }

    #[test]
    fn parses_what_axum_sends() {
        let text = "event: state\ndata: {\"state\":\"queued\"}\n\n:\n\nevent: progress\n\
                    data: {\"step\":1,\"total_steps\":36,\"loss\":2.5}\n\n";
        let mut p = SseParser::default();
        assert_eq!(
            p.push(text.as_bytes()),
            vec![
                ev("state", r#"{"state":"queued"}"#),
                ev("progress", r#"{"step":1,"total_steps":36,"loss":2.5}"#)
            ]
        );
    }

    #[test]
    fn events_split_anywhere_even_inside_characters() {
        let text = "event: eval\ndata: {\"label\":\"β-cell\"}\n\nevent: state\ndata: x\n\n";
        let bytes = text.as_bytes();
        for cut in 0..bytes.len() {
            let mut p = SseParser::default();
            let mut got = p.push(&bytes[..cut]);
            got.extend(p.push(&bytes[cut..]));
            assert_eq!(
                got,
                vec![ev("eval", r#"{"label":"β-cell"}"#), ev("state", "x")],
                "cut at {cut}"
            );
        }
        // One byte at a time.
        let mut p = SseParser::default();
        let got: Vec<_> = bytes.iter().flat_map(|b| p.push(&[*b])).collect();
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn line_endings_multi_line_data_comments_and_defaults() {
        let mut p = SseParser::default();
        let got =
            p.push(b"\xEF\xBB\xBFdata:a\r\ndata: b\r\rid: 7\nretry: 10\n: keep-alive\ndata\n\n");
        assert_eq!(got, vec![ev("message", "a\nb"), ev("message", "")]);
        // An event name without data dispatches nothing and does not leak into the next one.
        let got = p.push(b"event: lonely\n\ndata: z\n\n");
        assert_eq!(got, vec![ev("message", "z")]);
        // A trailing CR followed later by LF is one line end.
        let mut p = SseParser::default();
        assert!(p.push(b"data: q\r").is_empty());
        assert_eq!(p.push(b"\n\r\n"), vec![ev("message", "q")]);
        // An incomplete event stays pending.
        assert!(p.push(b"event: x\ndata: y\n").is_empty());
        assert_eq!(p.push(b"\n"), vec![ev("x", "y")]);
    }
}
