//! How the commands that read raw single-cell files open them: which matrix of an h5ad, which
//! genome of a mixed-species 10x `.h5`, which axis of a CSV/TSV holds cells. Each choice is
//! automatic by default and reported, and can be forced where the detection is wrong.

use std::path::Path;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use genecompass_core::data::{
    CellSource, GenomeChoice, MatrixChoice, OpenOptions, Replay, TableOrientation, open_path_with,
};

/// Parses `--matrix`: auto, X, raw or layer:NAME.
pub fn parse_matrix(s: &str) -> Result<MatrixChoice, String> {
    match s {
        "auto" => Ok(MatrixChoice::Auto),
        "X" | "x" => Ok(MatrixChoice::X),
        "raw" | "raw/X" | "raw.X" => Ok(MatrixChoice::RawX),
        _ => match s
            .strip_prefix("layer:")
            .or_else(|| s.strip_prefix("layers/"))
        {
            Some(name) if !name.is_empty() => Ok(MatrixChoice::Layer(name.to_string())),
            _ => Err(format!(
                "unknown matrix {s:?}: use auto, X, raw or layer:NAME (e.g. layer:counts)"
            )),
        },
    }
}

/// Which axis of a CSV/TSV table holds cells.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrientationArg {
    /// Decided from the row and column names (gene-like names mark the gene axis).
    #[default]
    Auto,
    /// Rows are cells, columns genes (the AnnData convention).
    CellsByGenes,
    /// Rows are genes, columns cells (the R / Seurat / 10x convention).
    GenesByCells,
}

/// The choices of [`OpenOptions`] as command-line flags.
#[derive(Args, Debug, Clone, Default)]
pub struct InputArgs {
    /// Which matrix of an h5ad: auto (the first raw-count one of X, raw/X, layers), X, raw or
    /// layer:NAME.
    #[arg(long, default_value = "auto", value_parser = parse_matrix)]
    pub matrix: MatrixChoice,
    /// A 10x `.h5` with several genomes (a mixed-species run, e.g. GRCh38 + mm10): read only
    /// this genome's genes. Default: every genome's genes side by side, with a warning.
    #[arg(long, value_name = "NAME")]
    pub genome: Option<String>,
    /// A CSV/TSV count table: which axis holds cells. The detected or forced choice is printed.
    #[arg(long, value_enum, default_value_t = OrientationArg::Auto)]
    pub orientation: OrientationArg,
}

impl InputArgs {
    /// The reader options these flags ask for.
    pub fn open_options(&self) -> OpenOptions {
        OpenOptions {
            matrix: self.matrix.clone(),
            genome: self
                .genome
                .clone()
                .map_or(GenomeChoice::Auto, GenomeChoice::One),
            orientation: match self.orientation {
                OrientationArg::Auto => TableOrientation::Auto,
                OrientationArg::CellsByGenes => TableOrientation::CellsByGenes,
                OrientationArg::GenesByCells => TableOrientation::GenesByCells,
            },
        }
    }
}

/// Decoded matrix bytes kept from a first pass over an input for the next (about 16 million
/// non-zero values): tokenization, medians and annotation read a file twice, and one that fits
/// is then read and decompressed once; a larger one is read twice, with memory still bounded by
/// this budget and the chunk size.
const REPLAY_BUDGET: usize = 128 << 20;

/// Opens `input` with a clear message for a missing path; see [`REPLAY_BUDGET`].
pub fn open_input(input: &Path, opts: &OpenOptions) -> anyhow::Result<Box<dyn CellSource>> {
    if !input.exists() {
        bail!(
            "{}: no such file or folder (expected an h5ad, a 10x .h5, a 10x matrix folder or a CSV/TSV)",
            input.display()
        );
    }
    let source =
        open_path_with(input, opts).with_context(|| format!("opening {}", input.display()))?;
    Ok(Box::new(Replay::new(source, REPLAY_BUDGET)))
}
