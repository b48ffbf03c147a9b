//! Where classifiers come from: a manifest (`models/index.json` beside the page by default)
//! lists each model's files with their SHA-256, and the registry's classifier versions list
//! theirs ([`crate::registry_models`]). Files are fetched once, checked against that hash, and
//! kept in the browser's Cache API under the hash, so a model is downloaded once per browser
//! whatever URL serves it (a file shared by a manifest model and a registry version too), and a
//! changed file is never mistaken for a cached one.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Cache, Response};

use crate::engine::ModelFiles;
use crate::http;

/// Cache API bucket; bump the suffix if the stored layout ever changes.
const CACHE_NAME: &str = "genecompass-models-v1";

/// The model list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Models, in display order.
    pub models: Vec<ModelEntry>,
}

/// One classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEntry {
    /// Stable id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// One line about it.
    #[serde(default)]
    pub description: String,
    /// `config.json`.
    pub config: FileRef,
    /// `model.safetensors`.
    pub weights: FileRef,
    /// Token dictionary (`.json` or `.pickle`).
    pub token_dict: FileRef,
    /// Gene medians, if the model was trained with some.
    #[serde(default)]
    pub medians: Option<FileRef>,
    /// Set for a registry model version (never in a manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistryInfo>,
}

/// Which registry version a model entry is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistryInfo {
    /// Model id (`mdl_...`).
    pub model_id: String,
    /// Model name.
    pub model_name: String,
    /// Version number.
    pub version: i64,
    /// Version id (`ver_...`), what results are recorded against.
    pub version_id: String,
    /// Aliases pointing at this version.
    pub aliases: Vec<String>,
    /// Owning team name.
    pub team: String,
}

fn file_name(url: &str, default: &str) -> String {
    url.rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or(default)
        .to_string()
}

/// A file of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileRef {
    /// URL, relative to the manifest.
    pub url: String,
    /// SHA-256 (hex) of the content.
    pub sha256: String,
    /// Size in bytes (for display).
    #[serde(default)]
    pub size: u64,
}

/// SHA-256 as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// SHA-256 of a file read on demand, as lower-case hex, 4 MiB at a time.
pub fn sha256_hex_source(
    source: &dyn genecompass_core::data::ByteSource,
) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 4 << 20];
    let mut at = 0u64;
    while at < source.len() {
        let n = (source.len() - at).min(buf.len() as u64) as usize;
        source.read_at(at, &mut buf[..n])?;
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn absolute(url: &str, base: &str) -> String {
    web_sys::Url::new_with_base(url, base)
        .map(|u| u.href())
        .unwrap_or_else(|_| url.to_string())
}

/// Fetches the manifest at `url` (relative to the page) and makes file URLs absolute.
pub async fn load_manifest(url: &str) -> Result<Vec<ModelEntry>, String> {
    let page = web_sys::window()
        .and_then(|w| w.location().href().ok())
        .unwrap_or_default();
    let url = absolute(url, &page);
    let mut m: Manifest = http::json(&url, None, None::<&()>).await?;
    for e in &mut m.models {
        for f in [&mut e.config, &mut e.weights, &mut e.token_dict]
            .into_iter()
            .chain(e.medians.as_mut())
        {
            f.url = absolute(&f.url, &url);
        }
    }
    Ok(m.models)
}

async fn open_cache() -> Option<Cache> {
    // No Cache API (e.g. a non-secure origin): fetch every time.
    let caches = web_sys::window()?.caches().ok()?;
    JsFuture::from(caches.open(CACHE_NAME))
        .await
        .ok()
        .map(JsCast::unchecked_into)
}

fn cache_key(sha: &str) -> String {
    format!("/genecompass-cache/sha256/{sha}")
}

/// One file: from the cache when its hash is there, else downloaded, checked and cached.
/// Returns the bytes and whether they came from the cache.
async fn fetch_file(f: &FileRef, cache: Option<&Cache>) -> Result<(Vec<u8>, bool), String> {
    let key = cache_key(&f.sha256);
    if let Some(c) = cache
        && let Ok(hit) = JsFuture::from(c.match_with_str(&key)).await
        && let Ok(resp) = hit.dyn_into::<Response>()
    {
        let bytes = http::response_bytes(&resp, &key).await?;
        if sha256_hex(&bytes) == f.sha256 {
            return Ok((bytes, true));
        }
        // A damaged entry: drop it and download again.
        let _ = c.delete_with_str(&key);
    }
    let mut bytes = http::get_bytes(&f.url).await?;
    let got = sha256_hex(&bytes);
    if got != f.sha256 {
        return Err(format!(
            "{}: downloaded file has SHA-256 {got}, the model list says {}; the server's copy \
             changed or is damaged",
            f.url, f.sha256
        ));
    }
    if let Some(c) = cache
        && let Ok(resp) = Response::new_with_opt_u8_array(Some(&mut bytes))
    {
        // Storing can fail (quota); the run goes on without the cache.
        let _ = JsFuture::from(c.put_with_str(&key, &resp)).await;
    }
    Ok((bytes, false))
}

/// A model's files and whether all came from the browser cache.
pub struct FetchedModel {
    /// The files.
    pub files: ModelFiles,
    /// True when nothing was downloaded.
    pub from_cache: bool,
    /// Bytes downloaded (0 when all came from the cache).
    pub downloaded: u64,
}

/// Fetches every file of `entry` (see the module docs).
pub async fn fetch_model(entry: &ModelEntry) -> Result<FetchedModel, String> {
    let cache = open_cache().await;
    let c = cache.as_ref();
    let (mut downloaded, mut all_cached) = (0u64, true);
    let mut got = |(bytes, hit): (Vec<u8>, bool)| {
        if !hit {
            downloaded += bytes.len() as u64;
            all_cached = false;
        }
        bytes
    };
    let config_json = got(fetch_file(&entry.config, c).await?);
    let weights = got(fetch_file(&entry.weights, c).await?);
    let token_dict = got(fetch_file(&entry.token_dict, c).await?);
    let medians = match &entry.medians {
        Some(f) => Some(got(fetch_file(f, c).await?)),
        None => None,
    };
    Ok(FetchedModel {
        files: ModelFiles {
            config_json,
            weights,
            weights_name: file_name(&entry.weights.url, "model.safetensors"),
            token_dict,
            token_dict_name: file_name(&entry.token_dict.url, "token_dict.json"),
            medians,
        },
        from_cache: all_cached,
        downloaded,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_parses_with_optional_fields() {
        let m: Manifest = serde_json::from_str(
            r#"{"models":[{"id":"t","name":"T",
                "config":{"url":"t/config.json","sha256":"aa"},
                "weights":{"url":"t/model.safetensors","sha256":"bb","size":10},
                "token_dict":{"url":"t/token_dict.json","sha256":"cc"}}]}"#,
        )
        .unwrap();
        assert_eq!(m.models[0].weights.size, 10);
        assert!(m.models[0].medians.is_none());
    }

    #[test]
    fn sha256_is_lower_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
