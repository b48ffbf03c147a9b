//! The registry's classifiers as annotation models. A signed-in page lists the models of the
//! user's teams (`GET /api/v1/models`), reads each version (`GET …/versions/{n}`) and keeps the
//! `classifier` ones. A version's stored files become a [`ModelEntry`] whose files download from
//! `GET /api/v1/models/{id}/versions/{n}/files/{path}` (the session cookie authenticates it) and
//! are checked and cached by SHA-256 like a manifest model's. The files are found the way the
//! CLI finds them in a model directory (what a fine-tune job registers): `config.json`, the
//! weights the version names, `token_dict.json` (or `token_dictionary.json`) and, when present,
//! `gene_medians.json`. A version the browser cannot run keeps its reason, shown on the page.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::engine::{unreadable_weights, weights_kind};
use crate::model_store::{FileRef, ModelEntry, RegistryInfo};

/// Where the API lives (same origin as the page).
pub const API: &str = "/api/v1";

/// Token dictionary names the CLI looks for beside a checkpoint, in its order.
pub const TOKEN_DICT_FILES: [&str; 2] = ["token_dict.json", "token_dictionary.json"];
/// Gene medians beside a checkpoint.
pub const MEDIANS_FILE: &str = "gene_medians.json";

/// A model (`GET /models`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct RegistryModel {
    /// Id (`mdl_...`).
    pub id: String,
    /// Name.
    pub name: String,
    /// Team name.
    pub team: String,
    /// Version numbers, ascending.
    pub versions: Vec<i64>,
    /// Alias → version number.
    pub aliases: BTreeMap<String, i64>,
}

/// One stored file of a version.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct VersionFile {
    /// Path relative to the model directory.
    pub path: String,
    /// SHA-256 (hex).
    pub sha256: String,
    /// Size in bytes.
    pub size_bytes: u64,
}

/// A model version (`GET /models/{id}/versions/{n}`), the fields used here.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct ModelVersion {
    /// Id (`ver_...`).
    pub id: String,
    /// Model id.
    pub model_id: String,
    /// Version number.
    pub version: i64,
    /// `masked_lm` or `classifier`.
    pub kind: String,
    /// The weights file the server validated.
    pub weights_file: String,
    /// Aliases pointing here.
    pub aliases: Vec<String>,
    /// Stored files.
    pub files: Vec<VersionFile>,
}

/// A registry classifier version in the model list: runnable (`entry`), or not, with why.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryChoice {
    /// Which version.
    pub info: RegistryInfo,
    /// The model entry, or why the browser cannot run this version.
    pub entry: Result<ModelEntry, String>,
}

impl RegistryChoice {
    /// The option value in the model list.
    pub fn id(&self) -> String {
        choice_id(&self.info.model_id, self.info.version)
    }

    /// `name v3 (latest, production)`.
    pub fn label(&self) -> String {
        let i = &self.info;
        if i.aliases.is_empty() {
            format!("{} v{}", i.model_name, i.version)
        } else {
            format!("{} v{} ({})", i.model_name, i.version, i.aliases.join(", "))
        }
    }
}

/// The option value of a registry version.
pub fn choice_id(model_id: &str, version: i64) -> String {
    format!("registry:{model_id}:{version}")
}

/// A path segment, percent-encoded (stored paths may hold any character but `/` separates).
fn encode_path(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            let mut out = String::new();
            for b in seg.bytes() {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    out.push(b as char);
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            out
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The download URL of one file of a version (by number: versions are immutable, aliases move).
pub fn file_url(model_id: &str, version: i64, path: &str) -> String {
    format!(
        "{API}/models/{}/versions/{version}/files/{}",
        encode_path(model_id),
        encode_path(path)
    )
}

/// The weights file the browser reads for `v`: the one the server validated when the browser
/// reads its format, else a `model.safetensors` stored beside it (an official directory with
/// both files); otherwise why none can be read.
fn browser_weights(v: &ModelVersion) -> Result<&VersionFile, String> {
    let find = |p: &str| v.files.iter().find(|f| f.path == p);
    if weights_kind(&v.weights_file).is_some()
        && let Some(f) = find(&v.weights_file)
    {
        return Ok(f);
    }
    if let Some(f) = find("model.safetensors") {
        return Ok(f);
    }
    let name = if v.weights_file.is_empty() {
        "(none listed)"
    } else {
        v.weights_file.as_str()
    };
    Err(unreadable_weights(name))
}

/// The [`RegistryChoice`] of version `v` of model `m`.
pub fn choice_from_version(m: &RegistryModel, v: &ModelVersion) -> RegistryChoice {
    let info = RegistryInfo {
        model_id: m.id.clone(),
        model_name: m.name.clone(),
        version: v.version,
        version_id: v.id.clone(),
        aliases: v.aliases.clone(),
        team: m.team.clone(),
    };
    let entry = entry_from_version(m, v, &info);
    RegistryChoice { info, entry }
}

fn entry_from_version(
    m: &RegistryModel,
    v: &ModelVersion,
    info: &RegistryInfo,
) -> Result<ModelEntry, String> {
    if v.kind != "classifier" {
        return Err(format!(
            "a `{}` model, not a cell-type classifier; fine-tune it first",
            v.kind
        ));
    }
    let file_ref = |f: &VersionFile| FileRef {
        url: file_url(&m.id, v.version, &f.path),
        sha256: f.sha256.clone(),
        size: f.size_bytes,
    };
    let find = |p: &str| v.files.iter().find(|f| f.path == p);
    let config = find("config.json").ok_or_else(|| {
        "the version has no config.json; import the whole model directory".to_string()
    })?;
    let weights = browser_weights(v)?;
    let token_dict = TOKEN_DICT_FILES
        .iter()
        .find_map(|p| find(p))
        .ok_or_else(|| {
            "the version has no token_dict.json, which tokenizing a file for it needs: import \
             the model directory with the token dictionary it was trained with beside \
             config.json (a fine-tune job stores it there)"
                .to_string()
        })?;
    let aliases = if v.aliases.is_empty() {
        String::new()
    } else {
        format!(", aliases {}", v.aliases.join(", "))
    };
    Ok(ModelEntry {
        id: choice_id(&m.id, v.version),
        name: format!("{} v{}", m.name, v.version),
        description: format!(
            "registry model `{}` version {}{aliases} (team {})",
            m.name, v.version, m.team
        ),
        config: file_ref(config),
        weights: file_ref(weights),
        token_dict: file_ref(token_dict),
        medians: find(MEDIANS_FILE).map(file_ref),
        registry: Some(info.clone()),
    })
}

/// The classifier versions among `versions` (any order), newest version of each model first,
/// models by team and name.
pub fn classifier_choices(versions: &[(RegistryModel, ModelVersion)]) -> Vec<RegistryChoice> {
    let mut out: Vec<RegistryChoice> = versions
        .iter()
        .filter(|(_, v)| v.kind == "classifier")
        .map(|(m, v)| choice_from_version(m, v))
        .collect();
    out.sort_by(|a, b| {
        (&a.info.team, &a.info.model_name, -a.info.version).cmp(&(
            &b.info.team,
            &b.info.model_name,
            -b.info.version,
        ))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn model() -> RegistryModel {
        serde_json::from_value(json!({
            "id": "mdl_1", "team_id": "t", "team": "lab", "name": "baron-finetune",
            "created_at": 1, "versions": [1, 2], "aliases": {"latest": 2, "production": 2}
        }))
        .unwrap()
    }

    /// A version as the server returns it for a fine-tune job's model directory.
    fn finetuned() -> ModelVersion {
        serde_json::from_value(json!({
            "id": "ver_2", "model_id": "mdl_1", "version": 2, "kind": "classifier",
            "config": {"hidden_size": 32}, "weights_file": "model.bpk", "tensor_count": 0,
            "source_path": "/data/jobs/job_1/run/model", "created_by": "ed", "created_at": 5,
            "aliases": ["latest", "production"], "priors": null,
            "files": [
                {"path": "config.json", "sha256": "c0", "size_bytes": 900},
                {"path": "gene_medians.json", "sha256": "d0", "size_bytes": 40},
                {"path": "genecompass.json", "sha256": "e0", "size_bytes": 120},
                {"path": "model.bpk", "sha256": "b0", "size_bytes": 70000},
                {"path": "token_dict.json", "sha256": "a0", "size_bytes": 800}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn a_fine_tuned_version_becomes_a_model_entry() {
        let c = choice_from_version(&model(), &finetuned());
        assert_eq!(c.id(), "registry:mdl_1:2");
        assert_eq!(c.label(), "baron-finetune v2 (latest, production)");
        assert_eq!(c.info.version_id, "ver_2");
        assert_eq!(c.info.team, "lab");
        let e = c.entry.clone().expect("runnable");
        assert_eq!(e.id, c.id());
        assert_eq!(
            e.weights.url,
            "/api/v1/models/mdl_1/versions/2/files/model.bpk"
        );
        assert_eq!((e.weights.sha256.as_str(), e.weights.size), ("b0", 70000));
        assert_eq!(e.config.sha256, "c0");
        assert_eq!(
            e.token_dict.url,
            "/api/v1/models/mdl_1/versions/2/files/token_dict.json"
        );
        assert_eq!(e.medians.as_ref().map(|m| m.sha256.as_str()), Some("d0"));
        assert_eq!(e.registry.as_ref(), Some(&c.info));
        assert!(e.description.contains("aliases latest, production"));
    }

    #[test]
    fn official_directories_use_safetensors_and_bin_only_ones_say_why_not() {
        let mut v = finetuned();
        v.weights_file = "pytorch_model.bin".into();
        v.files = vec![
            VersionFile {
                path: "config.json".into(),
                sha256: "c".into(),
                size_bytes: 1,
            },
            VersionFile {
                path: "pytorch_model.bin".into(),
                sha256: "p".into(),
                size_bytes: 2,
            },
            VersionFile {
                path: "token_dictionary.json".into(),
                sha256: "t".into(),
                size_bytes: 3,
            },
        ];
        let e = choice_from_version(&model(), &v)
            .entry
            .expect_err("bin only");
        assert!(
            e.contains("pytorch_model.bin") && e.contains("genecompass-train convert"),
            "{e}"
        );
        v.files.push(VersionFile {
            path: "model.safetensors".into(),
            sha256: "s".into(),
            size_bytes: 4,
        });
        let e = choice_from_version(&model(), &v)
            .entry
            .expect("safetensors beside");
        assert_eq!(e.weights.sha256, "s");
        assert_eq!(
            e.token_dict.sha256, "t",
            "token_dictionary.json is accepted"
        );
        assert!(e.medians.is_none());
    }

    #[test]
    fn versions_without_a_dictionary_or_not_classifiers_are_explained() {
        let mut v = finetuned();
        v.files.retain(|f| f.path != "token_dict.json");
        let e = choice_from_version(&model(), &v)
            .entry
            .expect_err("no dict");
        assert!(e.contains("no token_dict.json"), "{e}");
        let mut mlm = finetuned();
        mlm.kind = "masked_lm".into();
        assert!(
            choice_from_version(&model(), &mlm)
                .entry
                .expect_err("mlm")
                .contains("not a cell-type classifier")
        );
        // Only classifiers are listed, newest first.
        let mut v1 = finetuned();
        v1.version = 1;
        v1.aliases.clear();
        let list = classifier_choices(&[(model(), v1), (model(), mlm), (model(), finetuned())]);
        let labels: Vec<_> = list.iter().map(RegistryChoice::label).collect();
        assert_eq!(
            labels,
            [
                "baron-finetune v2 (latest, production)",
                "baron-finetune v1"
            ]
        );
    }

    #[test]
    fn file_urls_are_encoded() {
        assert_eq!(
            file_url("mdl_1", 3, "sub dir/a#b.json"),
            "/api/v1/models/mdl_1/versions/3/files/sub%20dir/a%23b.json"
        );
    }
}
