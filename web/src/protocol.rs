//! Messages between the page and the annotation worker.
//!
//! Control messages travel as JSON strings (small, easy to log); file and model bytes travel
//! beside them as `Uint8Array`s so they are not re-encoded. Defined once here and used by both
//! sides, so the two halves of the bundle cannot drift apart.

use serde::{Deserialize, Serialize};

/// What the page asks the worker to do. Parts follow the JSON in the posted array, in this
/// order: the data file (the page's `File`, which the worker reads slice by slice, or its
/// bytes), `config.json`, weights, token dictionary, then medians when `has_medians`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    /// The uploaded file's name (for messages only; the format is detected from content).
    pub file_name: String,
    /// The model to annotate with.
    pub model: ModelMeta,
    /// Cells per forward pass.
    pub batch_size: usize,
    /// Where the model runs.
    #[serde(default)]
    pub backend: BackendChoice,
}

/// Where the worker runs the model. The tokenizer and everything after inference run on the
/// CPU either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendChoice {
    /// WebGPU on a hardware adapter, else the CPU: a software adapter (SwiftShader, llvmpipe,
    /// WARP) emulates the GPU on the CPU and is far slower than the CPU backend.
    #[default]
    Auto,
    /// WebGPU whatever the adapter; the CPU when the browser has none (the page says why).
    Webgpu,
    /// burn's flex CPU backend.
    Cpu,
}

impl BackendChoice {
    /// The `<select>` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Webgpu => "webgpu",
            Self::Cpu => "cpu",
        }
    }

    /// From a `<select>` value; anything else is `Auto`.
    pub fn parse(s: &str) -> Self {
        match s {
            "webgpu" => Self::Webgpu,
            "cpu" => Self::Cpu,
            _ => Self::Auto,
        }
    }
}

/// Everything the page can ask the worker: annotate a file, or, on the last annotation (which
/// the worker keeps, with the model), perturb genes, write the labelled h5ad, read a label
/// column of the file for comparison, or lay the cells out by UMAP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Request {
    /// Annotate a file; it and the model's bytes follow (see [`RunRequest`]).
    Annotate(RunRequest),
    /// Perturb genes in the last annotated cells; no bytes follow.
    Perturb(PerturbRequest),
    /// The annotated h5ad with the predictions in `obs`; the file's bytes follow again (the
    /// worker does not hold on to them between requests). Answered by [`Reply::H5ad`].
    WriteH5ad {
        /// The file's name (messages, and a check that it is the annotated file).
        file_name: String,
        /// Replace `genecompass_label` / `genecompass_confidence` if the file already has them
        /// (the CLI's `--replace-columns`).
        replace: bool,
    },
    /// A text column of the annotated file for the annotated cells; answered by
    /// [`Reply::Truth`].
    Truth {
        /// Column name.
        column: String,
    },
    /// A 2-D UMAP of the last annotation's pooled embeddings (settings:
    /// [`crate::layout::umap_options`]); answered by [`Reply::UmapProgress`] then [`Reply::Umap`]
    /// or [`Reply::UmapFailed`].
    Umap {
        /// Echoed in the replies, so the page can drop those of an earlier annotation.
        ticket: u64,
    },
}

/// A text (categorical) `obs` column of the file, a candidate for the true labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LabelColumn {
    /// Column name.
    pub name: String,
    /// Distinct non-empty values.
    pub distinct: usize,
}

/// What to do to the genes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PerturbMode {
    /// Remove the gene from each cell that holds it.
    Delete,
    /// Multiply its value by 10 000 and re-rank (the official over-expression).
    Overexpress,
}

/// In-silico perturbation of the last annotated cells, one gene at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerturbRequest {
    /// Gene names as typed (Ensembl ids or HGNC/MGI symbols).
    pub genes: Vec<String>,
    /// Delete or over-express.
    pub mode: PerturbMode,
    /// Cells (and perturbed cells) per forward pass.
    pub batch_size: usize,
}

/// One of a perturbation's most affected genes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AffectedRow {
    /// Ensembl id (the dictionary's token).
    pub ensembl: String,
    /// Approved symbol, when the embedded tables know it.
    pub symbol: Option<String>,
    /// Cells averaged over.
    pub cells: usize,
    /// Mean cosine between the gene's embedding before and after (low = strongly affected).
    pub mean_cos: f64,
}

/// A perturbed cell on the original PCA axes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerturbedPoint {
    /// The cell ([`CellRow::index`]).
    pub index: usize,
    /// Its pooled embedding after the perturbation, projected on the original axes.
    pub point: [f32; 2],
    /// Predicted label index before (argmax).
    pub before: usize,
    /// Predicted label index after (argmax).
    pub after: usize,
}

/// The results of perturbing one gene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenePerturbation {
    /// The name as typed.
    pub query: String,
    /// Its Ensembl id.
    pub ensembl: String,
    /// Its approved symbol, when known.
    pub symbol: Option<String>,
    /// Cells holding the gene (the cells perturbed).
    pub cells: usize,
    /// 1 − mean CLS cosine between each cell and its perturbed version.
    pub cls_shift: Option<f64>,
    /// The 10 most affected genes (lowest mean cosine first).
    pub top: Vec<AffectedRow>,
    /// Every perturbed cell.
    pub points: Vec<PerturbedPoint>,
}

impl GenePerturbation {
    /// Cells whose predicted label changed.
    pub fn changed(&self) -> usize {
        self.points.iter().filter(|p| p.before != p.after).count()
    }

    /// `symbol (ENSMUSG…)` or the id alone.
    pub fn display(&self) -> String {
        match &self.symbol {
            Some(s) => format!("{s} ({})", self.ensembl),
            None => self.ensembl.clone(),
        }
    }
}

/// Identity of a model's files, so the worker can keep a loaded model between runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    /// Display name.
    pub name: String,
    /// SHA-256 of the weights file: the same key as the browser cache.
    pub key: String,
    /// File name of the weights (`model.safetensors` or `model.bpk`), which picks the reader.
    pub weights_name: String,
    /// File name of the token dictionary (`.json` or `.pickle`), for messages.
    pub token_dict_name: String,
    /// Whether a medians file follows the token dictionary.
    pub has_medians: bool,
}

/// What was read from the file, before tokenization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct FileReport {
    /// File name.
    pub file: String,
    /// Format as the reader describes it (e.g. "h5ad (anndata ≥0.8 schema), X as CSR").
    pub format: String,
    /// Which matrix was read (`X`, `raw/X`, `layers/counts`, ...).
    pub matrix: String,
    /// Cells in the file.
    pub n_cells: usize,
    /// Genes (columns) in the file.
    pub n_genes: usize,
    /// Species used for gene matching.
    pub species: String,
    /// How the species was decided.
    pub species_how: String,
    /// Which gene identifiers matched (`symbols`, `ensembl (names)`, ...).
    pub identifier: String,
    /// Genes with an Ensembl id.
    pub mapped_to_ensembl: usize,
    /// Genes in the model's vocabulary.
    pub in_vocab: usize,
    /// Tokens in the model's vocabulary.
    pub vocab_len: usize,
    /// How the values look, e.g. "raw counts (non-negative integers)".
    pub values: String,
    /// Whether the values are raw counts (what GeneCompass tokenizes).
    pub raw_counts: bool,
    /// Reader and matcher warnings.
    pub warnings: Vec<String>,
    /// Whether the file is an h5ad (the predictions can be written back into it).
    pub h5ad: bool,
    /// SHA-256 of the file (finds it among the registry's datasets).
    pub sha256: String,
    /// Text columns of `obs`, candidates for true labels.
    pub label_columns: Vec<LabelColumn>,
}

/// What tokenization kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct QcReport {
    /// Cells read.
    pub cells_in: usize,
    /// Cells tokenized (after QC and the vocabulary filter).
    pub cells_kept: usize,
    /// Cells without any vocabulary gene.
    pub cells_empty: usize,
    /// Cells cut to the model's longest input.
    pub cells_truncated: usize,
    /// Share of all counts on vocabulary genes.
    pub count_share: f64,
    /// Vocabulary genes used.
    pub genes_used: usize,
    /// Of those, genes without a median (divided by 1).
    pub genes_without_median: usize,
    /// Whether the model came with medians.
    pub medians: bool,
    /// Unmatched genes carrying the most counts.
    pub top_unmatched: Vec<(String, f64)>,
}

/// One annotated cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellRow {
    /// Position among the tokenized cells (file order, after QC).
    pub index: usize,
    /// Row of the file (obs position) the cell came from.
    pub row: usize,
    /// Cell name (barcode) from the file.
    pub name: String,
    /// Class probabilities, in label order.
    pub probabilities: Vec<f32>,
}

/// Replies from the worker, in the order they are sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reply {
    /// The worker has loaded its wasm and listens.
    Ready,
    /// A step started (shown as the status line).
    Stage {
        /// What is happening.
        message: String,
    },
    /// The file was opened and its genes matched.
    Report(FileReport),
    /// Tokenization finished.
    Qc(QcReport),
    /// Inference starts.
    Started {
        /// Cells to classify.
        cells: usize,
        /// Class names.
        labels: Vec<String>,
        /// Compute backend, for display.
        backend: String,
    },
    /// Results of the batches finished since the last message: the worker posts at most every
    /// 250 ms (the first batch at once), since the page redraws per message.
    Batch {
        /// Their cells.
        rows: Vec<CellRow>,
        /// Cells done so far.
        done: usize,
        /// Seconds of inference so far.
        seconds: f64,
    },
    /// A 2-D PCA of the cells' pooled embeddings (sent after the last batch).
    Embedding {
        /// Coordinates, indexed by [`CellRow::index`].
        points: Vec<[f32; 2]>,
        /// Share of the variance on each axis.
        explained: [f64; 2],
    },
    /// All cells classified.
    Done {
        /// Cells classified.
        cells: usize,
        /// Seconds of inference (model forward passes only).
        seconds: f64,
        /// The worker's wasm memory at the end, in bytes: its peak, as wasm memory only grows.
        #[serde(default)]
        memory_bytes: Option<f64>,
    },
    /// Perturbation progress.
    PerturbProgress {
        /// What is running.
        stage: String,
        /// Perturbed cells done in this stage.
        done: usize,
        /// Perturbed cells in this stage.
        total: usize,
        /// Seconds of this stage so far.
        seconds: f64,
    },
    /// The perturbation results, one entry per gene, plus notes (e.g. genes no cell holds).
    Perturbed {
        /// Per gene, in the order asked.
        genes: Vec<GenePerturbation>,
        /// Notes to show beside the results.
        notes: Vec<String>,
        /// Seconds in all.
        seconds: f64,
    },
    /// A perturbation request was refused or failed (the annotation results stay valid).
    PerturbFailed {
        /// The message.
        message: String,
    },
    /// The labelled h5ad: its bytes follow the JSON (see [`Request::WriteH5ad`]).
    H5ad {
        /// File name to save it under.
        file_name: String,
        /// Rows labelled `filtered` (dropped by quality control).
        filtered: usize,
    },
    /// Writing the labelled h5ad failed (core's message); the annotation stays valid.
    H5adFailed {
        /// The message.
        message: String,
    },
    /// A label column's values for the annotated cells, in [`CellRow::index`] order; empty
    /// strings are missing values.
    Truth {
        /// Column name.
        column: String,
        /// One value per annotated cell.
        values: Vec<String>,
    },
    /// Reading a label column failed; the annotation stays valid.
    TruthFailed {
        /// The message.
        message: String,
    },
    /// UMAP progress (throttled).
    UmapProgress {
        /// The request's ticket.
        ticket: u64,
        /// Fraction done, 0 to 1.
        fraction: f32,
    },
    /// The UMAP layout.
    Umap {
        /// The request's ticket.
        ticket: u64,
        /// Coordinates, indexed by [`CellRow::index`].
        points: Vec<[f32; 2]>,
        /// Seconds it took.
        seconds: f64,
    },
    /// The UMAP was refused or failed; the PCA stays.
    UmapFailed {
        /// The request's ticket.
        ticket: u64,
        /// The message.
        message: String,
    },
    /// The run stopped; the message says why and what to do.
    Failed {
        /// The message.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_round_trip_as_tagged_json() {
        let r = Reply::Batch {
            rows: vec![CellRow {
                index: 3,
                row: 4,
                name: "AAAC-1".into(),
                probabilities: vec![0.25, 0.75],
            }],
            done: 4,
            seconds: 0.5,
        };
        let s = serde_json::to_string(&r).unwrap();
        assert!(s.starts_with(r#"{"kind":"batch""#), "{s}");
        assert_eq!(serde_json::from_str::<Reply>(&s).unwrap(), r);
        let ready = serde_json::to_string(&Reply::Ready).unwrap();
        let req = Request::Perturb(PerturbRequest {
            genes: vec!["Ins2".into()],
            mode: PerturbMode::Overexpress,
            batch_size: 8,
        });
        let s = serde_json::to_string(&req).unwrap();
        assert!(s.starts_with(r#"{"kind":"perturb""#), "{s}");
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), req);
        assert_eq!(ready, r#"{"kind":"ready"}"#);
        let umap = serde_json::to_string(&Request::Umap { ticket: 3 }).unwrap();
        assert_eq!(umap, r#"{"kind":"umap","ticket":3}"#);
    }

    #[test]
    fn backend_choice_defaults_to_auto_and_round_trips() {
        for b in [
            BackendChoice::Auto,
            BackendChoice::Webgpu,
            BackendChoice::Cpu,
        ] {
            assert_eq!(BackendChoice::parse(b.as_str()), b);
            let s = serde_json::to_string(&b).unwrap();
            assert_eq!(s, format!("\"{}\"", b.as_str()));
        }
        assert_eq!(BackendChoice::parse("gpu?"), BackendChoice::Auto);
        // A request from before the choice existed still reads.
        let old = r#"{"file_name":"a.h5ad","model":{"name":"m","key":"k","weights_name":"model.safetensors","token_dict_name":"t.json","has_medians":false},"batch_size":4}"#;
        let req: RunRequest = serde_json::from_str(old).unwrap();
        assert_eq!(req.backend, BackendChoice::Auto);
    }
}
