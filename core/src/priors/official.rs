//! The official prior-knowledge files, loaded exactly as `genecompass/utils.py:load_prior_embedding`
//! does (spec §5.3):
//!
//! ```text
//! for (token, id) in token_dict (rows in id order):
//!     '<pad>' / '<mask>'     -> zero row in all four tables
//!     'ENSG' in token        -> human_X[id2name[token]]
//!     'ENSMUSG' in token     -> mouse_X[id2name[token]]
//!     anything else          -> error
//! homologous_index = arange(V); homologous_index[mouse_id] = human_id   (inverted homolog pickle)
//! ```
//!
//! PECA vectors are float64 on disk and cast to float32, like the official `torch.tensor(...,
//! dtype=float32)`; the other files are float32. Files are read one at a time through a
//! [`PriorFileSource`], so the browser passes bytes and the CLI a folder, and peak memory stays
//! at the output tables plus one file.

use std::collections::{BTreeMap, HashMap};

use super::{PriorError, PriorKind, PriorTables};
use crate::pickle::{self, Value};
use crate::tokenize::{HomologMap, TokenDictionary};

/// Where the official files come from. Paths are relative to `prior_knowledge/`, `/`-separated.
pub trait PriorFileSource {
    /// Reads one file: `(name for messages, bytes)`.
    fn read(&self, relative: &str) -> Result<(String, Vec<u8>), PriorError>;
    /// File names directly inside folder `dir` (for the name fallbacks of [`OfficialLayout::resolve`]).
    fn list(&self, dir: &str) -> Vec<String>;
}

/// Files held in memory (uploaded in the browser, or built in tests), keyed by relative path.
#[derive(Debug, Clone, Default)]
pub struct MemoryFiles(pub BTreeMap<String, Vec<u8>>);

impl PriorFileSource for MemoryFiles {
    fn read(&self, relative: &str) -> Result<(String, Vec<u8>), PriorError> {
        self.0
            .get(relative)
            .map(|b| (relative.to_string(), b.clone()))
            .ok_or_else(|| PriorError::invalid(relative, "file not provided"))
    }

    fn list(&self, dir: &str) -> Vec<String> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        self.0
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter(|rest| !rest.contains('/'))
            .map(String::from)
            .collect()
    }
}

/// A `prior_knowledge/` folder on disk (native only).
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Clone)]
pub struct DirFiles(pub std::path::PathBuf);

#[cfg(not(target_arch = "wasm32"))]
impl PriorFileSource for DirFiles {
    fn read(&self, relative: &str) -> Result<(String, Vec<u8>), PriorError> {
        let path = self.0.join(relative);
        let name = path.display().to_string();
        let bytes = std::fs::read(&path).map_err(|source| PriorError::Io {
            path: name.clone(),
            source,
        })?;
        Ok((name, bytes))
    }

    fn list(&self, dir: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.0.join(dir))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.path().is_file())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// Relative paths of the official files (defaults: the released `prior_knowledge/` layout).
#[derive(Debug, Clone, PartialEq)]
pub struct OfficialLayout {
    /// Token dictionary: pickled `dict[str,int]` or JSON `{token: id}`.
    pub token_dict: String,
    /// Pickled `dict[str,str]`, Ensembl id → symbol.
    pub id_to_symbol: String,
    /// Pickled `dict[int,int]`, human token id → mouse token id.
    pub homologs: String,
    /// `(kind, human file, mouse file)` in [`PriorKind::ALL`] order.
    pub priors: Vec<(PriorKind, String, String)>,
}

impl Default for OfficialLayout {
    fn default() -> Self {
        let p = |k, h: &str, m: &str| (k, h.to_string(), m.to_string());
        Self {
            token_dict: "human_mouse_tokens.pickle".into(),
            id_to_symbol: "gene_list/Gene_id_name_dict_human_mouse.pickle".into(),
            homologs: "homologous_hm_token.pickle".into(),
            priors: vec![
                p(
                    PriorKind::Promoter,
                    "promoter_emb/human_emb_768.pickle",
                    "promoter_emb/mouse_emb_768.pickle",
                ),
                p(
                    PriorKind::CoExp,
                    "gene_co_express_emb/Human_dim_768_gene_28291_random.pickle",
                    "gene_co_express_emb/Mouse_dim_768_gene_27444_random.pickle",
                ),
                p(
                    PriorKind::GeneFamily,
                    "gene_family/Human_dim_768_gene_28291_random.pickle",
                    "gene_family/Mouse_dim_768_gene_27934_random.pickle",
                ),
                p(
                    PriorKind::PecaGrn,
                    "PECA2vec/human_PECA_vec.pickle",
                    "PECA2vec/mouse_PECA_vec.pickle",
                ),
            ],
        }
    }
}

impl OfficialLayout {
    /// Replaces each prior file that `source` lacks by the single `*.pickle` of its folder whose
    /// name starts with `human` / `mouse` (any case): the released names encode gene counts that
    /// differ between releases (`Human_dim_768_gene_28291_random.pickle`).
    pub fn resolve(mut self, source: &dyn PriorFileSource) -> Self {
        for (_, human, mouse) in &mut self.priors {
            for (path, species) in [(human, "human"), (mouse, "mouse")] {
                let (dir, file) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
                let listing = source.list(dir);
                if listing.iter().any(|f| f == file) {
                    continue;
                }
                let hits: Vec<&String> = listing
                    .iter()
                    .filter(|f| {
                        f.to_ascii_lowercase().starts_with(species) && f.ends_with(".pickle")
                    })
                    .collect();
                if let [only] = hits.as_slice() {
                    *path = if dir.is_empty() {
                        (*only).clone()
                    } else {
                        format!("{dir}/{only}")
                    };
                }
            }
        }
        self
    }
}

/// Species of a token by the official substring rule; `None` for `<pad>`/`<mask>`.
fn token_species(token: &str) -> Result<Option<bool>, ()> {
    if token == "<pad>" || token == "<mask>" {
        Ok(None)
    } else if token.contains("ENSG") {
        Ok(Some(true))
    } else if token.contains("ENSMUSG") {
        Ok(Some(false))
    } else {
        Err(())
    }
}

/// Converts a decoded `dict[str → numpy 1-D array]` into `symbol → f32 vector`, consuming it.
///
/// `expected`: the width K established by earlier files (with where it came from).
pub fn symbol_vectors(
    v: Value,
    file: &str,
    expected: Option<(usize, &str)>,
) -> Result<HashMap<String, Vec<f32>>, PriorError> {
    let Value::Dict(items) = v else {
        return Err(PriorError::invalid(
            file,
            format!(
                "expected dict[str, numpy.ndarray] (gene symbol → vector), found {}",
                v.describe()
            ),
        ));
    };
    let mut out = HashMap::with_capacity(items.len());
    let mut width = expected.map(|(k, why)| (k, why.to_string()));
    for (k, val) in items {
        let Value::Str(symbol) = k else {
            return Err(PriorError::invalid(
                file,
                format!("a key is {}, expected a gene symbol string", k.describe()),
            ));
        };
        let Value::Array(a) = val else {
            return Err(PriorError::invalid(
                file,
                format!(
                    "the value of {symbol:?} is {}, expected a 1-D numpy array",
                    val.describe()
                ),
            ));
        };
        if a.shape.len() != 1 {
            return Err(PriorError::invalid(
                file,
                format!(
                    "the vector of {symbol:?} has shape {:?}, expected a 1-D array (K,)",
                    a.shape
                ),
            ));
        }
        let n = a.data.len();
        match &width {
            Some((k, why)) if *k != n => {
                return Err(PriorError::VectorLength {
                    file: file.into(),
                    symbol,
                    found: n,
                    expected: *k,
                    why: why.clone(),
                });
            }
            Some(_) => {}
            None => width = Some((n, format!("the first vector in this file, {symbol:?}"))),
        }
        out.insert(symbol, a.to_f32());
    }
    Ok(out)
}

/// Progress callback: `(step done, total steps, what)`.
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize, &str);

/// Loads the official files into the four `[V, K]` tables and the homolog index.
///
/// Errors (never a partial result): a token that is neither `<pad>`, `<mask>`, human nor mouse;
/// tokens without a symbol; vocabulary genes without a vector (count and the first 10 listed);
/// vectors of different lengths; undecodable pickles (corrupt, truncated, LFS pointers).
pub fn load_official(
    source: &dyn PriorFileSource,
    layout: &OfficialLayout,
    progress: Progress<'_>,
) -> Result<PriorTables, PriorError> {
    let total = layout.priors.len() * 2 + 2;
    progress(0, total, "token dictionary");
    let (name, bytes) = source.read(&layout.token_dict)?;
    let vocab = TokenDictionary::from_bytes(&bytes, &name)?;
    let (id_name_file, bytes) = source.read(&layout.id_to_symbol)?;
    let id2name = pickle::str_str_dict(&pickle::unpickle(&bytes, &id_name_file)?, &id_name_file)?;
    drop(bytes);
    let v = vocab.len();
    // (row, symbol, is_human) for every gene token.
    let mut genes: Vec<(usize, &str, bool)> = Vec::with_capacity(v);
    let mut unmapped = Vec::new();
    for (i, tok) in vocab.tokens().iter().enumerate() {
        match token_species(tok) {
            Ok(None) => {}
            Ok(Some(human)) => match id2name.get(tok) {
                Some(sym) => genes.push((i, sym.as_str(), human)),
                None => unmapped.push(tok.clone()),
            },
            Err(()) => {
                return Err(PriorError::invalid(
                    &name,
                    format!(
                        "token {tok:?} (id {i}) is neither <pad>, <mask>, a human ENSG… nor a mouse ENSMUSG… id; \
                         the official loader raises on it"
                    ),
                ));
            }
        }
    }
    if !unmapped.is_empty() {
        return Err(PriorError::UnmappedTokens {
            file: id_name_file,
            count: unmapped.len(),
            first: first_n(&unmapped),
        });
    }
    let mut width: Option<(usize, String)> = None;
    let mut tables = Vec::with_capacity(layout.priors.len());
    for (step, (kind, human_file, mouse_file)) in layout.priors.iter().enumerate() {
        let mut table: Vec<f32> = Vec::new();
        for (j, (file, is_human)) in [(human_file, true), (mouse_file, false)]
            .into_iter()
            .enumerate()
        {
            progress(2 * step + j + 1, total, file);
            let (fname, bytes) = source.read(file)?;
            let value = pickle::unpickle(&bytes, &fname)?;
            drop(bytes);
            let expected = width.as_ref().map(|(k, w)| (*k, w.as_str()));
            let vectors = symbol_vectors(value, &fname, expected)?;
            let k = match &width {
                Some((k, _)) => *k,
                None => {
                    let Some(first) = vectors.values().next() else {
                        return Err(PriorError::invalid(&fname, "the file holds no vectors"));
                    };
                    width = Some((first.len(), format!("the vectors of {fname}")));
                    first.len()
                }
            };
            if table.is_empty() {
                table = vec![0f32; v * k];
            }
            let species_genes: Vec<&(usize, &str, bool)> =
                genes.iter().filter(|g| g.2 == is_human).collect();
            let mut missing = Vec::new();
            for &&(row, sym, _) in &species_genes {
                match vectors.get(sym) {
                    Some(vec) => table[row * k..(row + 1) * k].copy_from_slice(vec),
                    None => missing.push(format!("{} ({sym})", vocab.tokens()[row])),
                }
            }
            if !missing.is_empty() {
                return Err(PriorError::MissingGenes {
                    file: fname,
                    prior: kind.stem().into(),
                    species: if is_human { "human" } else { "mouse" }.into(),
                    count: missing.len(),
                    total: species_genes.len(),
                    first: first_n(&missing),
                });
            }
        }
        tables.push((*kind, table));
    }
    progress(total - 1, total, &layout.homologs);
    let (hname, bytes) = source.read(&layout.homologs)?;
    let homologs = HomologMap::from_pickle(&bytes, &hname)?;
    let homologous_index = homologous_index(&homologs, v, &hname)?;
    progress(total, total, "done");
    Ok(PriorTables {
        vocab_size: v,
        width: width.map(|w| w.0).unwrap_or(0),
        tables,
        homologous_index,
    })
}

/// The official `homologous_index` (`index[mouse] = human`), checking every id is in `0..V`.
pub fn homologous_index(map: &HomologMap, v: usize, file: &str) -> Result<Vec<i64>, PriorError> {
    let mut idx: Vec<i64> = (0..v as i64).collect();
    for &(h, m) in &map.pairs {
        if h as usize >= v || m as usize >= v {
            return Err(PriorError::invalid(
                file,
                format!(
                    "homolog pair human {h} → mouse {m} names a token id outside the vocabulary (V = {v}); \
                     use the homolog file that belongs to this token dictionary"
                ),
            ));
        }
        idx[m as usize] = h as i64;
    }
    Ok(idx)
}

/// Loads a `prior_knowledge/` folder with the official layout (native only).
#[cfg(not(target_arch = "wasm32"))]
pub fn load_official_dir(
    dir: &std::path::Path,
    token_dict: Option<&std::path::Path>,
    progress: Progress<'_>,
) -> Result<PriorTables, PriorError> {
    let source = DirFiles(dir.to_path_buf());
    let mut layout = OfficialLayout::default().resolve(&source);
    if let Some(t) = token_dict {
        // An absolute path joins to itself.
        layout.token_dict = t.display().to_string();
    }
    load_official(&source, &layout, progress)
}

pub(crate) fn first_n(v: &[String]) -> String {
    const N: usize = 10;
    let mut s = v.iter().take(N).cloned().collect::<Vec<_>>().join(", ");
    if v.len() > N {
        s.push_str(&format!(", … ({} more)", v.len() - N));
    }
    s
}
