//! `fetch` helpers for the page: bytes, and JSON with an optional bearer token. Errors are
//! strings ready for the page, naming the URL and the server's own message.

use serde::Serialize;
use serde::de::DeserializeOwned;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, Request, RequestInit, Response};

fn js_err(what: &str, e: wasm_bindgen::JsValue) -> String {
    let text = e
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"));
    format!("{what}: {text}")
}

async fn send(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<String>,
) -> Result<Response, String> {
    let init = RequestInit::new();
    init.set_method(method);
    let headers = Headers::new().map_err(|e| js_err("headers", e))?;
    if let Some(t) = token {
        let _ = headers.set("Authorization", &format!("Bearer {t}"));
    }
    if let Some(b) = body {
        let _ = headers.set("Content-Type", "application/json");
        init.set_body(&wasm_bindgen::JsValue::from_str(&b));
    }
    init.set_headers(&headers);
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

/// The error message of a failed response: the API's `{"error": {"message"}}` when present.
async fn failure(resp: &Response, url: &str) -> String {
    let body = text(resp, url).await.unwrap_or_default();
    let msg = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("message"))
                .and_then(|m| m.as_str().map(str::to_string))
        })
        .unwrap_or(body);
    format!("{url}: HTTP {} {msg}", resp.status())
}

/// GET a file's bytes.
pub async fn get_bytes(url: &str) -> Result<Vec<u8>, String> {
    let resp = send("GET", url, None, None).await?;
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
            Some(serde_json::to_string(b).map_err(|e| e.to_string())?),
        ),
        None => ("GET", None),
    };
    let resp = send(method, url, token, body).await?;
    if !resp.ok() {
        return Err(failure(&resp, url).await);
    }
    let t = text(&resp, url).await?;
    serde_json::from_str(&t).map_err(|e| format!("{url}: unexpected reply: {e}"))
}
