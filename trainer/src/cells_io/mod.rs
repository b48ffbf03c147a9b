//! Reading CELLS inputs (tokenized cells) and writing safetensors outputs.

mod ragged;
mod writer;

pub use ragged::{RaggedWriter, RunBuffer};
pub use writer::{CellsLayout, CellsShape, CellsWriter, write_cells_safetensors};

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};
use genecompass_core::cells::hf_dataset::read_hf_dataset;
use genecompass_core::cells::{CellSet, Species, TokenizedCell};
use genecompass_core::checkpoint::TensorMap;

/// Reads tokenized cells from a safetensors file (the `inputs.safetensors` layout) or an
/// official tokenized-dataset folder.
pub fn read_cells(path: &Path, label_column: Option<&str>) -> anyhow::Result<CellSet> {
    if path.is_dir() {
        return read_hf_dataset(path, label_column)
            .with_context(|| format!("reading tokenized dataset folder {}", path.display()));
    }
    read_cells_file(path).map(|(cells, _)| cells)
}

/// Reads a CELLS safetensors file, with its string metadata (`labels` already applied;
/// `label_column` names the column they came from when `tokenize` recorded it).
pub fn read_cells_file(path: &Path) -> anyhow::Result<(CellSet, HashMap<String, String>)> {
    let not_cells = || {
        format!(
            "{} is neither a tokenized-dataset folder nor a safetensors file of cells \
             (input_ids [N, L] int64, values [N, L] f32, species [N, 1], optional attention_mask; \
             or ragged: input_ids [T], values [T], offsets [N + 1])",
            path.display()
        )
    };
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let map = TensorMap::from_safetensors_bytes(&path.display().to_string(), &bytes)
        .with_context(not_cells)?;
    let mut cells = cells_from_tensors(&map)?;
    // Labels written by `tokenize --label-column` travel as a JSON list in the metadata.
    let meta = safetensors::SafeTensors::read_metadata(&bytes)
        .ok()
        .and_then(|(_, m)| m.metadata().clone());
    if let Some(text) = meta.as_ref().and_then(|m| m.get("labels")) {
        let labels: Vec<String> = serde_json::from_str(text).with_context(|| {
            format!(
                "{}: metadata `labels` is not a JSON list of strings",
                path.display()
            )
        })?;
        if labels.len() != cells.len() {
            bail!(
                "{}: metadata `labels` has {} entries for {} cells",
                path.display(),
                labels.len(),
                cells.len()
            );
        }
        for (c, l) in cells.cells.iter_mut().zip(labels) {
            c.label = Some(l);
        }
    }
    Ok((cells, meta.unwrap_or_default()))
}

fn cells_from_tensors(map: &TensorMap) -> anyhow::Result<CellSet> {
    if map.tensors.contains_key("offsets") {
        return ragged_cells(map);
    }
    let p = &map.path;
    let get = |k: &str| map.tensors.get(k);
    let ids_t = get("input_ids").with_context(|| format!("{p}: no `input_ids` tensor [N, L]"))?;
    let vals_t = get("values").with_context(|| format!("{p}: no `values` tensor [N, L]"))?;
    if ids_t.shape.len() != 2 || vals_t.shape != ids_t.shape {
        bail!(
            "{p}: `input_ids` {:?} and `values` {:?} must both be [N, L]",
            ids_t.shape,
            vals_t.shape
        );
    }
    let (n, l) = (ids_t.shape[0], ids_t.shape[1]);
    let ids = ids_t
        .to_i64()
        .with_context(|| format!("{p}: `input_ids` must be an integer tensor"))?;
    let vals = vals_t
        .to_f32()
        .with_context(|| format!("{p}: `values` must be numeric"))?;
    let species = species_codes(map, n)?;
    let mask = match get("attention_mask") {
        Some(t) => {
            if t.shape != ids_t.shape {
                bail!(
                    "{p}: `attention_mask` {:?} must match `input_ids` {:?}",
                    t.shape,
                    ids_t.shape
                );
            }
            Some(
                t.to_i64()
                    .with_context(|| format!("{p}: `attention_mask` must be numeric"))?,
            )
        }
        None => None,
    };
    let mut cells = Vec::with_capacity(n);
    for i in 0..n {
        let row = &ids[i * l..(i + 1) * l];
        let len = match &mask {
            Some(m) => m[i * l..(i + 1) * l].iter().filter(|&&v| v != 0).count(),
            None => row.iter().position(|&v| v == 0).unwrap_or(l),
        };
        cells.push(checked_cell(
            p,
            i,
            &row[..len],
            &vals[i * l..i * l + len],
            species[i],
        )?);
    }
    Ok(CellSet {
        cells,
        padded_len: Some(l),
    })
}

/// The ragged layout ([`CellsLayout::Ragged`]): tokens end to end, cut by `offsets`.
fn ragged_cells(map: &TensorMap) -> anyhow::Result<CellSet> {
    let p = &map.path;
    let get = |k: &str| {
        map.tensors
            .get(k)
            .with_context(|| format!("{p}: ragged cells (an `offsets` tensor) need `{k}` too"))
    };
    let (ids_t, vals_t, offsets_t) = (get("input_ids")?, get("values")?, get("offsets")?);
    if ids_t.shape.len() != 1 || vals_t.shape != ids_t.shape || offsets_t.shape.len() != 1 {
        bail!(
            "{p}: ragged cells need `input_ids` [T], `values` [T] and `offsets` [N + 1]; found {:?}, {:?}, {:?}",
            ids_t.shape,
            vals_t.shape,
            offsets_t.shape
        );
    }
    let ids = ids_t
        .to_i64()
        .with_context(|| format!("{p}: `input_ids` must be an integer tensor"))?;
    let vals = vals_t
        .to_f32()
        .with_context(|| format!("{p}: `values` must be numeric"))?;
    let offsets = offsets_t
        .to_i64()
        .with_context(|| format!("{p}: `offsets` must be an integer tensor"))?;
    let n = offsets.len().saturating_sub(1);
    let monotone = offsets.windows(2).all(|w| w[0] <= w[1]);
    if offsets.first() != Some(&0) || offsets.last() != Some(&(ids.len() as i64)) || !monotone {
        bail!(
            "{p}: `offsets` must rise from 0 to the {} tokens of `input_ids`; the file is damaged, tokenize it again",
            ids.len()
        );
    }
    let species = species_codes(map, n)?;
    let mut cells = Vec::with_capacity(n);
    for i in 0..n {
        let (a, b) = (offsets[i] as usize, offsets[i + 1] as usize);
        cells.push(checked_cell(p, i, &ids[a..b], &vals[a..b], species[i])?);
    }
    Ok(CellSet {
        cells,
        padded_len: None,
    })
}

/// The `species` code of each of `n` cells (all human when the file has no `species`), for
/// both layouts.
fn species_codes(map: &TensorMap, n: usize) -> anyhow::Result<Vec<i64>> {
    let p = &map.path;
    let Some(t) = map.tensors.get("species") else {
        return Ok(vec![0; n]);
    };
    let s = t
        .to_i64()
        .with_context(|| format!("{p}: `species` must be integer"))?;
    if s.len() != n {
        bail!(
            "{p}: `species` has {} entries for {n} cells; expected one per cell ([N, 1])",
            s.len()
        );
    }
    Ok(s)
}

/// Cell `i` from its real tokens, checked, for both layouts.
fn checked_cell(
    p: &str,
    i: usize,
    ids: &[i64],
    values: &[f32],
    species: i64,
) -> anyhow::Result<TokenizedCell> {
    if let Some(bad) = ids.iter().find(|&&v| v <= 0 || v > u32::MAX as i64) {
        bail!(
            "{p}: cell {i} has token id {bad} among its {} real tokens; ids must be positive \
             (0 is padding)",
            ids.len()
        );
    }
    let species = Species::from_code(species).with_context(|| {
        format!("{p}: cell {i} has species {species}; expected 0 (human) or 1 (mouse)")
    })?;
    Ok(TokenizedCell {
        input_ids: ids.iter().map(|&v| v as u32).collect(),
        values: values.to_vec(),
        species,
        label: None,
    })
}

/// An f32 output tensor to write.
pub struct OutTensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

/// Writes tensors to a safetensors file (temporary file, then rename).
pub fn write_safetensors(
    path: &Path,
    tensors: Vec<(String, OutTensor)>,
    metadata: HashMap<String, String>,
) -> anyhow::Result<()> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .into_iter()
        .map(|(k, t)| {
            (
                k,
                t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                t.shape,
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
        .iter()
        .map(|(k, b, s)| {
            let v = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                .expect("shape matches data");
            (k.clone(), v)
        })
        .collect();
    let tmp = path.with_extension("safetensors.tmp");
    safetensors::serialize_to_file(views, Some(metadata), &tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}
