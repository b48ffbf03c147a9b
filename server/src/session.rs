//! Cookie sessions for the web app, CSRF-safe.
//!
//! `POST /api/v1/auth/session` checks the password like `/auth/login` and answers with two
//! cookies: `gc_session` (the session's API token; `HttpOnly`, so page scripts never see it)
//! and `gc_csrf` (readable by the page). The CSRF token is derived from the session token
//! (SHA-256 of a fixed label and the token), so it needs no storage and cannot be guessed
//! without the session cookie. A request authenticated by the cookie that changes anything
//! (any method but GET, HEAD and OPTIONS) must echo it in `X-CSRF-Token`; another site can
//! make the browser send the cookie but cannot read `gc_csrf` to echo it. Bearer tokens (CLI,
//! scripts) are not cookies and need no CSRF token. `POST /api/v1/auth/logout` revokes the
//! session and clears both cookies.

use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method};
use sha2::{Digest, Sha256};

/// The session cookie (HttpOnly).
pub const SESSION_COOKIE: &str = "gc_session";
/// The CSRF cookie (readable by the page).
pub const CSRF_COOKIE: &str = "gc_csrf";
/// The header that must echo the CSRF token on unsafe requests.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Session lifetime (also the cookies' Max-Age): 12 hours.
pub const SESSION_SECS: i64 = 12 * 3600;

/// The CSRF token that goes with a session token.
pub fn csrf_for(session_token: &str) -> String {
    hex::encode(Sha256::digest(format!("genecompass-csrf\n{session_token}")))
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// Whether a method can change state (and so needs the CSRF token under cookie auth).
pub fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Constant-time string comparison (the CSRF check must not leak a prefix through timing).
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// `Set-Cookie` headers that open a session. `secure` adds `Secure` (behind HTTPS).
pub fn set_cookies(token: &str, secure: bool) -> [HeaderValue; 2] {
    let sec = if secure { "; Secure" } else { "" };
    let make = |s: String| HeaderValue::from_str(&s).expect("cookie is ASCII");
    [
        make(format!(
            "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECS}{sec}"
        )),
        make(format!(
            "{CSRF_COOKIE}={}; Path=/; SameSite=Strict; Max-Age={SESSION_SECS}{sec}",
            csrf_for(token)
        )),
    ]
}

/// `Set-Cookie` headers that end a session.
pub fn clear_cookies() -> [HeaderValue; 2] {
    [SESSION_COOKIE, CSRF_COOKIE].map(|n| {
        HeaderValue::from_str(&format!("{n}=; Path=/; Max-Age=0; SameSite=Strict")).expect("ASCII")
    })
}

/// Adds `Set-Cookie` headers to a response's headers.
pub fn append(headers: &mut HeaderMap, cookies: [HeaderValue; 2]) {
    for c in cookies {
        headers.append(SET_COOKIE, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_parse_and_csrf_is_bound_to_the_session() {
        let mut h = HeaderMap::new();
        h.append(
            COOKIE,
            HeaderValue::from_static("a=1; gc_session=abc; gc_csrf=zz"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "missing"), None);
        assert_ne!(csrf_for("abc"), csrf_for("abd"));
        assert_eq!(csrf_for("abc").len(), 64);
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
        assert!(is_unsafe(&Method::POST) && !is_unsafe(&Method::GET));
        let [s, c] = set_cookies("tok", true);
        let s = s.to_str().unwrap();
        assert!(s.contains("HttpOnly") && s.contains("SameSite=Strict") && s.contains("Secure"));
        assert!(
            !c.to_str().unwrap().contains("HttpOnly"),
            "the page must read the CSRF cookie"
        );
    }
}
