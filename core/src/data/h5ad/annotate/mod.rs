//! Writes new `obs` columns into an h5ad, so users get their own file back with the predicted
//! labels, readable by anndata/scanpy.
//!
//! **How.** The file is never rebuilt: the new datasets, a new `obs` group header (the old
//! links and attributes plus the new columns and the extended `column-order`) and one global
//! heap for the new strings are *appended* to the image, and then two fields are overwritten in
//! place: the root group's link to `obs` and the superblock's end-of-file address. Every other
//! byte (X, raw, layers, var, uns, obsm, the old obs columns...) stays where and what it was,
//! so nothing can change meaning, compressed chunks and object references included. The old
//! `obs` header becomes unreferenced space, as after any HDF5 edit (`h5repack` reclaims it).
//! This works on bytes alone (the browser has no file system); `hdf5-pure`, which can edit in
//! place, only does so on a file on disk.
//!
//! **Layouts.** The current schema (obs a dataframe group, categoricals as groups) and the
//! 0.7-era one (obs a group, categoricals as code datasets) get current-schema columns, which
//! anndata ≥ 0.8 reads in both. The pre-0.7 layout (obs one compound dataset) is refused with a
//! message saying to re-save the file. HDF5 files in the "latest" format (superblock v2/v3) are
//! refused likewise; h5py, and so anndata, write the default format.
//!
//! **Existing names.** A column that already exists is an error naming it, unless
//! [`IfExists::Replace`] is asked for: then the new column takes its place (and its position in
//! `column-order`), and the old one is unlinked.

mod objects;
mod read;
mod write;

#[cfg(test)]
mod tests;

use objects::{Output, Plan};
use read::{Image, Link, Msg, msg};
use write::{Heap, Message};

use crate::data::DataError;

/// `obs` column with the predicted cell type (categorical); shared by the CLI and the browser.
pub const LABEL_COLUMN: &str = "genecompass_label";
/// `obs` column with the predicted class's probability (float32; NaN for filtered cells).
pub const CONFIDENCE_COLUMN: &str = "genecompass_confidence";
/// Label of cells the tokenizer dropped (cell QC, or no gene in the vocabulary).
pub const FILTERED_LABEL: &str = "filtered";

/// Values of one new `obs` column, one per cell in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum ObsValues {
    /// Strings, stored as an anndata categorical (categories sorted, as pandas does).
    Categorical(Vec<String>),
    /// Numbers, stored as a float32 array.
    Float32(Vec<f32>),
}

/// A column to add to `obs`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewObsColumn {
    /// Column name.
    pub name: String,
    /// Its values.
    pub values: ObsValues,
}

impl NewObsColumn {
    fn len(&self) -> usize {
        match &self.values {
            ObsValues::Categorical(v) => v.len(),
            ObsValues::Float32(v) => v.len(),
        }
    }
}

/// What to do when `obs` already has a column of a new column's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IfExists {
    /// Fail with an error naming the column.
    #[default]
    Fail,
    /// Put the new column in its place.
    Replace,
}

/// The [`LABEL_COLUMN`] and [`CONFIDENCE_COLUMN`] columns of a classification: `predicted[row]`
/// is the label and probability of a classified cell, `None` for a cell the tokenizer dropped
/// (labelled [`FILTERED_LABEL`], confidence NaN).
pub fn prediction_columns(predicted: &[Option<(&str, f32)>]) -> Vec<NewObsColumn> {
    let labels = predicted
        .iter()
        .map(|p| p.map_or(FILTERED_LABEL, |(l, _)| l).to_string())
        .collect();
    let confidence = predicted
        .iter()
        .map(|p| p.map_or(f32::NAN, |p| p.1))
        .collect();
    vec![
        NewObsColumn {
            name: LABEL_COLUMN.into(),
            values: ObsValues::Categorical(labels),
        },
        NewObsColumn {
            name: CONFIDENCE_COLUMN.into(),
            values: ObsValues::Float32(confidence),
        },
    ]
}

/// Returns the h5ad `h5ad` (named `name` in messages) with `columns` added to `obs`; an
/// existing column of the same name is an error. See the module documentation.
pub fn add_obs_columns(
    h5ad: &[u8],
    name: &str,
    columns: &[NewObsColumn],
) -> Result<Vec<u8>, DataError> {
    add_obs_columns_with(h5ad, name, columns, IfExists::Fail)
}

/// Writes `input` with `columns` added to `obs` to `output` (see [`add_obs_columns_with`]).
/// The output is written beside its final path and renamed into place, so a failure never
/// leaves a half-written file there.
#[cfg(not(target_arch = "wasm32"))]
pub fn add_obs_columns_to_file(
    input: &std::path::Path,
    output: &std::path::Path,
    columns: &[NewObsColumn],
    if_exists: IfExists,
) -> Result<(), DataError> {
    let io = |path: &std::path::Path| {
        let path = path.display().to_string();
        move |source| DataError::Io { path, source }
    };
    let bytes = std::fs::read(input).map_err(io(input))?;
    let out = add_obs_columns_with(&bytes, &input.display().to_string(), columns, if_exists)?;
    let mut partial = output.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    std::fs::write(&partial, out).map_err(io(&partial))?;
    std::fs::rename(&partial, output).map_err(io(output))
}

/// [`add_obs_columns`] with a choice for columns that already exist.
pub fn add_obs_columns_with(
    h5ad: &[u8],
    name: &str,
    columns: &[NewObsColumn],
    if_exists: IfExists,
) -> Result<Vec<u8>, DataError> {
    let img = Image { b: h5ad, name };
    let sb = img.superblock()?;
    let root_msgs = img.messages(sb.root)?;
    let root_links = img.links("/", &root_msgs)?;
    let Some(obs_link) = root_links.iter().find(|l| l.name == "obs") else {
        return Err(img.err(
            "the file has no `obs` at its root: it is an HDF5 file but not an AnnData .h5ad",
        ));
    };
    if !obs_link.in_symbol_table && root_msgs.iter().any(|m| m.header_version == 2) {
        return Err(img.err(
            "the root group uses a checksummed (version 2) object header, which this writer \
             does not update; re-save the file with anndata (`adata.write_h5ad`)",
        ));
    }
    let obs = Obs::read(&img, obs_link.target)?;
    let mut links: Vec<(String, u64)> = obs
        .links
        .iter()
        .map(|l| (l.name.clone(), l.target))
        .collect();
    let mut order = obs.column_order.clone();
    let mut seen = std::collections::HashSet::new();
    for c in columns {
        let field = format!("obs/{}", c.name);
        if c.name.is_empty() || c.name.contains('/') || c.name == "__categories" {
            return Err(img.err(format!(
                "`{field}`: a column name must be non-empty, without '/', and not `__categories`"
            )));
        }
        if c.name == obs.index || !seen.insert(c.name.as_str()) {
            return Err(img.err(format!(
                "`{field}`: the name is given twice or is the index `{}`; use another name",
                obs.index
            )));
        }
        if c.len() != obs.n_obs {
            return Err(img.err(format!(
                "`{field}` has {} values but obs has {} cells (rows); give one value per cell, \
                 in file order",
                c.len(),
                obs.n_obs
            )));
        }
        let exists = order.contains(&c.name) || links.iter().any(|(n, _)| *n == c.name);
        match (exists, if_exists) {
            (false, _) => order.push(c.name.clone()),
            (true, IfExists::Fail) => {
                return Err(img.err(format!(
                    "obs already has a column `{}`; remove or rename it first (in Python: \
                     `del adata.obs['{}']`), or ask for it to be replaced",
                    c.name, c.name
                )));
            }
            (true, IfExists::Replace) => {
                links.retain(|(n, _)| *n != c.name);
                if !order.contains(&c.name) {
                    order.push(c.name.clone());
                }
            }
        }
    }

    let mut out = Output::new(h5ad, sb.eof);
    let mut heap = Heap::default();
    let plans: Vec<Plan> = columns.iter().map(|c| Plan::new(c, &mut heap)).collect();
    let order_strings: Vec<usize> = order.iter().map(|s| heap.add(s)).collect();
    heap.place(|b| out.append(b));
    for (c, plan) in columns.iter().zip(&plans) {
        let target = plan
            .write(&mut out, &heap)
            .ok_or_else(|| img.err(format!("`obs/{}` could not be encoded", c.name)))?;
        links.push((c.name.clone(), target));
    }
    let mut msgs = write::compact_group_messages(links.len());
    msgs.extend(links.iter().map(|(n, a)| write::link(n, *a)));
    msgs.extend(obs.kept.iter().map(|m| Message {
        kind: m.kind,
        flags: m.flags,
        body: h5ad[m.body.clone()].to_vec(),
    }));
    let refs: Vec<u8> = order_strings
        .iter()
        .flat_map(|&h| heap.reference(h))
        .collect();
    let space = write::dataspace(Some(order.len() as u64));
    msgs.push(write::attribute(
        "column-order",
        &write::VLEN_UTF8,
        &space,
        &refs,
    ));
    let header = write::object_header(&msgs).ok_or_else(|| {
        img.err(format!(
            "obs would have {} columns, too many for one object header; write fewer columns",
            order.len()
        ))
    })?;
    let new_obs = out.append(&header);
    out.repoint(obs_link, new_obs);
    out.set_eof(sb.eof_field);
    Ok(out.b)
}

/// The parts of `obs` the writer needs.
struct Obs {
    links: Vec<Link>,
    /// Header messages carried over unchanged (attributes but `column-order`, and any other
    /// non-link message).
    kept: Vec<Msg>,
    column_order: Vec<String>,
    /// Name of the index dataset.
    index: String,
    n_obs: usize,
}

impl Obs {
    fn read(img: &Image<'_>, addr: u64) -> Result<Obs, DataError> {
        let msgs = img.messages(addr)?;
        let is_group = msgs
            .iter()
            .any(|m| [msg::SYMBOL_TABLE, msg::LINK_INFO, msg::LINK].contains(&m.kind));
        if !is_group {
            return Err(img.err(
                "`obs` is a single compound dataset: the file uses the pre-0.7 anndata layout, \
                 which this writer does not support. Re-save it with a current anndata \
                 (`anndata.read_h5ad(path).write_h5ad(new_path)`) and use the new file",
            ));
        }
        let links = img.links("obs", &msgs)?;
        let attrs = img.attrs(&msgs)?;
        let text = |key: &str| -> Result<Option<Vec<String>>, DataError> {
            match attrs.iter().find(|(_, a)| a.name == key) {
                None => Ok(None),
                Some((_, a)) => img
                    .attr_strings(a)?
                    .map(Some)
                    .ok_or_else(|| img.err(format!("attribute `obs.attrs['{key}']` is not text"))),
            }
        };
        if let Some(e) = text("encoding-type")?.and_then(|v| v.into_iter().next())
            && e != "dataframe"
        {
            return Err(img.err(format!(
                "`obs` has encoding-type `{e}`, not `dataframe`; the file is not an AnnData h5ad"
            )));
        }
        let column_order = text("column-order")?.ok_or_else(|| {
            img.err(
                "`obs` has no `column-order` attribute, so anndata could not read new columns; \
                 re-save the file with anndata (`adata.write_h5ad`)",
            )
        })?;
        let index = text("_index")?
            .and_then(|v| v.into_iter().next())
            .unwrap_or_else(|| "_index".into());
        let index_link = links.iter().find(|l| l.name == index).ok_or_else(|| {
            img.err(format!(
                "`obs/{index}` (the cell names) is missing; the file is incomplete"
            ))
        })?;
        let index_msgs = img.messages(index_link.target)?;
        let dims = match index_msgs.iter().find(|m| m.kind == msg::DATASPACE) {
            Some(m) => img.dims(&m.body)?,
            None => None,
        };
        let n_obs = match dims.as_deref() {
            Some(&[n]) => usize::try_from(n).map_err(|_| img.err("`obs` is too large"))?,
            _ => return Err(img.err(format!("`obs/{index}` is not a 1-D array of cell names"))),
        };
        if let Some(m) = msgs.iter().find(|m| m.kind == msg::ATTRIBUTE_INFO) {
            let at = m.body.start as u64;
            let skip = if img.u8(at + 1, "attribute info")? & 1 != 0 {
                2
            } else {
                0
            };
            if img.u64(at + 2 + skip, "attribute info")? != read::UNDEF {
                return Err(img.err(
                    "`obs` stores its attributes densely (a fractal heap); that layout is not \
                     supported for writing. Re-save the file with anndata (`adata.write_h5ad`)",
                ));
            }
        }
        let dropped = [
            msg::NIL,
            msg::SYMBOL_TABLE,
            msg::LINK_INFO,
            msg::GROUP_INFO,
            msg::LINK,
            msg::CONTINUATION,
            msg::ATTRIBUTE_INFO,
        ];
        let order_msg = attrs
            .iter()
            .find(|(_, a)| a.name == "column-order")
            .map(|(i, _)| *i);
        let kept = msgs
            .iter()
            .enumerate()
            .filter(|(i, m)| !dropped.contains(&m.kind) && Some(*i) != order_msg)
            .map(|(_, m)| m.clone())
            .collect();
        Ok(Obs {
            links,
            kept,
            column_order,
            index,
            n_obs,
        })
    }
}
