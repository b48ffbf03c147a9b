//! AnnData dataframes (`obs`, `var`, `raw/var`) in the three on-disk schemas seen in practice:
//! current (encoding attributes, categoricals as `codes`+`categories` groups), 0.7-era
//! (categories in an `__categories` subgroup) and pre-0.7 (one compound dataset, categories in
//! `uns/<column>_categories`).

use crate::data::DataError;
use crate::data::h5util::{Column, H5};

/// A decoded dataframe.
#[derive(Debug, Default)]
pub(crate) struct Frame {
    /// Row names (the dataframe index).
    pub index: Vec<String>,
    /// Columns in file order; categoricals resolved to their labels.
    pub columns: Vec<(String, Column)>,
    /// Columns that could not be read, with the reason (reported as warnings).
    pub skipped: Vec<String>,
}

impl Frame {
    /// The text values of a column, if it is one.
    pub fn text(&self, name: &str) -> Option<&Vec<String>> {
        self.columns.iter().find_map(|(n, c)| match c {
            Column::Text(v) if n == name => Some(v),
            _ => None,
        })
    }
}

/// Reads the dataframe at `path` (a group, or a legacy compound dataset) with `n` rows.
pub(crate) fn read_frame(h5: &H5, path: &str, n: usize) -> Result<Frame, DataError> {
    let mut frame = if h5.is_dataset(path)? {
        read_legacy(h5, path)?
    } else if h5.is_group(path)? {
        read_group(h5, path)?
    } else {
        // No dataframe at all: AnnData then uses 0..n as names.
        Frame {
            index: (0..n).map(|i| i.to_string()).collect(),
            ..Default::default()
        }
    };
    if frame.index.is_empty() && n > 0 {
        frame.index = (0..n).map(|i| i.to_string()).collect();
    }
    if frame.index.len() != n {
        return Err(h5.msg(format!(
            "`{path}` has {} rows but the matrix has {n} along that axis; the file is inconsistent",
            frame.index.len()
        )));
    }
    let mut kept = Vec::new();
    for (name, col) in std::mem::take(&mut frame.columns) {
        if col.len() == n {
            kept.push((name, col));
        } else {
            frame.skipped.push(format!(
                "`{path}/{name}` has {} values for {n} rows; column skipped",
                col.len()
            ));
        }
    }
    frame.columns = kept;
    Ok(frame)
}

/// Maps categorical codes to labels; code -1 (missing) becomes an empty string.
fn decode_codes(
    h5: &H5,
    field: &str,
    codes: &[i64],
    categories: &Column,
) -> Result<Column, DataError> {
    let labels: Vec<String> = match categories {
        Column::Text(v) => v.clone(),
        Column::Number(v) => v.iter().map(|x| number_label(*x)).collect(),
    };
    let mut out = Vec::with_capacity(codes.len());
    for &c in codes {
        if c < 0 {
            out.push(String::new());
        } else {
            let l = labels.get(c as usize).ok_or_else(|| {
                h5.msg(format!(
                    "`{field}`: category code {c} but only {} categories; the file is corrupt",
                    labels.len()
                ))
            })?;
            out.push(l.clone());
        }
    }
    Ok(Column::Text(out))
}

fn number_label(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        x.to_string()
    }
}

fn read_group(h5: &H5, path: &str) -> Result<Frame, DataError> {
    let (groups, datasets) = h5.children(path)?.unwrap_or_default();
    let index_name = h5
        .attr_str(path, "_index")?
        .filter(|n| datasets.contains(n))
        .or_else(|| {
            ["_index", "index"]
                .into_iter()
                .find(|n| datasets.iter().any(|d| d == n))
                .map(str::to_string)
        });
    let mut frame = Frame::default();
    if let Some(ix) = &index_name {
        frame.index = match h5.column(&format!("{path}/{ix}"))? {
            Some(Column::Text(v)) => v,
            Some(Column::Number(v)) => v.into_iter().map(number_label).collect(),
            None => return Err(h5.msg(format!("`{path}/{ix}` (the row names) is unreadable"))),
        };
    }
    let order = h5
        .attr_strings(path, "column-order")?
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            let mut all: Vec<String> = groups
                .iter()
                .chain(datasets.iter())
                .filter(|n| Some(*n) != index_name.as_ref() && *n != "__categories")
                .cloned()
                .collect();
            all.sort();
            all
        });
    let has_cats = groups.iter().any(|g| g == "__categories");
    for name in order {
        let field = format!("{path}/{name}");
        if groups.contains(&name) {
            match read_encoded_group(h5, &field)? {
                Ok(col) => frame.columns.push((name, col)),
                Err(why) => frame
                    .skipped
                    .push(format!("`{field}`: {why}; column skipped")),
            }
        } else if datasets.contains(&name) {
            let cats = format!("{path}/__categories/{name}");
            let col = if has_cats && h5.is_dataset(&cats)? {
                let codes = h5.i64s(&field)?;
                let categories = h5.column(&cats)?.unwrap_or(Column::Text(Vec::new()));
                Some(decode_codes(h5, &field, &codes, &categories)?)
            } else {
                h5.column(&field)?
            };
            match col {
                Some(c) => frame.columns.push((name, c)),
                None => frame
                    .skipped
                    .push(format!("`{field}` has an unsupported type; column skipped")),
            }
        }
    }
    Ok(frame)
}

/// A column stored as a group: categorical or nullable. The inner `Err` is a skip reason.
fn read_encoded_group(h5: &H5, field: &str) -> Result<Result<Column, String>, DataError> {
    let enc = h5.attr_str(field, "encoding-type")?.unwrap_or_default();
    let has = |n: &str| h5.is_dataset(&format!("{field}/{n}"));
    if enc == "categorical" || (has("codes")? && has("categories")?) {
        let codes = h5.i64s(&format!("{field}/codes"))?;
        let cats = h5
            .column(&format!("{field}/categories"))?
            .unwrap_or(Column::Text(Vec::new()));
        return Ok(Ok(decode_codes(h5, field, &codes, &cats)?));
    }
    if enc.starts_with("nullable") && has("values")? {
        let values = h5.column(&format!("{field}/values"))?;
        let mask = if has("mask")? {
            h5.column(&format!("{field}/mask"))?
        } else {
            None
        };
        let masked = |i: usize| match &mask {
            Some(Column::Number(m)) => m.get(i).is_some_and(|&x| x != 0.0),
            _ => false,
        };
        return Ok(match values {
            Some(Column::Number(v)) => Ok(Column::Number(
                v.iter()
                    .enumerate()
                    .map(|(i, &x)| if masked(i) { f64::NAN } else { x })
                    .collect(),
            )),
            Some(Column::Text(v)) => Ok(Column::Text(
                v.into_iter()
                    .enumerate()
                    .map(|(i, s)| if masked(i) { String::new() } else { s })
                    .collect(),
            )),
            None => Err(format!("nullable column of unsupported type ({enc})")),
        });
    }
    Ok(Err(format!("unsupported column encoding `{enc}`")))
}

/// Pre-0.7 AnnData: the dataframe is one compound dataset; categorical columns hold integer
/// codes whose labels are in `uns/<column>_categories`.
fn read_legacy(h5: &H5, path: &str) -> Result<Frame, DataError> {
    let mut frame = Frame::default();
    for (name, col) in h5.compound(path)? {
        if name == "index" || name == "_index" {
            frame.index = match col {
                Column::Text(v) => v,
                Column::Number(v) => v.into_iter().map(number_label).collect(),
            };
            continue;
        }
        let cats = format!("uns/{name}_categories");
        let col = match col {
            Column::Number(codes) if !path.starts_with("raw") && h5.is_dataset(&cats)? => {
                let codes: Vec<i64> = codes.iter().map(|&c| c as i64).collect();
                let categories = h5.column(&cats)?.unwrap_or(Column::Text(Vec::new()));
                decode_codes(h5, &format!("{path}.{name}"), &codes, &categories)?
            }
            other => other,
        };
        frame.columns.push((name, col));
    }
    Ok(frame)
}
