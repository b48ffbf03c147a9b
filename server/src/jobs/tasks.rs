//! Downstream-task jobs (`grn`, `fate`, `perturb`): their parameters, validated and resolved
//! at creation like those of [`super::params`] (a refused request changes nothing).
//!
//! Each runs a registered model of the team (any kind, as long as it has a token dictionary)
//! on a dataset of the team: the dataset is tokenized for the model, then the trainer command
//! of the same name runs on the cells (see [`super::command`]). `grn` and `fate` get the
//! server's TF → target table (`GENECOMPASS_TF_TARGETS`) as `--priors` when one is configured.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::JobKind;
use super::params::{
    Resolved, bad, check_text_column, find_dataset, find_version, has_vocab, parse, range,
};
use crate::app::AppState;
use crate::auth::Membership;
use crate::error::AppError;

/// TFs ranked by a `grn` job that names none: the `top_tfs` of the prior expressed in the
/// most cells.
pub const DEFAULT_TOP_TFS: u32 = 20;

/// Longest gene name or label value accepted.
const MAX_NAME_CHARS: usize = 200;
/// Most genes, TFs or label values in one list.
const MAX_LIST: usize = 10_000;

/// A version number or alias given as a JSON string or number.
fn version<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a version number or alias")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    d.deserialize_any(V)
}

/// `grn` parameters: rank each TF's targets by the shift its in-silico deletion causes, and
/// score the rankings against the TF → target prior.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrnParams {
    /// Model id or name of the team (with a token_dict.json).
    pub model: String,
    /// Version number or alias (default `latest`).
    #[serde(deserialize_with = "version")]
    pub version: String,
    /// Dataset id or name in the job's team.
    pub dataset: String,
    /// TFs to delete (Ensembl ids or symbols); empty: the `top_tfs` of the prior.
    pub tfs: Vec<String>,
    /// Without `tfs`: this many TFs of the prior, those expressed in the most cells (default 20).
    pub top_tfs: Option<u32>,
    /// Score the rankings against the server's TF → target table (default true).
    pub use_priors: bool,
    /// A candidate target must be expressed with the TF in at least this many cells.
    pub min_cells: u32,
    /// Genes per cell (8-4096).
    pub max_genes: u32,
    /// Cells per batch.
    pub batch_size: u32,
}

impl Default for GrnParams {
    fn default() -> Self {
        Self {
            model: String::new(),
            version: "latest".into(),
            dataset: String::new(),
            tfs: Vec::new(),
            top_tfs: None,
            use_priors: true,
            min_cells: 3,
            max_genes: 2048,
            batch_size: 16,
        }
    }
}

/// `fate` parameters: genes whose over-expression (or deletion) moves source cells toward a
/// target population.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FateParams {
    /// Model id or name of the team (with a token_dict.json).
    pub model: String,
    /// Version number or alias (default `latest`).
    #[serde(deserialize_with = "version")]
    pub version: String,
    /// Dataset id or name in the job's team.
    pub dataset: String,
    /// Text column of the dataset whose values `source` and `target` name.
    pub label_column: String,
    /// Label values of the source cells.
    pub source: Vec<String>,
    /// Label values of the target cells.
    pub target: Vec<String>,
    /// Genes to test; empty: the `candidates` genes that best mark the target.
    pub genes: Vec<String>,
    /// Marker genes tested when no genes are named (default 50).
    pub candidates: u32,
    /// `overexpress` (default) or `delete`.
    pub mode: String,
    /// Genes per cell (8-4096).
    pub max_genes: u32,
    /// Cells per batch.
    pub batch_size: u32,
}

impl Default for FateParams {
    fn default() -> Self {
        Self {
            model: String::new(),
            version: "latest".into(),
            dataset: String::new(),
            label_column: String::new(),
            source: Vec::new(),
            target: Vec::new(),
            genes: Vec::new(),
            candidates: 50,
            mode: "overexpress".into(),
            max_genes: 2048,
            batch_size: 16,
        }
    }
}

/// `perturb` parameters: delete or over-express genes in every cell and measure the shift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PerturbParams {
    /// Model id or name of the team (with a token_dict.json).
    pub model: String,
    /// Version number or alias (default `latest`).
    #[serde(deserialize_with = "version")]
    pub version: String,
    /// Dataset id or name in the job's team.
    pub dataset: String,
    /// Genes to perturb (Ensembl ids or symbols).
    pub genes: Vec<String>,
    /// `delete` (default) or `overexpress`.
    pub mode: String,
    /// Over-expression factor (default 10000, the official value).
    pub factor: f64,
    /// Perturb all the genes together in each cell instead of one at a time.
    pub joint: bool,
    /// Genes per cell (8-4096).
    pub max_genes: u32,
    /// Cells per batch.
    pub batch_size: u32,
}

impl Default for PerturbParams {
    fn default() -> Self {
        Self {
            model: String::new(),
            version: "latest".into(),
            dataset: String::new(),
            genes: Vec::new(),
            mode: "delete".into(),
            factor: 10_000.0,
            joint: false,
            max_genes: 2048,
            batch_size: 16,
        }
    }
}

/// Trims the names of list `field` and refuses empty ones, commas (the trainer splits its
/// lists on them), control characters and over-long names or lists.
fn check_names(field: &str, names: &mut [String]) -> Result<(), AppError> {
    if names.len() > MAX_LIST {
        return Err(bad(format!(
            "`{field}` has {} entries; at most {MAX_LIST} are accepted",
            names.len()
        )));
    }
    for n in names.iter_mut() {
        *n = n.trim().to_string();
        if n.is_empty() {
            return Err(bad(format!("`{field}` has an empty entry")));
        }
        if n.contains(',') || n.chars().any(char::is_control) {
            return Err(bad(format!(
                "`{field}` entry `{n}` contains a comma or a control character"
            )));
        }
        if n.chars().count() > MAX_NAME_CHARS {
            return Err(bad(format!(
                "`{field}` entry `{n}` is longer than {MAX_NAME_CHARS} characters"
            )));
        }
    }
    Ok(())
}

fn check_mode(mode: &str) -> Result<(), AppError> {
    if !["overexpress", "delete"].contains(&mode) {
        return Err(bad(format!("`mode` `{mode}`: use overexpress or delete")));
    }
    Ok(())
}

fn check_common(model: &str, max_genes: u32, batch_size: u32) -> Result<(), AppError> {
    range("max_genes", max_genes, 8, 4096)?;
    range("batch_size", batch_size, 1, 4096)?;
    if model.is_empty() {
        return Err(bad(
            "`model` is required (a model id or name of the team, with a token_dict.json)",
        ));
    }
    Ok(())
}

/// The server's TF → target table for a job that needs one: refuses the job when none is
/// configured (`why`: what the table is needed for) or the configured file is gone.
fn require_priors(state: &AppState, why: &str) -> Result<(), AppError> {
    match &state.config.jobs.tf_targets {
        None => Err(bad(format!(
            "{why}, but this server has no TF→target table: name the TFs in `tfs`, or have the \
             server started with GENECOMPASS_TF_TARGETS (or `genecompass serve --tf-targets`) \
             set to a TF→target TSV such as omnipath_transcriptional_tf_target.tsv.gz"
        ))),
        Some(p) if !p.is_file() => Err(AppError::Unavailable(format!(
            "the server's TF→target table {} (GENECOMPASS_TF_TARGETS) does not exist",
            p.display()
        ))),
        Some(_) => Ok(()),
    }
}

/// The model version a task runs: `(version id)`; it must resolve in the team and carry a
/// token dictionary.
async fn task_model(
    state: &AppState,
    team: &Membership,
    model: &str,
    version: &str,
) -> Result<String, AppError> {
    let (id, _, files) = find_version(state, team, model, version).await?;
    if !has_vocab(&files) {
        return Err(AppError::Unprocessable {
            code: "invalid_model",
            message: format!(
                "model `{model}` version `{version}` has no token_dict.json, so the cells \
                 cannot be tokenized for it"
            ),
        });
    }
    Ok(id)
}

fn done<T: Serialize>(p: &T, dataset_id: String, version_id: String) -> Result<Resolved, AppError> {
    Ok(Resolved {
        params: serde_json::to_value(p).map_err(AppError::internal)?,
        dataset_id,
        base_version_id: Some(version_id),
    })
}

/// Validates the parameters of a `grn`, `fate` or `perturb` job and resolves its dataset and
/// model version.
pub async fn resolve(
    state: &AppState,
    team: &Membership,
    kind: JobKind,
    params: Value,
) -> Result<Resolved, AppError> {
    match kind {
        JobKind::Grn => {
            let mut p: GrnParams = parse(kind, params)?;
            check_common(&p.model, p.max_genes, p.batch_size)?;
            range("min_cells", p.min_cells, 1, 1_000_000)?;
            check_names("tfs", &mut p.tfs)?;
            if p.tfs.is_empty() {
                let n = *p.top_tfs.get_or_insert(DEFAULT_TOP_TFS);
                range("top_tfs", n, 1, 10_000)?;
                if !p.use_priors {
                    return Err(bad(
                        "without `tfs` the TFs are the `top_tfs` of the TF→target table, which \
                         `use_priors: false` turns off: name the TFs in `tfs`",
                    ));
                }
                require_priors(
                    state,
                    "without `tfs` the TFs are taken from the TF→target table",
                )?;
            } else if p.top_tfs.is_some() {
                return Err(bad("give either `tfs` or `top_tfs`, not both"));
            }
            let (dataset_id, _, _) = find_dataset(state, team, &p.dataset).await?;
            let version_id = task_model(state, team, &p.model, &p.version).await?;
            p.dataset = dataset_id.clone();
            done(&p, dataset_id, version_id)
        }
        JobKind::Fate => {
            let mut p: FateParams = parse(kind, params)?;
            check_common(&p.model, p.max_genes, p.batch_size)?;
            range("candidates", p.candidates, 1, 10_000)?;
            check_mode(&p.mode)?;
            if p.label_column.is_empty() {
                return Err(bad(
                    "`label_column` is required: the text column of the dataset whose values \
                     `source` and `target` name",
                ));
            }
            for (field, list) in [("source", &mut p.source), ("target", &mut p.target)] {
                check_names(field, list)?;
                if list.is_empty() {
                    return Err(bad(format!(
                        "`{field}` is required: a non-empty list of `label_column` values"
                    )));
                }
            }
            if let Some(both) = p.source.iter().find(|s| p.target.contains(s)) {
                return Err(bad(format!(
                    "`{both}` is in both `source` and `target`; the populations must differ"
                )));
            }
            check_names("genes", &mut p.genes)?;
            let (dataset_id, dataset_name, obs) = find_dataset(state, team, &p.dataset).await?;
            check_text_column(&obs, &dataset_name, &p.label_column)?;
            let version_id = task_model(state, team, &p.model, &p.version).await?;
            p.dataset = dataset_id.clone();
            done(&p, dataset_id, version_id)
        }
        JobKind::Perturb => {
            let mut p: PerturbParams = parse(kind, params)?;
            check_common(&p.model, p.max_genes, p.batch_size)?;
            check_mode(&p.mode)?;
            if !p.factor.is_finite() || p.factor <= 0.0 || p.factor > 1e9 {
                return Err(bad(format!("`factor` = {} must be in (0, 1e9]", p.factor)));
            }
            check_names("genes", &mut p.genes)?;
            if p.genes.is_empty() {
                return Err(bad(
                    "`genes` is required: a non-empty list of genes to perturb (Ensembl ids or \
                     symbols)",
                ));
            }
            let (dataset_id, _, _) = find_dataset(state, team, &p.dataset).await?;
            let version_id = task_model(state, team, &p.model, &p.version).await?;
            p.dataset = dataset_id.clone();
            done(&p, dataset_id, version_id)
        }
        JobKind::Finetune | JobKind::Pretrain | JobKind::Annotate => Err(AppError::internal(
            format!("{} is not a downstream task", kind.as_str()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_strings_or_numbers() {
        let p: GrnParams = serde_json::from_value(serde_json::json!({ "version": 2 })).unwrap();
        assert_eq!(p.version, "2");
        let p: GrnParams =
            serde_json::from_value(serde_json::json!({ "version": "production" })).unwrap();
        assert_eq!(p.version, "production");
        let p: GrnParams = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(p.version, "latest");
        assert!(
            serde_json::from_value::<GrnParams>(serde_json::json!({ "version": [1] })).is_err()
        );
    }

    #[test]
    fn names_are_trimmed_and_checked() {
        let mut ok = vec![" MYC ".to_string(), "ENSG00000141510".into()];
        check_names("tfs", &mut ok).unwrap();
        assert_eq!(ok, ["MYC", "ENSG00000141510"]);
        for bad in ["", "  ", "A,B", "A\nB"] {
            assert!(
                check_names("tfs", &mut [bad.to_string()]).is_err(),
                "{bad:?}"
            );
        }
    }
}
