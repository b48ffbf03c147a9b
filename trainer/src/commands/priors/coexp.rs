//! `priors build-coexp`: co-expression pairs per count matrix, then gene2vec.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use genecompass_core::cells::Species;
use genecompass_core::data::{CsrChunk, MatrixChoice, OpenOptions};
use genecompass_core::priors::coexp::{self, CoexpOptions};
use genecompass_core::priors::graphs::GeneGraph;
use genecompass_core::priors::sgns::VectorKind;
use genecompass_core::priors::{PriorKind, quality};
use genecompass_core::tokenize::{GeneMatchOptions, TokenDictionary, match_genes};

use super::{OutputArgs, SkipGramArgs, bar, embed_and_score, save};

/// Arguments of `priors build-coexp`.
#[derive(Args, Debug)]
pub struct CoexpArgs {
    /// Count matrices (h5ad, 10x, CSV); each is sampled and correlated on its own.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Cells sampled per matrix (official: 3,000).
    #[arg(long, default_value_t = 3000)]
    pub cells_per_matrix: usize,
    /// Minimum Pearson r on co-detected cells (official: 0.8).
    #[arg(long, default_value_t = 0.8)]
    pub min_pearson: f32,
    /// Co-detected cells a pair needs (not in the paper: tiny overlaps correlate perfectly).
    #[arg(long, default_value_t = 20)]
    pub min_cells: usize,
    /// Most-detected genes paired per matrix (bounds memory: max_genes²/2 × 44 bytes).
    #[arg(long, default_value_t = 2000)]
    pub max_genes: usize,
    /// Correlate the stored values as they are (e.g. already log-normalised data) instead of
    /// `ln(1 + 10⁴·count/total)`.
    #[arg(long)]
    pub no_normalize: bool,
    /// Matrix of an h5ad (`auto`, `X`, `raw`, `layers/NAME`).
    #[arg(long, default_value = "auto", value_parser = super::super::tokenize::parse_matrix)]
    pub matrix: MatrixChoice,
    #[command(flatten)]
    pub sg: SkipGramArgs,
    #[command(flatten)]
    pub out: OutputArgs,
}

/// Reads every cell of a file into one CSR block, recording the file's hash.
fn read_all(
    path: &std::path::Path,
    matrix: &MatrixChoice,
    inputs: &mut Vec<genecompass_core::priors::store::InputRecord>,
) -> anyhow::Result<(CsrChunk, Vec<Option<String>>, Species)> {
    if path.is_file() {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        inputs.push(genecompass_core::priors::store::InputRecord::of(
            path.display().to_string(),
            &bytes,
        ));
    }
    let mut src = super::super::tokenize::open_input(
        path,
        &OpenOptions {
            matrix: matrix.clone(),
            ..Default::default()
        },
    )?;
    for w in src.warnings() {
        eprintln!("warning: {}: {w}", path.display());
    }
    let genes = src.genes().clone();
    let empty = TokenDictionary::build(Vec::<String>::new());
    let m = match_genes(&genes, &empty, &GeneMatchOptions::default())
        .with_context(|| format!("matching the genes of {}", path.display()))?;
    let mut all = CsrChunk {
        first_cell: 0,
        indptr: vec![0],
        indices: Vec::new(),
        data: Vec::new(),
    };
    while let Some(c) = src.next_chunk(4096)? {
        let base = all.indices.len();
        all.indices.extend_from_slice(&c.indices);
        all.data.extend_from_slice(&c.data);
        all.indptr
            .extend(c.indptr[1..].iter().map(|&p| base + p - c.indptr[0]));
    }
    Ok((all, m.ensembl, m.species))
}

/// Builds the co-expression prior.
pub fn run(a: CoexpArgs) -> anyhow::Result<()> {
    let opts = CoexpOptions {
        cells_per_matrix: a.cells_per_matrix,
        min_pearson: a.min_pearson,
        min_cells: a.min_cells,
        max_genes: a.max_genes,
        normalize: !a.no_normalize,
        seed: a.out.seed,
    };
    let species = a.sg.species()?;
    let mut inputs = Vec::new();
    let mut graph = GeneGraph::default();
    let mut per_file = Vec::new();
    let mut agreement = Vec::new();
    let b = bar(a.inputs.len() as u64, "matrices");
    for path in &a.inputs {
        let (cells, ensembl, sp) = read_all(path, &a.matrix, &mut inputs)?;
        let (g, res) = coexp::coexp_graph(&cells, &ensembl, &opts, a.sg.holdout > 0.0);
        println!(
            "{}: {} {} cells used, {} genes paired, {} pairs tested, {} with r ≥ {}",
            path.display(),
            res.stats.cells_used,
            sp.name(),
            res.stats.genes_paired,
            res.stats.pairs_tested,
            res.stats.pairs_kept,
            opts.min_pearson
        );
        if species.contains(&sp) {
            graph.extend(&g);
        } else {
            println!(
                "  skipped: {} is not among --species {:?}",
                sp.name(),
                a.sg.species
            );
        }
        per_file.push(serde_json::json!({"file": path.display().to_string(), "species": sp.name(), "stats": res.stats}));
        agreement.push((ensembl, res.tested));
        b.inc(1);
    }
    b.finish_and_clear();
    let cfg = a.sg.config(a.out.seed, VectorKind::Input)?;
    let (vectors, mut stats) = embed_and_score(&graph, &a.out, &cfg, a.sg.holdout)?;
    if a.sg.holdout > 0.0 {
        // Do neighbours in the embedding agree with measured correlation? Spearman over all tested pairs.
        let row_of: std::collections::HashMap<&str, usize> = vectors
            .genes
            .iter()
            .enumerate()
            .map(|(i, g)| (g.as_str(), i))
            .collect();
        let (mut cos, mut r) = (Vec::new(), Vec::new());
        for (ens, tested) in &agreement {
            for p in tested {
                let (Some(x), Some(y)) = (&ens[p.a as usize], &ens[p.b as usize]) else {
                    continue;
                };
                if let (Some(&i), Some(&j)) = (row_of.get(x.as_str()), row_of.get(y.as_str())) {
                    cos.push(
                        genecompass_core::priors::cosine(vectors.row(i), vectors.row(j)) as f64,
                    );
                    r.push(p.r as f64);
                }
            }
        }
        let rho = quality::spearman(&cos, &r);
        println!(
            "  Spearman(cosine, Pearson r) over {} tested pairs: {rho:.4}",
            cos.len()
        );
        stats["spearman_cosine_vs_pearson"] = serde_json::json!({"pairs": cos.len(), "rho": rho});
    }
    stats["matrices"] = per_file.into();
    let params = serde_json::json!({
        "recipe": "sample cells per matrix, Pearson on co-detected (non-zero) cells, keep r >= min_pearson",
        "coexp": opts,
        "skip_gram": cfg,
        "holdout": a.sg.holdout,
        "species": a.sg.species,
    });
    save(
        &a.out,
        PriorKind::CoExp,
        &vectors,
        "build-coexp",
        params,
        inputs,
        stats,
    )
}
