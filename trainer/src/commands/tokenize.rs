//! `tokenize`: single-cell count files (h5ad, 10x, CSV/TSV) → tokenized cells.
//!
//! Prints what was read (format, matrix, species and how it was decided, gene matching and the
//! share of counts the matched genes carry) before the long passes, then what QC kept, then writes
//! either a CELLS safetensors file (what `embed` / `classify` read) or an official tokenized
//! dataset folder (`--format hf`, rows padded to 2048 like the published ones).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use genecompass_core::cells::hf_dataset::write_hf_dataset;
use genecompass_core::cells::{CellSet, Species};
use genecompass_core::data::{CellSource, CellTable, CsrChunk, DataError, GeneColumns, MatrixInfo};
use genecompass_core::tokenize::{
    EmbeddedGenes, GeneMatch, GeneMatchOptions, GeneMedians, GeneTable, TokenDictionary,
    TokenizeError, TokenizeOptions, TokenizePlan, TokenizeStream, match_genes,
    plan_tokenize_matched, tokenize_each,
};
use indicatif::ProgressBar;
use serde_json::json;

pub use super::input_args::{InputArgs, open_input, parse_matrix};
pub use super::species_arg::SpeciesArg;
pub use super::tokenize_report::{check_known_genes, explain, print_match};
use super::tokenize_report::{print_coverage, print_summary};
use crate::cells_io::{CellsLayout, CellsShape, CellsWriter, RaggedWriter};
use crate::progress::cells_bar;

/// Output layout of `tokenize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    /// One CELLS safetensors file (input_ids, values, species, attention_mask, lengths; labels
    /// and provenance in the metadata), rows padded to the longest cell.
    #[default]
    Safetensors,
    /// An official tokenized dataset folder (`datasets.load_from_disk`), rows padded to --max-genes.
    Hf,
}

/// Arguments of `tokenize`.
#[derive(Args, Debug)]
pub struct TokenizeArgs {
    /// Single-cell file: h5ad, 10x `.h5`, 10x matrix folder, or a CSV/TSV count table.
    #[arg(value_name = "INPUT")]
    pub input: PathBuf,
    /// Output: a `.safetensors` file, or a folder with `--format hf`.
    #[arg(long, value_name = "OUT")]
    pub output: PathBuf,
    /// Species of the cells: auto, human, mouse, or an added species' code (2-15).
    #[arg(long, default_value_t = SpeciesArg::AUTO)]
    pub species: SpeciesArg,
    /// Token dictionary of the model (`human_mouse_tokens.pickle` or JSON `{token: id}`).
    #[arg(long, value_name = "F", conflicts_with = "build_vocab")]
    pub token_dict: Option<PathBuf>,
    /// Without --token-dict: build a dictionary from this file's genes and write it beside the
    /// output (`OUT.token_dict.json`). Its ids are NOT those of the official checkpoints: use it
    /// only to train a model from scratch.
    #[arg(long)]
    pub build_vocab: bool,
    /// Gene medians (`{ensembl_id: median}`, pickle or JSON; see `genecompass-train medians`).
    /// Without it every gene is divided by 1 (the official rule for genes missing from the dict).
    #[arg(long, value_name = "F")]
    pub medians: Option<PathBuf>,
    /// Cell metadata column copied as each cell's label (e.g. `cell_type`).
    #[arg(long, value_name = "COL")]
    pub label_column: Option<String>,
    /// Not official: a gene missing from the dictionary (or a symbol found only in the other
    /// species' table) is replaced by its unique one-to-one human/mouse ortholog that is in it,
    /// e.g. mouse cells against a human-only dictionary. The report counts these genes as
    /// `ortholog`; the cells keep their own species flag.
    #[arg(long)]
    pub ortholog_fallback: bool,
    /// How the input is opened (matrix, genome, table orientation).
    #[command(flatten)]
    pub open: InputArgs,
    /// Keep at most this many top-ranked genes per cell (official 2048; 0 keeps all).
    #[arg(long, default_value_t = 2048)]
    pub max_genes: usize,
    /// Scale each cell to 10,000 counts before the median division (the official line that is
    /// commented out, GitHub issue #23). Off by default, like the official code.
    #[arg(long)]
    pub normalize_total: bool,
    /// Cell metadata column naming each cell's sample: QC z-scores are computed per sample.
    #[arg(long, value_name = "COL")]
    pub sample_column: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Safetensors)]
    pub format: OutputFormat,
    /// Layout of a safetensors output: `padded` ([N, L] tensors, the model's input as is) or
    /// `ragged` (tokens end to end with `offsets`; 4–5× smaller on real corpora). Every
    /// command reads both.
    #[arg(long, value_enum, default_value_t = CellsLayout::Padded)]
    pub layout: CellsLayout,
    /// Cells read per chunk. A safetensors output streams to disk, so memory is bounded by the
    /// chunk; `--format hf` holds the tokens in memory.
    #[arg(long, default_value_t = 1024)]
    pub chunk_cells: usize,
}

/// Loads a token dictionary, saying what to do when it is not one.
pub fn load_token_dict(path: &Path) -> anyhow::Result<TokenDictionary> {
    if !path.exists() {
        bail!(
            "token dictionary {} does not exist; pass the model's dictionary \
             (human_mouse_tokens.pickle or token_dict.json)",
            path.display()
        );
    }
    TokenDictionary::load(path)
        .with_context(|| format!("reading token dictionary {}", path.display()))
}

/// The file that `--build-vocab` writes beside `output`.
pub fn vocab_path_beside(output: &Path) -> PathBuf {
    output.with_extension("token_dict.json")
}

/// SHA-256 (hex) of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A source that advances a progress bar as chunks are read (one bar per pass).
pub struct WithProgress {
    /// The wrapped source.
    pub inner: Box<dyn CellSource>,
    /// The bar, reset at each rewind.
    pub bar: ProgressBar,
    /// Passes started so far.
    pub pass: u32,
    /// Passes in all (the last one is named "tokenize").
    pub passes: u32,
}

impl CellSource for WithProgress {
    fn info(&self) -> &MatrixInfo {
        self.inner.info()
    }
    fn genes(&self) -> &GeneColumns {
        self.inner.genes()
    }
    fn cells(&self) -> &CellTable {
        self.inner.cells()
    }
    fn next_chunk(&mut self, max_cells: usize) -> Result<Option<CsrChunk>, DataError> {
        let c = self.inner.next_chunk(max_cells)?;
        if let Some(c) = &c {
            self.bar.inc(c.n_cells() as u64);
        }
        Ok(c)
    }
    fn rewind(&mut self) -> Result<(), DataError> {
        self.pass += 1;
        self.bar.reset();
        let what = if self.pass < self.passes {
            "QC statistics"
        } else {
            "tokenize"
        };
        self.bar
            .set_message(format!("pass {}/{} {what}", self.pass, self.passes));
        self.inner.rewind()
    }
    fn recycle(&mut self, chunk: CsrChunk) {
        self.inner.recycle(chunk)
    }
    fn warnings(&self) -> &[String] {
        self.inner.warnings()
    }
    fn stored_entries(&self) -> Option<usize> {
        self.inner.stored_entries()
    }
}

/// Every Ensembl id of the embedded tables of `species`, sorted, de-duplicated.
pub fn embedded_gene_ids(species: Species, biotypes: Option<&[String]>) -> Vec<String> {
    let mut ids: Vec<String> = GeneTable::embedded(species)
        .records()
        .filter(|r| !r.ensembl_id.is_empty())
        .filter(|r| biotypes.is_none_or(|b| b.iter().any(|x| x == r.biotype)))
        .map(|r| r.ensembl_id.to_string())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// `--build-vocab`: `<pad>`, `<mask>`, then the file's genes that map to an Ensembl id, in file order.
fn build_file_vocab(
    source: &dyn CellSource,
    gopts: &GeneMatchOptions,
) -> anyhow::Result<(TokenDictionary, GeneMatch)> {
    let gm = match_genes(source.genes(), &EmbeddedGenes, gopts)?;
    check_known_genes(
        &gm.report,
        source.genes(),
        "the embedded HGNC/MGI gene tables",
    )?;
    let vocab = TokenDictionary::build(
        gm.ensembl
            .iter()
            .zip(&gm.tokens)
            .filter(|(_, t)| t.is_some())
            .filter_map(|(e, _)| e.clone()),
    );
    let gm = gm.renumbered(&vocab);
    Ok((vocab, gm))
}

/// Runs `tokenize`.
pub fn run(args: TokenizeArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    GeneTable::warm_embedded(args.species.species());
    if args.format == OutputFormat::Hf && args.layout == CellsLayout::Ragged {
        bail!(
            "--layout ragged applies to safetensors outputs; a --format hf dataset folder is always \
             padded to --max-genes like the published ones. Drop one of the two flags"
        );
    }
    let vocab_given = match &args.token_dict {
        Some(p) => Some(load_token_dict(p)?),
        None if args.build_vocab => None,
        None => bail!(
            "no --token-dict given. Token ids must be those of the model you will use:\n  \
             - pass the checkpoint's dictionary: --token-dict prior_knowledge/human_mouse_tokens.pickle (or a JSON {{token: id}});\n  \
             - or build one from the embedded gene tables: genecompass-train vocab --species human,mouse --output token_dict.json;\n  \
             - or pass --build-vocab to make a dictionary of this file's genes (written beside the output; \
             for training from scratch only, NOT compatible with official checkpoints)"
        ),
    };
    let medians = match &args.medians {
        Some(p) => {
            GeneMedians::load(p).with_context(|| format!("reading medians {}", p.display()))?
        }
        None => GeneMedians::default(),
    };
    let source = open_input(&args.input, &args.open.open_options())?;
    let info = source.info().clone();
    println!("input:            {}", args.input.display());
    println!("format:           {}", info.format);
    println!("matrix:           {}", info.matrix_path);
    println!("cells x genes:    {} x {}", info.n_cells, info.n_genes);
    for w in source.warnings() {
        println!("warning:          {w}");
    }
    for (what, col) in [
        ("label", &args.label_column),
        ("sample", &args.sample_column),
    ] {
        if let Some(c) = col
            && source.cells().column(c).is_none()
        {
            let names: Vec<&str> = source
                .cells()
                .columns
                .iter()
                .map(|(n, _)| n.as_str())
                .collect();
            bail!(
                "{}: {what} column {c:?} not found in the cell metadata; available columns: {names:?}",
                args.input.display()
            );
        }
    }
    let opts = TokenizeOptions {
        species: args.species.species(),
        label_column: args.label_column.clone(),
        max_len: (args.max_genes > 0).then_some(args.max_genes),
        normalize_total: args.normalize_total.then_some(1e4),
        chunk_cells: args.chunk_cells.max(1),
        ortholog_fallback: args.ortholog_fallback,
        qc: genecompass_core::tokenize::CellQcOptions {
            sample_column: args.sample_column.clone(),
            ..Default::default()
        },
        ..Default::default()
    };
    let gopts = opts.gene_match();
    let (vocab, gm, vocab_file) = match vocab_given {
        Some(v) => {
            let gm = match_genes(source.genes(), &v, &gopts)
                .with_context(|| format!("matching the genes of {}", args.input.display()))?;
            (v, gm, None)
        }
        None => {
            let (v, gm) = build_file_vocab(source.as_ref(), &gopts)?;
            (v, gm, Some(vocab_path_beside(&args.output)))
        }
    };
    print_match(&gm.report, vocab.len());
    check_known_genes(&gm.report, source.genes(), "the token dictionary")?;
    if args.medians.is_none() {
        println!(
            "warning:          no --medians: values are log2(1 + count) (every gene divided by 1); pass the \
             medians the model was trained with, or compute some with `genecompass-train medians`"
        );
    }
    if let Some(p) = &vocab_file {
        println!(
            "warning:          --build-vocab: a new dictionary of {} tokens, NOT compatible with official \
             checkpoints; saved to {} once tokenization succeeds",
            vocab.len(),
            p.display()
        );
    }

    let bar = cells_bar(info.n_cells, "pass 1/2 QC statistics");
    let mut src = WithProgress {
        inner: source,
        bar: bar.clone(),
        pass: 0,
        passes: 2,
    };
    tracing::debug!(seconds = start.elapsed().as_secs_f64(), "genes matched");
    let plan = plan_tokenize_matched(&mut src, gm, &vocab, &medians, &opts)
        .map_err(|e| explain(e, &args.input, &args.open.matrix))?;
    tracing::debug!(seconds = start.elapsed().as_secs_f64(), "pass 1 done");
    let summary = plan.summary();
    bar.suspend(|| print_coverage(&summary));
    if plan.cells_out() == 0 {
        bar.finish_and_clear();
        print_summary(&summary, start.elapsed().as_secs_f64());
        bail!(
            "{}: no cell passed QC and the vocabulary filter ({} cells in); nothing written",
            args.input.display(),
            summary.qc.cells_in
        );
    }

    let medians_sha = if args.medians.is_some() {
        sha256_hex(medians.to_json().as_bytes())
    } else {
        "none".to_string()
    };
    let options = json!({
        "species": args.species.species().map(Species::name),
        "matrix": info.matrix_path,
        "max_genes": args.max_genes,
        "normalize_total": opts.normalize_total,
        "sample_column": args.sample_column,
        "label_column": args.label_column,
        "token_dict": args.token_dict.as_ref().map(|p| p.display().to_string())
            .or_else(|| vocab_file.as_ref().map(|p| p.display().to_string())),
        "built_vocab": vocab_file.is_some(),
        "medians": args.medians.as_ref().map(|p| p.display().to_string()),
        "ortholog_fallback": args.ortholog_fallback,
    });
    let provenance = HashMap::from([
        ("format".to_string(), "genecompass-cells".to_string()),
        ("source".to_string(), args.input.display().to_string()),
        ("vocab_sha256".to_string(), vocab.sha256().to_string()),
        ("vocab_size".to_string(), vocab.len().to_string()),
        ("medians_sha256".to_string(), medians_sha),
        ("options".to_string(), options.to_string()),
        ("summary".to_string(), serde_json::to_string(&summary)?),
    ]);
    if let Some(dir) = args.output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    write_output(&args, &mut src, plan, &opts, provenance)?;
    bar.finish_and_clear();
    print_summary(&summary, start.elapsed().as_secs_f64());
    if let Some(p) = &vocab_file {
        vocab
            .save_json(p)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    println!(
        "wrote {} cells -> {} ({:.2} s total)",
        summary.cells_out,
        args.output.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Pass 2 ranked straight into the ragged output's run buffers ([`RaggedWriter`]).
fn fill_ragged(
    args: &TokenizeArgs,
    src: &mut WithProgress,
    plan: TokenizePlan,
    opts: &TokenizeOptions,
    out: RaggedWriter,
) -> anyhow::Result<()> {
    let stream = TokenizeStream::new(src, plan, opts)
        .map_err(|e| explain(e, &args.input, &args.open.matrix))?;
    // Both callbacks use the writer, one at a time; the first error it gives is kept whole.
    let out = std::cell::RefCell::new(out);
    let failed = std::cell::RefCell::new(None);
    let fail = |e: anyhow::Error| {
        let message = format!("{e:#}");
        failed.borrow_mut().get_or_insert(e);
        TokenizeError::Options(message)
    };
    let filled = stream.fill_ragged(
        &mut |tokens| out.borrow_mut().run(tokens).map_err(fail),
        &mut |run| out.borrow_mut().filled(run).map_err(fail),
    );
    if let Some(e) = failed.into_inner() {
        return Err(e);
    }
    filled.map_err(|e| explain(e, &args.input, &args.open.matrix))?;
    out.into_inner().finish()
}

/// Pass 2, straight into the output: the safetensors file is filled as cells stream (memory
/// bounded by the chunk size); the dataset folder, written by Arrow IPC, takes them in memory.
fn write_output(
    args: &TokenizeArgs,
    src: &mut WithProgress,
    plan: TokenizePlan,
    opts: &TokenizeOptions,
    mut provenance: HashMap<String, String>,
) -> anyhow::Result<()> {
    match args.format {
        OutputFormat::Safetensors => {
            if let Some(c) = &args.label_column {
                provenance.insert("label_column".into(), c.clone());
            }
            let shape = CellsShape {
                cells: plan.cells_out(),
                longest: plan.longest(),
                tokens: plan.tokens(),
            };
            if args.layout == CellsLayout::Ragged {
                let out = RaggedWriter::create(
                    &args.output,
                    shape,
                    plan.written_lengths(),
                    plan.species(),
                    plan.labels_out(),
                    provenance,
                )?;
                return fill_ragged(args, src, plan, opts, out);
            }
            let mut out = CellsWriter::create(
                &args.output,
                args.layout,
                shape,
                plan.labels_out(),
                provenance,
            )?;
            let mut failed = None;
            let streamed = tokenize_each(src, plan, opts, &mut |cell| {
                out.push_owned(cell).map_err(|e| {
                    let message = format!("{e:#}");
                    failed = Some(e);
                    TokenizeError::Options(message)
                })
            });
            if let Some(e) = failed {
                return Err(e);
            }
            streamed.map_err(|e| explain(e, &args.input, &args.open.matrix))?;
            out.finish()
        }
        OutputFormat::Hf => {
            let mut cells = Vec::with_capacity(plan.cells_out());
            tokenize_each(src, plan, opts, &mut |c| {
                cells.push(c);
                Ok(())
            })
            .map_err(|e| explain(e, &args.input, &args.open.matrix))?;
            let cells = CellSet {
                cells,
                padded_len: None,
            };
            let label = args.label_column.as_deref().map(|c| {
                if ["input_ids", "values", "length", "species"].contains(&c) {
                    "label"
                } else {
                    c
                }
            });
            let pad = (args.max_genes > 0).then_some(args.max_genes);
            write_hf_dataset(&args.output, &cells, pad, label)
                .with_context(|| format!("writing dataset folder {}", args.output.display()))?;
            let meta: serde_json::Map<String, serde_json::Value> = provenance
                .into_iter()
                .map(|(k, v)| {
                    let v = match k.as_str() {
                        "options" | "summary" => {
                            serde_json::from_str(&v).unwrap_or(serde_json::Value::String(v))
                        }
                        _ => serde_json::Value::String(v),
                    };
                    (k, v)
                })
                .collect();
            let p = args.output.join("genecompass_tokenize.json");
            std::fs::write(&p, serde_json::to_string_pretty(&meta)?)
                .with_context(|| format!("writing {}", p.display()))
        }
    }
}
