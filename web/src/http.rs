//! `fetch` helpers for the page: bytes, and JSON with an optional bearer token. Errors are
//! strings ready for the page, naming the URL and the server's own message.
//!
//! [`call`] is the general form (any method, JSON or raw bytes, extra headers) that answers
//! with the status and body of any HTTP reply, so callers can act on 409 or 413 themselves;
//! only a failure to reach the server is an `Err`.

use serde::Serialize;
use serde::de::DeserializeOwned;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, Headers, Request, RequestInit, Response};

pub(crate) fn js_err(what: &str, e: wasm_bindgen::JsValue) -> String {
    let text = e
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"));
    format!("{what}: {text}")
}

/// What a request sends.
pub enum Body {
    /// Nothing.
    Empty,
    /// JSON text (sent as `application/json`).
    Json(String),
    /// Raw bytes (sent as `application/octet-stream`).
    Bytes(js_sys::Uint8Array),
}

/// The token value meaning "signed in with the registry's session cookie": requests then carry
/// no `Authorization` header (the browser sends the HttpOnly cookie) and, on every method but
/// GET/HEAD, echo the `gc_csrf` cookie in `X-CSRF-Token`, as the server requires.
pub(crate) const SESSION: &str = "@session";

/// The CSRF cookie set at sign-in.
fn csrf_cookie() -> Option<String> {
    let doc: web_sys::HtmlDocument = web_sys::window()?.document()?.dyn_into().ok()?;
    let cookies = doc.cookie().ok()?;
    cookies
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| *k == "gc_csrf")
        .map(|(_, v)| v.to_string())
}

/// Sends a request; `Err` only when the server cannot be reached (or `signal` aborted it).
pub(crate) async fn send(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Body,
    extra_headers: &[(&str, &str)],
    signal: Option<&AbortSignal>,
) -> Result<Response, String> {
    let init = RequestInit::new();
    init.set_method(method);
    let headers = Headers::new().map_err(|e| js_err("headers", e))?;
    match token {
        Some(SESSION) => {
            if !matches!(method, "GET" | "HEAD")
                && let Some(c) = csrf_cookie()
            {
                let _ = headers.set("X-CSRF-Token", &c);
            }
        }
        Some(t) => {
            let _ = headers.set("Authorization", &format!("Bearer {t}"));
        }
        None => {}
    }
    match body {
        Body::Empty => {}
        Body::Json(b) => {
            let _ = headers.set("Content-Type", "application/json");
            init.set_body(&wasm_bindgen::JsValue::from_str(&b));
        }
        Body::Bytes(b) => {
            let _ = headers.set("Content-Type", "application/octet-stream");
            init.set_body(&b);
        }
    }
    for (k, v) in extra_headers {
        headers.set(k, v).map_err(|e| js_err(k, e))?;
    }
    init.set_headers(&headers);
    if let Some(s) = signal {
        init.set_signal(Some(s));
    }
    let req = Request::new_with_str_and_init(url, &init).map_err(|e| js_err(url, e))?;
    let window = web_sys::window().ok_or("no window")?;
    let resp = JsFuture::from(window.fetch_with_request(&req))
        .await
        .map_err(|e| js_err(&format!("cannot reach {url}"), e))?;
    Ok(resp.unchecked_into())
}

async fn text(resp: &Response, url: &str) -> Result<String, String> {
    let t = JsFuture::from(resp.text().map_err(|e| js_err(url, e))?)
        .await
        .map_err(|e| js_err(url, e))?;
    Ok(t.as_string().unwrap_or_default())
}

/// The API's `{"error": {"message"}}` (or `{"message"}`) of an error body, else the body.
pub fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("message"))
                .and_then(|m| m.as_str().map(str::to_string))
        })
        .unwrap_or_else(|| body.trim().to_string())
}

/// The error message of a failed response: the API's `{"error": {"message"}}` when present.
async fn failure(resp: &Response, url: &str) -> String {
    let body = text(resp, url).await.unwrap_or_default();
    format!("{url}: HTTP {} {}", resp.status(), error_message(&body))
}

/// A finished HTTP exchange.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body as text.
    pub text: String,
}

impl Reply {
    /// 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_str(&self.text).map_err(|e| format!("unexpected reply: {e}"))
    }

    /// The server's error message.
    pub fn message(&self) -> String {
        error_message(&self.text)
    }
}

/// Any request; answers every HTTP status, `Err` only when the server cannot be reached.
pub async fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Body,
    extra_headers: &[(&str, &str)],
) -> Result<Reply, String> {
    let resp = send(method, url, token, body, extra_headers, None).await?;
    let text = text(&resp, url).await?;
    Ok(Reply {
        status: resp.status(),
        text,
    })
}

/// GET a file's bytes.
pub async fn get_bytes(url: &str) -> Result<Vec<u8>, String> {
    let resp = send("GET", url, None, Body::Empty, &[], None).await?;
    if !resp.ok() {
        return Err(failure(&resp, url).await);
    }
    response_bytes(&resp, url).await
}

/// The body of a response as bytes.
pub async fn response_bytes(resp: &Response, url: &str) -> Result<Vec<u8>, String> {
    let buf = JsFuture::from(resp.array_buffer().map_err(|e| js_err(url, e))?)
        .await
        .map_err(|e| js_err(url, e))?;
    Ok(js_sys::Uint8Array::new(&buf).to_vec())
}

/// GET (or POST `body`) JSON.
pub async fn json<T: DeserializeOwned>(
    url: &str,
    token: Option<&str>,
    body: Option<&impl Serialize>,
) -> Result<T, String> {
    let (method, body) = match body {
        Some(b) => (
            "POST",
            Body::Json(serde_json::to_string(b).map_err(|e| e.to_string())?),
        ),
        None => ("GET", Body::Empty),
    };
    let resp = send(method, url, token, body, &[], None).await?;
    if !resp.ok() {
        return Err(failure(&resp, url).await);
    }
    let t = text(&resp, url).await?;
    serde_json::from_str(&t).map_err(|e| format!("{url}: unexpected reply: {e}"))
}

/// Resolves after `ms` milliseconds (`setTimeout`).
pub async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = JsFuture::from(promise).await;
}

#[cfg(test)]
mod tests {
    use super::error_message;

    #[test]
    fn error_messages_come_from_the_api_shape_or_the_body() {
        assert_eq!(
            error_message(r#"{"error":{"code":"conflict","message":"name taken"}}"#),
            "name taken"
        );
        assert_eq!(error_message(r#"{"message":"x"}"#), "x");
        assert_eq!(error_message(" Bad Gateway \n"), "Bad Gateway");
    }
}
