//! The registry API as the page uses it: typed views of the JSON it shows or acts on, and the
//! small formatting helpers the tables share (pure, unit-tested natively).

use serde::Deserialize;
use serde_json::Value;

/// Where the API lives (same origin as the page).
pub const API: &str = "/api/v1";

/// One team of the signed-in user (`GET /me`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Membership {
    /// Team id.
    pub team_id: String,
    /// Team name.
    pub team_name: String,
    /// `viewer`, `editor` or `admin`.
    pub role: String,
}

impl Membership {
    /// Editors and admins may upload and launch jobs.
    pub fn can_edit(&self) -> bool {
        matches!(self.role.as_str(), "editor" | "admin")
    }
}

/// A per-cell metadata column of a dataset.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct ObsColumn {
    /// Column name.
    pub name: String,
    /// `text` or `number`.
    pub kind: String,
    /// Distinct values of a text column.
    pub distinct: Option<u64>,
}

/// A dataset (`GET /datasets`), the fields the forms need.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct Dataset {
    /// Id (`ds_...`).
    pub id: String,
    /// Name.
    pub name: String,
    /// Team name.
    pub team: String,
    /// Cells.
    pub n_cells: u64,
    /// Genes.
    pub n_genes: u64,
    /// Metadata columns.
    pub obs_columns: Vec<ObsColumn>,
}

impl Dataset {
    /// Columns that can be labels (text columns).
    pub fn label_columns(&self) -> Vec<&ObsColumn> {
        self.obs_columns
            .iter()
            .filter(|c| c.kind == "text")
            .collect()
    }

    /// The label column to offer first: `cell_type` when present, else the first text column.
    pub fn default_label(&self) -> Option<String> {
        let cols = self.label_columns();
        cols.iter()
            .find(|c| c.name == "cell_type")
            .or(cols.first())
            .map(|c| c.name.clone())
    }
}

/// A model (`GET /models`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct Model {
    /// Id (`mdl_...`).
    pub id: String,
    /// Name.
    pub name: String,
    /// Team name.
    pub team: String,
    /// Version numbers.
    pub versions: Vec<i64>,
}

/// A job (`GET /jobs`, and the `state` events).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct Job {
    /// Id (`job_...`).
    pub id: String,
    /// Team name.
    pub team: String,
    /// `finetune`, `pretrain`, ...
    pub kind: String,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub state: String,
    /// Parameters with defaults.
    pub params: Value,
    /// Fraction done.
    pub progress: f64,
    /// The latest step event.
    pub last_event: Option<Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// Input dataset id.
    pub dataset_id: Option<String>,
    /// Model version produced.
    pub model_version_id: Option<String>,
    /// Whether a cancel was asked for.
    pub cancel_requested: bool,
    /// Creator.
    pub created_by: String,
    /// Creation time (Unix seconds).
    pub created_at: i64,
}

/// Whether a job in `state` will not change any more.
pub fn is_terminal(state: &str) -> bool {
    matches!(state, "succeeded" | "failed" | "cancelled")
}

impl Job {
    /// Succeeded, failed or cancelled.
    pub fn is_terminal(&self) -> bool {
        is_terminal(&self.state)
    }

    /// The name of the model the job registers (fine-tune and pretrain).
    pub fn model_name(&self) -> Option<&str> {
        self.params["model_name"].as_str()
    }
}

/// A list from the API, keeping the rows that parse.
pub fn parse_list<T: serde::de::DeserializeOwned>(rows: &[Value]) -> Vec<T> {
    rows.iter()
        .filter_map(|r| serde_json::from_value(r.clone()).ok())
        .collect()
}

/// `n` bytes for people: `512 B`, `3.4 MiB`.
pub fn format_bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n.max(0.0);
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM UTC`.
pub fn format_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// A metric for people: 3 decimals, or scientific notation for tiny values.
pub fn format_metric(v: f64) -> String {
    if v != 0.0 && v.abs() < 1e-3 {
        format!("{v:.2e}")
    } else {
        format!("{v:.3}")
    }
}

/// A query-string value, percent-encoded (names are `[A-Za-z0-9._-]`, team names may not be).
pub fn encode_query(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn datasets_offer_text_columns_with_cell_type_first() {
        let d: Dataset = serde_json::from_value(json!({
            "id": "ds_1", "name": "baron", "team": "lab", "n_cells": 822, "n_genes": 14878,
            "obs_columns": [
                {"name": "donor", "kind": "text", "distinct": 4},
                {"name": "n_counts", "kind": "number", "distinct": null},
                {"name": "cell_type", "kind": "text", "distinct": 13}
            ],
            "sha256": "ignored"
        }))
        .unwrap();
        let names: Vec<_> = d.label_columns().iter().map(|c| c.name.clone()).collect();
        assert_eq!(names, ["donor", "cell_type"]);
        assert_eq!(d.default_label().as_deref(), Some("cell_type"));
        let no_ct = Dataset {
            obs_columns: vec![ObsColumn {
                name: "x".into(),
                kind: "text".into(),
                distinct: Some(2),
            }],
            ..Dataset::default()
        };
        assert_eq!(no_ct.default_label().as_deref(), Some("x"));
        assert_eq!(Dataset::default().default_label(), None);
    }

    #[test]
    fn jobs_parse_with_missing_fields_and_know_their_end() {
        let rows = vec![
            json!({"id": "job_1", "kind": "finetune", "state": "running",
                   "params": {"model_name": "baron-finetune"}, "created_at": 5}),
            json!("not a job"),
        ];
        let jobs: Vec<Job> = parse_list(&rows);
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].model_name(), Some("baron-finetune"));
        assert!(!jobs[0].is_terminal());
        assert!(is_terminal("cancelled") && is_terminal("failed") && !is_terminal("queued"));
    }

    #[test]
    fn formats() {
        assert_eq!(format_bytes(512.0), "512 B");
        assert_eq!(format_bytes(3_595_061.0), "3.4 MiB");
        assert_eq!(format_bytes(8.0 * 1024.0 * 1024.0 * 1024.0), "8.0 GiB");
        assert_eq!(format_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_time(1_795_671_961), "2026-11-26 05:46 UTC");
        assert_eq!(format_time(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(format_metric(0.41104), "0.411");
        assert_eq!(format_metric(0.00005), "5.00e-5");
        assert_eq!(encode_query("lab a/b"), "lab%20a%2Fb");
        assert_eq!(encode_query("baron_822.v1-x"), "baron_822.v1-x");
    }

    #[test]
    fn editors_and_admins_can_edit() {
        let m = |role: &str| Membership {
            team_id: "t".into(),
            team_name: "lab".into(),
            role: role.into(),
        };
        assert!(m("editor").can_edit() && m("admin").can_edit() && !m("viewer").can_edit());
    }
}
