//! `classify` on a single-cell file (h5ad, 10x `.h5` or matrix folder, CSV/TSV): the file is
//! tokenized here, the way the browser does it (official pipeline with the classifier's
//! vocabulary and medians, truncated to its position table), and, for an h5ad, `--write-h5ad`
//! writes a copy of the file with the predictions added to `obs`.
//!
//! Tokenized cells carry no index, so each cell's file row travels through tokenization as a
//! synthetic label column; cells the tokenizer drops (QC, no gene in the vocabulary) are the
//! rows that do not come back, and get [`FILTERED_LABEL`] in the written file.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use genecompass_core::cells::CellSet;
use genecompass_core::data::{
    CONFIDENCE_COLUMN, FILTERED_LABEL, IfExists, LABEL_COLUMN, MatrixChoice, OpenOptions,
    RowTagged, add_obs_columns_to_file, prediction_columns,
};
use genecompass_core::tokenize::{GeneMedians, TokenizeOptions, tokenize};
use genecompass_trainer::train::model_setup::checkpoint_vocab;

use super::tokenize::{explain, load_token_dict, open_input};

/// Whether `classify` tokenizes `input` itself: a single-cell file or 10x matrix folder, as
/// opposed to tokenized cells (a cells `.safetensors` file or a tokenized-dataset folder).
pub fn is_raw_cells(input: &Path) -> bool {
    if input.is_dir() {
        return ["matrix.mtx", "matrix.mtx.gz"]
            .iter()
            .any(|f| input.join(f).is_file());
    }
    input.is_file()
        && !input
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
}

/// Whether `input` is an `.h5ad` (the only input `--write-h5ad` can copy).
pub fn is_h5ad(input: &Path) -> bool {
    input.is_file()
        && input
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("h5ad"))
}

/// Cells of a single-cell file tokenized for a classifier, with the file row of each.
pub struct FileCells {
    /// The kept cells, in file order.
    pub cells: CellSet,
    /// File row (obs position) of each kept cell.
    pub rows: Vec<usize>,
    /// Cells in the file.
    pub n_obs: usize,
}

/// Where the vocabulary and medians come from.
pub struct TokenizeFor<'a> {
    /// The classifier directory (`token_dict.json`, `gene_medians.json` beside the weights).
    pub checkpoint: &'a Path,
    /// `--token-dict`, overriding the directory's.
    pub token_dict: Option<&'a Path>,
    /// `--medians`, overriding the directory's.
    pub medians: Option<&'a Path>,
    /// Truncation length.
    pub max_len: usize,
    /// Refuse, before any work, a file that already has the prediction columns.
    pub refuse_existing: bool,
}

/// Tokenizes `input` for the classifier described by `t`.
pub fn tokenize_file(input: &Path, t: &TokenizeFor<'_>) -> anyhow::Result<FileCells> {
    let vocab = match t.token_dict {
        Some(p) => load_token_dict(p)?,
        None => checkpoint_vocab(t.checkpoint)?.with_context(|| {
            format!(
                "{} has no token_dict.json, which tokenizing {} needs; pass --token-dict (and \
                 --medians) the classifier was trained with, or tokenize the file first with \
                 `genecompass-train tokenize`",
                t.checkpoint.display(),
                input.display()
            )
        })?,
    };
    let beside = t.checkpoint.join("gene_medians.json");
    let medians_path = t
        .medians
        .map(Path::to_path_buf)
        .or_else(|| beside.is_file().then_some(beside));
    let medians = match &medians_path {
        Some(p) => {
            GeneMedians::load(p).with_context(|| format!("reading medians {}", p.display()))?
        }
        None => {
            eprintln!(
                "warning: no --medians and no gene_medians.json beside the classifier: values \
                 are log2(1 + count) (every gene divided by 1)"
            );
            GeneMedians::default()
        }
    };
    let source = open_input(input, &OpenOptions::default())?;
    for w in source.warnings() {
        eprintln!("warning: {w}");
    }
    if t.refuse_existing
        && let Some(c) = [LABEL_COLUMN, CONFIDENCE_COLUMN]
            .into_iter()
            .find(|c| source.cells().column(c).is_some())
    {
        bail!(
            "{}: obs already has a column `{c}` (an earlier annotation?); pass --replace-columns \
             to overwrite it in the written file",
            input.display()
        );
    }
    let n_obs = source.info().n_cells;
    let mut src = RowTagged::new(source);
    let opts = TokenizeOptions {
        label_column: Some(RowTagged::COLUMN.into()),
        max_len: Some(t.max_len),
        ..Default::default()
    };
    let (mut set, summary) = tokenize(&mut src, &vocab, &medians, &opts)
        .map_err(|e| explain(e, input, &MatrixChoice::Auto))?;
    let rows = src
        .take_rows(&mut set)
        .context("internal: a tokenized cell lost its file row")?;
    eprintln!(
        "{}: {} of {n_obs} cells passed QC and the vocabulary filter ({} genes matched)",
        input.display(),
        summary.cells_out,
        summary.genes.matched_to_vocabulary
    );
    if set.is_empty() {
        bail!(
            "{}: no cell passed QC and the vocabulary filter; nothing to classify",
            input.display()
        );
    }
    Ok(FileCells {
        cells: set,
        rows,
        n_obs,
    })
}

/// Writes `input` to `output` with [`LABEL_COLUMN`] and [`CONFIDENCE_COLUMN`] in `obs`:
/// `predicted[i]` (label, probability) belongs to file row `h5.rows[i]`; other rows get
/// [`FILTERED_LABEL`] and NaN.
pub fn write_h5ad(
    input: &Path,
    output: &Path,
    h5: &FileCells,
    predicted: &[(&str, f32)],
    replace: bool,
) -> anyhow::Result<()> {
    let same = |p: &Path| std::fs::canonicalize(p).ok();
    if output.exists() && same(output) == same(input) {
        bail!(
            "--write-h5ad {} is the input file; write the annotated copy to another path",
            output.display()
        );
    }
    let mut by_row: Vec<Option<(&str, f32)>> = vec![None; h5.n_obs];
    for (&row, &p) in h5.rows.iter().zip(predicted) {
        by_row[row] = Some(p);
    }
    let filtered = by_row.iter().filter(|p| p.is_none()).count();
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let if_exists = if replace {
        IfExists::Replace
    } else {
        IfExists::Fail
    };
    add_obs_columns_to_file(input, output, &prediction_columns(&by_row), if_exists)
        .with_context(|| format!("writing {}", output.display()))?;
    eprintln!(
        "wrote {} with obs `{LABEL_COLUMN}` and `{CONFIDENCE_COLUMN}` ({filtered} cells \
         `{FILTERED_LABEL}`)",
        output.display()
    );
    Ok(())
}

/// The `--write-h5ad` path, refused up front when the input is not an h5ad.
pub fn check_write_target(input: &Path, write_h5ad: Option<&PathBuf>) -> anyhow::Result<()> {
    if let Some(out) = write_h5ad
        && !is_h5ad(input)
    {
        bail!(
            "--write-h5ad {} needs an .h5ad --input (the predictions are added to a copy of \
             it); {} is not one",
            out.display(),
            input.display()
        );
    }
    Ok(())
}
