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
    if is_tokenized_folder(req.data) {
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
    subsample(&mut rows, req.max_cells, req.seed);
    if rows.is_empty() {
        bail!("{}: no labelled cell survived QC", req.data.display());
    }
    let row_labels: Vec<String> = rows.iter().map(|&r| labels_all[r].clone()).collect();
    let (_, row_class) = label_map(&row_labels);
    let pre = stratified_split(&row_class, req.val_fraction, req.test_fraction, req.seed);
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
    let mut set = read_tokenized(req.data, Some(req.label_column))?;
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

fn empty_cell() -> genecompass_core::cells::TokenizedCell {
    genecompass_core::cells::TokenizedCell {
        input_ids: Vec::new(),
        values: Vec::new(),
        species: Default::default(),
        label: None,
    }
}
