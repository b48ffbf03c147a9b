//! Fine-tuning data: labelled tokenized cells, splits and baseline features.

use std::path::Path;

use anyhow::{Context, bail};
use genecompass_core::cells::CellSet;
use genecompass_core::tokenize::{GeneMedians, TokenDictionary, TokenizeOptions};

use super::baseline::SparseRow;
use super::data::{MemCells, is_tokenized_folder, label_map, read_tokenized, token_features};
use super::rng::Rng;
use super::split::{Split, stratified_split};

/// Everything the fine-tuning loop and the baseline need.
pub struct LabelledData {
    /// The cells (labels stripped), in split-independent order.
    pub cells: CellSet,
    /// Class index of each cell.
    pub labels: Vec<usize>,
    /// Class names (the label map: index → name).
    pub names: Vec<String>,
    /// The split.
    pub split: Split,
    /// Baseline features per cell.
    pub features: Vec<SparseRow>,
    /// What the baseline features are.
    pub feature_desc: String,
    /// The vocabulary, when known.
    pub vocab: Option<TokenDictionary>,
    /// The medians used, when tokenized here.
    pub medians: Option<GeneMedians>,
    /// How the vocabulary and medians were obtained.
    pub provenance: String,
    /// Cells in the input before QC and subsampling.
    pub cells_in_input: usize,
}

/// What the data step needs from the job.
pub struct DataRequest<'a> {
    /// Input path.
    pub data: &'a Path,
    /// Label column.
    pub label_column: &'a str,
    /// Given token dictionary.
    pub vocab: Option<TokenDictionary>,
    /// Given medians.
    pub medians: Option<GeneMedians>,
    /// Truncation length.
    pub max_genes: usize,
    /// Cap on cells (random subsample with the seed).
    pub max_cells: Option<usize>,
    /// Split fractions.
    pub val_fraction: f64,
    /// Test fraction.
    pub test_fraction: f64,
    /// Seed.
    pub seed: u64,
    /// Cells to train and validate on (with `test_where`: a split by column, not at random).
    pub train_where: Option<Where>,
    /// Cells to test on.
    pub test_where: Option<Where>,
    /// Cells to drop.
    pub exclude_where: Vec<Where>,
}

/// A `COLUMN=VALUE[,VALUE]` cell filter. Values compare as text; a number column also
/// matches `true`/`false` as 1/0 (how boolean columns are read).
#[derive(Debug, Clone, PartialEq)]
pub struct Where {
    /// The obs column.
    pub column: String,
    /// Accepted values.
    pub values: Vec<String>,
}

impl Where {
    /// Parses `COLUMN=VALUE[,VALUE]`.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let Some((column, values)) = text.split_once('=') else {
            bail!("{text:?} is not COLUMN=VALUE[,VALUE] (e.g. species=mouse)");
        };
        let values: Vec<String> = values
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        if column.trim().is_empty() || values.is_empty() {
            bail!("{text:?} is not COLUMN=VALUE[,VALUE] (e.g. species=mouse)");
        }
        Ok(Self {
            column: column.trim().to_string(),
            values,
        })
    }

    fn accepts(&self, value: &str) -> bool {
        let alias = match value {
            "1" | "1.0" => Some("true"),
            "0" | "0.0" => Some("false"),
            _ => None,
        };
        self.values
            .iter()
            .any(|v| v == value || alias.is_some_and(|a| v.eq_ignore_ascii_case(a)))
    }

    /// Which of `rows` pass, reading the column from `mem`.
    fn mask(&self, mem: &MemCells, path: &Path) -> anyhow::Result<Vec<bool>> {
        let col = mem.column(&self.column, path)?;
        let mask: Vec<bool> = col.iter().map(|v| self.accepts(v)).collect();
        if !mask.iter().any(|&m| m) {
            let mut seen: Vec<&str> = col.iter().map(String::as_str).collect();
            seen.sort_unstable();
            seen.dedup();
            seen.truncate(20);
            bail!(
                "{}: no cell has {}={}; the column's values are {seen:?}",
                path.display(),
                self.column,
                self.values.join(",")
            );
        }
        Ok(mask)
    }
}

fn subsample(rows: &mut Vec<usize>, max: Option<usize>, seed: u64) {
    if let Some(m) = max.filter(|&m| m < rows.len()) {
        Rng::new(seed, 0xCE11).shuffle(rows);
        rows.truncate(m);
        rows.sort_unstable();
    }
}

/// Loads, labels, splits and tokenizes the input.
pub fn load_labelled(req: DataRequest<'_>) -> anyhow::Result<LabelledData> {
    if !req.data.exists() {
        bail!("--data {} does not exist", req.data.display());
    }
    let cells_file = req.data.is_file()
        && req
            .data
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    if is_tokenized_folder(req.data) || cells_file {
        if req.train_where.is_some() || !req.exclude_where.is_empty() {
            bail!(
                "{}: splitting or filtering by a column needs a count file (h5ad) with that \
                 column; a tokenized dataset only carries its label",
                req.data.display()
            );
        }
        return load_tokenized(req);
    }
    let mem = MemCells::read(req.data)?;
    let labels_all = mem.column(req.label_column, req.data)?;
    let (vocab, mut provenance) = match req.vocab {
        Some(v) => (v, "token dictionary given".to_string()),
        None => (
            mem.build_vocab()?,
            "vocabulary built from the file's genes (TokenDictionary::build)".to_string(),
        ),
    };
    let opts = TokenizeOptions {
        max_len: Some(req.max_genes),
        ..Default::default()
    };
    // QC does not depend on medians: a pass with unit medians finds the cells it keeps.
    let (_, kept) = mem.tokenize_rows(None, &vocab, &GeneMedians::default(), &opts)?;
    let mut rows: Vec<usize> = kept
        .into_iter()
        .filter(|&r| !labels_all[r].is_empty() && labels_all[r] != "nan")
        .collect();
    for w in &req.exclude_where {
        let m = w.mask(&mem, req.data)?;
        let before = rows.len();
        rows.retain(|&r| !m[r]);
        tracing::info!(filter = %format!("{}={}", w.column, w.values.join(",")), dropped = before - rows.len(), "excluded cells");
    }
    subsample(&mut rows, req.max_cells, req.seed);
    if rows.is_empty() {
        bail!("{}: no labelled cell survived QC", req.data.display());
    }
    let pre = match (&req.train_where, &req.test_where) {
        (Some(tw), Some(sw)) => {
            let (tm, sm) = (tw.mask(&mem, req.data)?, sw.mask(&mem, req.data)?);
            let train_rows: Vec<usize> = rows.iter().copied().filter(|&r| tm[r]).collect();
            let train_labels: std::collections::HashSet<&str> =
                train_rows.iter().map(|&r| labels_all[r].as_str()).collect();
            let mut dropped: std::collections::BTreeMap<&str, usize> = Default::default();
            let test_rows: Vec<usize> = rows
                .iter()
                .copied()
                .filter(|&r| sm[r] && !tm[r])
                .filter(|&r| {
                    let keep = train_labels.contains(labels_all[r].as_str());
                    if !keep {
                        *dropped.entry(labels_all[r].as_str()).or_default() += 1;
                    }
                    keep
                })
                .collect();
            if !dropped.is_empty() {
                eprintln!(
                    "test cells dropped, their label is not among the training cells': {dropped:?}"
                );
            }
            if train_rows.is_empty() || test_rows.is_empty() {
                bail!(
                    "{}: the split by column leaves {} training and {} test cells",
                    req.data.display(),
                    train_rows.len(),
                    test_rows.len()
                );
            }
            let train_class = label_map(
                &train_rows
                    .iter()
                    .map(|&r| labels_all[r].clone())
                    .collect::<Vec<_>>(),
            )
            .1;
            let inner = stratified_split(&train_class, req.val_fraction, 0.0, req.seed);
            let n_train = train_rows.len();
            rows = train_rows;
            rows.extend(&test_rows);
            Split {
                train: inner.train,
                val: inner.val,
                test: (n_train..rows.len()).collect(),
            }
        }
        (None, None) => {
            let row_labels: Vec<String> = rows.iter().map(|&r| labels_all[r].clone()).collect();
            let (_, row_class) = label_map(&row_labels);
            stratified_split(&row_class, req.val_fraction, req.test_fraction, req.seed)
        }
        _ => bail!("a split by column needs both train_where and test_where"),
    };
    let medians = match req.medians {
        Some(m) => {
            provenance.push_str("; medians given");
            m
        }
        None => {
            provenance.push_str("; medians computed from the training split only");
            let train_rows: Vec<usize> = pre.train.iter().map(|&i| rows[i]).collect();
            mem.medians(&train_rows, &vocab, &opts)?
        }
    };
    let mut o = opts.clone();
    o.qc.zscore_filter = false;
    let (cells, out_rows) = mem.tokenize_rows(Some(&rows), &vocab, &medians, &o)?;
    let row_pos: std::collections::HashMap<usize, usize> =
        rows.iter().enumerate().map(|(i, &r)| (r, i)).collect();
    let which: Vec<usize> = out_rows.iter().map(|r| row_pos[r]).collect();
    let in_split = |set: &[usize]| -> Vec<usize> {
        let s: std::collections::HashSet<usize> = set.iter().copied().collect();
        (0..which.len())
            .filter(|&c| s.contains(&which[c]))
            .collect()
    };
    let split = Split {
        train: in_split(&pre.train),
        val: in_split(&pre.val),
        test: in_split(&pre.test),
    };
    let cell_labels: Vec<String> = out_rows.iter().map(|&r| labels_all[r].clone()).collect();
    let (names, labels) = label_map(&cell_labels);
    let features = out_rows.iter().map(|&r| mem.log_normalised(r)).collect();
    Ok(LabelledData {
        cells,
        labels,
        names,
        split,
        features,
        feature_desc: "log1p(count / total * 1e4) over the file's genes".into(),
        vocab: Some(vocab),
        medians: Some(medians),
        provenance,
        cells_in_input: mem.n_cells(),
    })
}

fn load_tokenized(req: DataRequest<'_>) -> anyhow::Result<LabelledData> {
    let mut set = if req.data.is_dir() {
        read_tokenized(req.data, Some(req.label_column))?
    } else {
        read_labelled_cells_file(req.data, req.label_column)?
    };
    let n = set.len();
    let mut rows: Vec<usize> = (0..n)
        .filter(|&i| set.cells[i].label.as_deref().is_some_and(|l| !l.is_empty()))
        .collect();
    subsample(&mut rows, req.max_cells, req.seed);
    let mut cells: Vec<_> = rows
        .iter()
        .map(|&i| std::mem::replace(&mut set.cells[i], empty_cell()))
        .collect();
    for c in &mut cells {
        c.input_ids.truncate(req.max_genes);
        c.values.truncate(req.max_genes);
    }
    let cell_labels: Vec<String> = cells
        .iter_mut()
        .map(|c| c.label.take().unwrap_or_default())
        .collect();
    let (names, labels) = label_map(&cell_labels);
    let split = stratified_split(&labels, req.val_fraction, req.test_fraction, req.seed);
    let features = cells.iter().map(token_features).collect();
    anyhow::Ok(LabelledData {
        cells: CellSet {
            cells,
            padded_len: set.padded_len,
        },
        labels,
        names,
        split,
        features,
        feature_desc: "tokenized values scattered into a token x cell matrix".into(),
        provenance: if req.vocab.is_some() {
            "pre-tokenized dataset; token dictionary given".into()
        } else {
            "pre-tokenized dataset; no token dictionary given".into()
        },
        vocab: req.vocab,
        medians: None,
        cells_in_input: n,
    })
    .context("preparing the tokenized dataset")
}

/// A CELLS safetensors file (`genecompass-train tokenize --label-column COL` output): its
/// labels are the metadata's `labels`, and `label_column` must be the column they came from.
fn read_labelled_cells_file(path: &std::path::Path, label_column: &str) -> anyhow::Result<CellSet> {
    let (set, meta) = crate::cells_io::read_cells_file(path)?;
    let recorded = meta.get("label_column").map(String::as_str);
    if set.cells.iter().all(|c| c.label.is_none()) {
        anyhow::bail!(
            "{} holds no labels; tokenize it with --label-column {label_column}",
            path.display()
        );
    }
    if let Some(r) = recorded.filter(|r| *r != label_column) {
        anyhow::bail!(
            "{} carries the labels of column `{r}`, not `{label_column}`; use --label-column {r} \
             or tokenize again with --label-column {label_column}",
            path.display()
        );
    }
    Ok(set)
}

fn empty_cell() -> genecompass_core::cells::TokenizedCell {
    genecompass_core::cells::TokenizedCell {
        input_ids: Vec::new(),
        values: Vec::new(),
        species: Default::default(),
        label: None,
    }
}
