//! The project's compact prior form: a folder with
//!
//! - `genes.txt`: the row names, one per line (vocabulary tokens in id order, so row `i` is token `i`);
//! - `{stem}.safetensors` per prior (`promoter`, `co_exp`, `gene_family`, `peca_grn`), holding one
//!   float32 tensor `{stem}_knowledge` `[rows, K]`, the checkpoint buffer's name and layout;
//! - `homologous_index.safetensors` (int64 `[rows]`) when known;
//! - `priors.json`: for each prior the builder, seed, parameters, input files with their SHA-256,
//!   and summary statistics, so any table can be traced back and rebuilt.
//!
//! Safetensors instead of pickles: it is read without executing anything, by Rust and Python
//! alike, and memory-maps. Several builders may write into one folder; each updates its entry.

use serde::{Deserialize, Serialize};

use super::{PriorError, PriorKind, sha256_hex};
use crate::checkpoint::TensorMap;

/// Manifest file name.
pub const MANIFEST: &str = "priors.json";
/// Row-name file.
pub const GENES: &str = "genes.txt";
/// Homolog index file.
pub const HOMOLOGS: &str = "homologous_index.safetensors";
/// Manifest format tag.
pub const FORMAT: &str = "genecompass-priors/1";

/// One input file of a build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputRecord {
    /// The path as given.
    pub path: String,
    /// SHA-256 of its bytes (hex).
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

impl InputRecord {
    /// Records `bytes` read from `path`.
    pub fn of(path: impl Into<String>, bytes: &[u8]) -> Self {
        Self {
            path: path.into(),
            sha256: sha256_hex(bytes),
            bytes: bytes.len() as u64,
        }
    }
}

/// The manifest entry of one prior table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriorEntry {
    /// Which prior.
    pub kind: PriorKind,
    /// The safetensors file (relative).
    pub file: String,
    /// SHA-256 of that file.
    pub sha256: String,
    /// Rows (= lines of `genes.txt`).
    pub rows: usize,
    /// Width K.
    pub width: usize,
    /// What produced it (`load-official`, `build-family`, …).
    pub builder: String,
    /// Random seed, when the builder is random.
    pub seed: Option<u64>,
    /// Builder parameters.
    pub parameters: serde_json::Value,
    /// Input files.
    pub inputs: Vec<InputRecord>,
    /// Summary statistics (pairs, covered genes, …).
    pub stats: serde_json::Value,
}

/// `priors.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// SHA-256 of `genes.txt`.
    pub genes_sha256: String,
    /// Number of rows.
    pub rows: usize,
    /// One entry per prior written, in [`PriorKind::ALL`] order.
    pub priors: Vec<PriorEntry>,
    /// Whether `homologous_index.safetensors` is present.
    pub homologous_index: bool,
}

/// `genes.txt` content.
pub fn genes_text(genes: &[String]) -> String {
    let mut s = String::with_capacity(genes.len() * 16);
    for g in genes {
        s.push_str(g);
        s.push('\n');
    }
    s
}

fn st_bytes(name: &str, dtype: safetensors::Dtype, shape: Vec<usize>, bytes: &[u8]) -> Vec<u8> {
    let view = safetensors::tensor::TensorView::new(dtype, shape, bytes)
        .expect("shape matches the byte count");
    safetensors::serialize([(name.to_string(), view)], None).expect("serialising to memory")
}

/// Safetensors bytes of one `[rows, width]` table named `{stem}_knowledge`.
pub fn encode_table(kind: PriorKind, rows: usize, width: usize, data: &[f32]) -> Vec<u8> {
    assert_eq!(rows * width, data.len(), "table is rows × width");
    let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
    st_bytes(
        &format!("{}_knowledge", kind.stem()),
        safetensors::Dtype::F32,
        vec![rows, width],
        &bytes,
    )
}

/// Safetensors bytes of the homolog index (`homologous_index`, int64 `[V]`).
pub fn encode_homologous_index(idx: &[i64]) -> Vec<u8> {
    let bytes: Vec<u8> = idx.iter().flat_map(|x| x.to_le_bytes()).collect();
    st_bytes(
        "homologous_index",
        safetensors::Dtype::I64,
        vec![idx.len()],
        &bytes,
    )
}

/// Decodes a table written by [`encode_table`]: `(rows, width, values)`.
pub fn decode_table(
    kind: PriorKind,
    bytes: &[u8],
    name: &str,
) -> Result<(usize, usize, Vec<f32>), PriorError> {
    let map = TensorMap::from_safetensors_bytes(name, bytes)
        .map_err(|e| PriorError::invalid(name, e.to_string()))?;
    let key = format!("{}_knowledge", kind.stem());
    let t = map.tensors.get(&key).ok_or_else(|| {
        PriorError::invalid(
            name,
            format!("no tensor `{key}`; is this a {} table?", kind.stem()),
        )
    })?;
    if t.shape.len() != 2 {
        return Err(PriorError::invalid(
            name,
            format!("`{key}` has shape {:?}, expected [rows, K]", t.shape),
        ));
    }
    let data = t
        .to_f32()
        .ok_or_else(|| PriorError::invalid(name, format!("`{key}` is not numeric")))?;
    Ok((t.shape[0], t.shape[1], data))
}

#[cfg(not(target_arch = "wasm32"))]
pub use native::*;

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use super::*;
    use std::path::Path;

    fn io(path: &Path) -> impl Fn(std::io::Error) -> PriorError + '_ {
        move |source| PriorError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// Reads `priors.json` (`None` when the folder has none yet).
    pub fn read_manifest(dir: &Path) -> Result<Option<Manifest>, PriorError> {
        let path = dir.join(MANIFEST);
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        serde_json::from_str(&text).map(Some).map_err(|e| {
            PriorError::invalid(path.display().to_string(), format!("invalid manifest: {e}"))
        })
    }

    /// Reads `genes.txt`.
    pub fn read_genes(dir: &Path) -> Result<Vec<String>, PriorError> {
        let path = dir.join(GENES);
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        Ok(text.lines().map(String::from).collect())
    }

    fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PriorError> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))
    }

    /// Creates or opens a store for `genes`: a folder holding priors for another gene list is an
    /// error (tables of one folder must share rows).
    fn open_for(dir: &Path, genes: &[String]) -> Result<Manifest, PriorError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let text = genes_text(genes);
        let sha = sha256_hex(text.as_bytes());
        match read_manifest(dir)? {
            Some(m) if m.genes_sha256 == sha => Ok(m),
            Some(m) => Err(PriorError::invalid(
                dir.join(GENES).display().to_string(),
                format!(
                    "this folder holds priors for another gene list ({} rows, sha256 {}…); \
                     write to a new --output folder, or rebuild with the same vocabulary",
                    m.rows,
                    &m.genes_sha256[..12]
                ),
            )),
            None => {
                write_atomic(&dir.join(GENES), text.as_bytes())?;
                Ok(Manifest {
                    format: FORMAT.into(),
                    genes_sha256: sha,
                    rows: genes.len(),
                    priors: Vec::new(),
                    homologous_index: false,
                })
            }
        }
    }

    fn save_manifest(dir: &Path, m: &Manifest) -> Result<(), PriorError> {
        let text = serde_json::to_string_pretty(m).expect("manifest serialises");
        write_atomic(&dir.join(MANIFEST), text.as_bytes())
    }

    /// Writes one prior table (and `genes.txt` on first use), updating `priors.json`.
    /// `entry.file`, `sha256`, `rows` and `width` are filled in here.
    pub fn write_prior(
        dir: &Path,
        genes: &[String],
        width: usize,
        data: &[f32],
        mut entry: PriorEntry,
    ) -> Result<PriorEntry, PriorError> {
        let mut m = open_for(dir, genes)?;
        let file = format!("{}.safetensors", entry.kind.stem());
        let bytes = encode_table(entry.kind, genes.len(), width, data);
        write_atomic(&dir.join(&file), &bytes)?;
        entry.file = file;
        entry.sha256 = sha256_hex(&bytes);
        entry.rows = genes.len();
        entry.width = width;
        m.priors.retain(|p| p.kind != entry.kind);
        m.priors.push(entry.clone());
        m.priors
            .sort_by_key(|p| PriorKind::ALL.iter().position(|k| *k == p.kind));
        save_manifest(dir, &m)?;
        Ok(entry)
    }

    /// Writes `homologous_index.safetensors` and records it in `priors.json`.
    pub fn write_homologous_index(
        dir: &Path,
        genes: &[String],
        idx: &[i64],
    ) -> Result<(), PriorError> {
        let mut m = open_for(dir, genes)?;
        write_atomic(&dir.join(HOMOLOGS), &encode_homologous_index(idx))?;
        m.homologous_index = true;
        save_manifest(dir, &m)
    }

    /// Reads one table of a store: `(width, [rows, width] values)`, checked against `genes.txt`.
    pub fn read_prior(dir: &Path, kind: PriorKind) -> Result<(usize, Vec<f32>), PriorError> {
        let path = dir.join(format!("{}.safetensors", kind.stem()));
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let name = path.display().to_string();
        let (rows, width, data) = decode_table(kind, &bytes, &name)?;
        let genes = read_genes(dir)?;
        if rows != genes.len() {
            return Err(PriorError::invalid(
                name,
                format!("{rows} rows but genes.txt lists {} genes", genes.len()),
            ));
        }
        Ok((width, data))
    }
}
