//! What a finished annotation gives back to the file it came from: each cell's file row (carried
//! through tokenization the way `genecompass-train classify` carries it, so repeated cell names
//! cannot mix cells up), the predictions laid out by row, the user's own label column for the
//! same cells, and the h5ad with `genecompass_label` / `genecompass_confidence` added to `obs`
//! by core's writer, exactly as `classify --write-h5ad` adds them. No browser APIs here.

use std::collections::BTreeSet;

pub use genecompass_core::data::RowTagged;
use genecompass_core::data::{
    CellTable, DataError, IfExists, ObsColumn, add_obs_columns_with, prediction_columns,
};

use crate::protocol::LabelColumn;

/// The text columns of a cell table that could hold cell types, with their distinct values
/// (missing values, read as empty strings, not counted).
pub fn label_columns(obs: &CellTable) -> Vec<LabelColumn> {
    obs.columns
        .iter()
        .filter_map(|(name, c)| match c {
            ObsColumn::Text(v) => Some(LabelColumn {
                name: name.clone(),
                distinct: v
                    .iter()
                    .filter(|s| !s.is_empty())
                    .collect::<BTreeSet<_>>()
                    .len(),
            }),
            ObsColumn::Number(_) => None,
        })
        .collect()
}

/// The values of text column `column` for the annotated cells (`rows[i]` is cell `i`'s file
/// row); empty strings are missing values.
pub fn truth_values(obs: &CellTable, column: &str, rows: &[usize]) -> Result<Vec<String>, String> {
    match obs.column(column) {
        Some(ObsColumn::Text(v)) => rows
            .iter()
            .map(|&r| {
                v.get(r)
                    .cloned()
                    .ok_or_else(|| format!("column `{column}` has no row {r}"))
            })
            .collect(),
        Some(ObsColumn::Number(_)) => Err(format!(
            "column `{column}` holds numbers, not labels; pick a text (categorical) column"
        )),
        None => Err(format!("the file has no obs column `{column}`")),
    }
}

/// What the CLI passes to core's writer: for each file row, the arg-max label and its
/// probability of the cell annotated from that row, `None` for rows the tokenizer dropped.
/// `predicted[i]` (label index, probability) belongs to file row `rows[i]`.
pub fn predictions_by_row<'a>(
    n_obs: usize,
    rows: &[usize],
    predicted: &[(usize, f32)],
    labels: &'a [String],
) -> Result<Vec<Option<(&'a str, f32)>>, String> {
    if rows.len() != predicted.len() {
        return Err(format!(
            "internal error: {} cells but {} predictions",
            rows.len(),
            predicted.len()
        ));
    }
    let mut by_row = vec![None; n_obs];
    for (&row, &(label, p)) in rows.iter().zip(predicted) {
        let slot = by_row
            .get_mut(row)
            .ok_or_else(|| format!("internal error: row {row} of a file with {n_obs} rows"))?;
        let name = labels
            .get(label)
            .ok_or_else(|| format!("internal error: label {label} of {}", labels.len()))?;
        *slot = Some((name.as_str(), p));
    }
    Ok(by_row)
}

/// The h5ad `file` (named `name` in messages) with the prediction columns added to `obs`, by
/// the same core function and columns as `genecompass-train classify --write-h5ad`
/// (`replace`: its `--replace-columns`).
pub fn labelled_h5ad(
    file: &[u8],
    name: &str,
    by_row: &[Option<(&str, f32)>],
    replace: bool,
) -> Result<Vec<u8>, DataError> {
    let if_exists = if replace {
        IfExists::Replace
    } else {
        IfExists::Fail
    };
    add_obs_columns_with(file, name, &prediction_columns(by_row), if_exists)
}

/// `name.h5ad` → `name_genecompass.h5ad`, the download's file name.
pub fn labelled_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let stem = base
        .strip_suffix(".h5ad")
        .or_else(|| base.strip_suffix(".H5AD"))
        .unwrap_or(base);
    format!("{stem}_genecompass.h5ad")
}

#[cfg(test)]
#[path = "annotated_tests.rs"]
mod tests;
