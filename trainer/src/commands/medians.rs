//! `medians`: per-gene median dictionaries (`{ensembl_id: median}`) from count files.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use genecompass_core::tokenize::{
    CellQcOptions, GeneMatchOptions, MedianBuilder, MedianMode, TokenizeOptions, match_genes,
};

use super::tokenize::{
    InputArgs, SpeciesArg, WithProgress, check_known_genes, explain, load_token_dict, open_input,
    print_match,
};
use crate::progress::cells_bar;

/// Arguments of `medians`.
#[derive(Args, Debug)]
pub struct MediansArgs {
    /// Single-cell count files (h5ad, 10x, CSV/TSV); their values are pooled into one dict.
    #[arg(value_name = "INPUT", required = true)]
    pub inputs: Vec<PathBuf>,
    /// Token dictionary: medians are computed for its genes only.
    #[arg(long, value_name = "F")]
    pub token_dict: PathBuf,
    /// Output JSON `{ensembl_id: median}` (keys sorted).
    #[arg(long, value_name = "medians.json")]
    pub output: PathBuf,
    /// Bounded memory: a log2 histogram per gene (64 bins per doubling, median within 0.54 %)
    /// instead of keeping every non-zero value (4 bytes each).
    #[arg(long)]
    pub approx: bool,
    /// Take medians of raw counts instead of counts scaled to 10,000 per cell.
    #[arg(long)]
    pub raw_counts: bool,
    /// Species of the cells (applies to every input).
    #[arg(long, default_value_t = SpeciesArg::AUTO)]
    pub species: SpeciesArg,
    /// How each input is opened (matrix, genome, table orientation).
    #[command(flatten)]
    pub open: InputArgs,
    /// Cell metadata column naming each cell's sample: QC z-scores are computed per sample.
    #[arg(long, value_name = "COL")]
    pub sample_column: Option<String>,
}

/// For each vocabulary gene, the median of its non-zero values over the cells that pass the
/// tokenizer's QC, pooled over all inputs. Each input is streamed twice (QC statistics, then
/// values); memory is the chunk plus the accumulator.
pub fn run(args: MediansArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let vocab = load_token_dict(&args.token_dict)?;
    let mode = if args.approx {
        MedianMode::Histogram {
            bins_per_octave: 64,
        }
    } else {
        MedianMode::Exact
    };
    let normalize_total = (!args.raw_counts).then_some(1e4);
    let mut builder = MedianBuilder::new(&vocab, normalize_total, mode);
    let opts = TokenizeOptions {
        species: args.species.species(),
        qc: CellQcOptions {
            sample_column: args.sample_column.clone(),
            ..Default::default()
        },
        ..Default::default()
    };
    let gopts = GeneMatchOptions {
        species: args.species.species(),
        ortholog_fallback: false,
    };
    let (mut cells_in, mut cells_kept) = (0usize, 0usize);
    for input in &args.inputs {
        let source = open_input(input, &args.open.open_options())?;
        let info = source.info().clone();
        println!(
            "{}: {}, matrix {}, {} cells x {} genes",
            input.display(),
            info.format,
            info.matrix_path,
            info.n_cells,
            info.n_genes
        );
        for w in source.warnings() {
            println!("warning: {w}");
        }
        let gm = match_genes(source.genes(), &vocab, &gopts)
            .with_context(|| format!("matching the genes of {}", input.display()))?;
        print_match(&gm.report, vocab.len());
        check_known_genes(&gm.report, source.genes(), "the token dictionary")?;
        let bar = cells_bar(info.n_cells, "pass 1/2 QC statistics");
        let mut src = WithProgress {
            inner: source,
            bar: bar.clone(),
            pass: 0,
            passes: 2,
        };
        let qc = builder
            .add(&mut src, &opts)
            .map_err(|e| explain(e, input, &args.open.matrix))?;
        bar.finish_and_clear();
        println!(
            "  cells kept by QC: {} of {}",
            qc.after_min_genes, qc.cells_in
        );
        cells_in += qc.cells_in;
        cells_kept += qc.after_min_genes;
    }
    let medians = builder.finish();
    if medians.medians.is_empty() {
        bail!("no vocabulary gene had a non-zero value in the kept cells; nothing written");
    }
    std::fs::write(&args.output, medians.to_json())
        .with_context(|| format!("writing {}", args.output.display()))?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "wrote medians of {} genes ({} mode, {}) from {cells_kept} of {cells_in} cells -> {} ({secs:.2} s, {:.0} cells/s)",
        medians.medians.len(),
        if args.approx { "histogram" } else { "exact" },
        if args.raw_counts {
            "raw counts"
        } else {
            "counts scaled to 1e4 per cell"
        },
        args.output.display(),
        cells_in as f64 / secs.max(1e-9)
    );
    Ok(())
}
