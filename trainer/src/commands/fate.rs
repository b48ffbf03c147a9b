//! `fate`: rank genes by how far over-expressing (or deleting) them in silico moves source cells
//! toward a target population.

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, ValueEnum};
use genecompass_core::cells::CellSet;
use genecompass_core::priors::SplitMix64;
use genecompass_core::tasks::fate::{CellVector, FateOptions, fate_search, marker_candidates};
use genecompass_core::tasks::grn::human_gene;
use genecompass_core::tasks::perturb::PerturbKind;

use super::gene_args::{ModelCellsArgs, beside, gene_names, resolve_genes, symbol_of, write};
use super::perturb::ModeArg;

/// Which cell vector to compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum VectorArg {
    /// The species CLS output (a fine-tuned classifier pools it).
    #[default]
    Cls,
    /// The mean of the genes' outputs.
    Mean,
}

/// Arguments of `fate`.
#[derive(Args, Debug)]
pub struct FateArgs {
    #[command(flatten)]
    pub run: ModelCellsArgs,
    /// Label value(s) of the source cells (the labels `tokenize --label-column` stored).
    #[arg(long, num_args = 1.., value_delimiter = ',', required = true)]
    pub source: Vec<String>,
    /// Label value(s) of the target cells.
    #[arg(long, num_args = 1.., value_delimiter = ',', required = true)]
    pub target: Vec<String>,
    /// Genes to test (Ensembl ids or symbols). Default: the --candidates genes that best mark
    /// the target (detected in more target than source cells).
    #[arg(long, num_args = 1.., value_delimiter = ',', value_name = "GENE")]
    pub genes: Vec<String>,
    /// File with one gene per line.
    #[arg(long, value_name = "F")]
    pub genes_file: Option<PathBuf>,
    /// Number of marker genes tested when no genes are named.
    #[arg(long, default_value_t = 50)]
    pub candidates: usize,
    /// A marker must be detected in at least this many target cells.
    #[arg(long, default_value_t = 3)]
    pub min_cells: usize,
    /// TF → target table (as for `grn`); its TFs are flagged in the output.
    #[arg(long, value_name = "F")]
    pub priors: Option<PathBuf>,
    /// Test only the TFs of --priors.
    #[arg(long, requires = "priors")]
    pub tfs_only: bool,
    /// Over-express (default; absent genes are inserted in front) or delete.
    #[arg(long, value_enum, default_value_t = ModeArg::Overexpress)]
    pub mode: ModeArg,
    /// Over-expression factor.
    #[arg(long, default_value_t = PerturbKind::OFFICIAL_FACTOR)]
    pub factor: f32,
    /// Cell vector compared with the target centroid.
    #[arg(long, value_enum, default_value_t = VectorArg::Cls)]
    pub vector: VectorArg,
    /// Null genes: this many genes expressed in the data but not among the candidates, drawn at
    /// random (--seed), run the same way. Each candidate's gain is then compared with theirs
    /// (`null_z`, `null_frac_ge`), since inserting *any* gene in front moves a cell somewhat.
    #[arg(long, default_value_t = 20)]
    pub null_genes: usize,
    /// Seed of the null-gene draw.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output prefix: OUT.tsv (ranked genes), OUT.null.tsv (the null genes) and OUT.json.
    #[arg(long, value_name = "OUT")]
    pub output: PathBuf,
}

fn population(cells: &CellSet, values: &[String]) -> CellSet {
    CellSet {
        cells: cells
            .cells
            .iter()
            .filter(|c| c.label.as_ref().is_some_and(|l| values.contains(l)))
            .cloned()
            .collect(),
        padded_len: None,
    }
}

/// `n` genes detected in at least `min_cells` cells and not among `candidates`, drawn with a
/// seeded shuffle (sorted by token first, so the draw depends only on the data and the seed).
fn null_genes(
    cells: &CellSet,
    candidates: &[u32],
    n: usize,
    min_cells: usize,
    seed: u64,
) -> Vec<u32> {
    let mut count: std::collections::HashMap<u32, usize> = Default::default();
    for c in &cells.cells {
        for &t in &c.input_ids {
            *count.entry(t).or_default() += 1;
        }
    }
    let skip: HashSet<u32> = candidates.iter().copied().collect();
    let mut pool: Vec<u32> = count
        .into_iter()
        .filter(|&(t, c)| t > 1 && c >= min_cells.max(1) && !skip.contains(&t))
        .map(|(t, _)| t)
        .collect();
    pool.sort_unstable();
    let mut rng = SplitMix64::new(seed);
    for i in (1..pool.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        pool.swap(i, j);
    }
    pool.truncate(n);
    pool
}

/// Runs the search and writes the ranked table.
pub fn run(args: FateArgs) -> anyhow::Result<()> {
    let tfs: Option<HashSet<String>> = match &args.priors {
        Some(p) => {
            let (prior, _) = super::grn::read_target_prior(p, None, None)?;
            Some(prior.tfs().into_iter().map(String::from).collect())
        }
        None => None,
    };
    let loaded = args.run.load()?;
    let cells = &loaded.cells;
    if cells.cells.iter().all(|c| c.label.is_none()) {
        bail!(
            "{} carries no labels: tokenize it with --label-column COLUMN so that --source and \
             --target can pick cells",
            args.run.cells.display()
        );
    }
    let (source, target) = (
        population(cells, &args.source),
        population(cells, &args.target),
    );
    let mut labels: Vec<&str> = cells
        .cells
        .iter()
        .filter_map(|c| c.label.as_deref())
        .collect();
    labels.sort_unstable();
    labels.dedup();
    for (which, set, values) in [
        ("--source", &source, &args.source),
        ("--target", &target, &args.target),
    ] {
        if set.is_empty() {
            bail!(
                "{which} {values:?} matches no cell; the labels are: {}",
                labels.join(", ")
            );
        }
    }
    let is_tf = |token: u32| -> Option<bool> {
        let t = tfs.as_ref()?;
        Some(
            loaded
                .vocab
                .token(token)
                .and_then(human_gene)
                .is_some_and(|h| t.contains(&h)),
        )
    };
    let mut candidates: Vec<u32> = if args.genes.is_empty() && args.genes_file.is_none() {
        let pool = if args.tfs_only {
            usize::MAX
        } else {
            args.candidates
        };
        marker_candidates(&source, &target, args.min_cells, pool)
    } else {
        resolve_genes(
            &gene_names(&args.genes, args.genes_file.as_deref())?,
            &loaded.vocab,
        )?
        .into_iter()
        .map(|g| g.token)
        .collect()
    };
    if args.tfs_only {
        candidates.retain(|&t| is_tf(t) == Some(true));
        candidates.truncate(args.candidates);
        if candidates.is_empty() {
            bail!("no TF of --priors is among the candidate genes; drop --tfs-only or name genes");
        }
    }
    let null = null_genes(
        cells,
        &candidates,
        args.null_genes,
        args.min_cells,
        args.seed,
    );
    let kind = match args.mode {
        ModeArg::Delete => PerturbKind::Delete,
        ModeArg::Overexpress => PerturbKind::Overexpress {
            factor: args.factor,
        },
    };
    let mut options = FateOptions {
        infer: args.run.options(),
        kind,
        vector: match args.vector {
            VectorArg::Cls => CellVector::Cls,
            VectorArg::Mean => CellVector::Mean,
        },
        max_len: loaded
            .checkpoint
            .config
            .max_position_embeddings
            .saturating_sub(1),
    };
    options.infer.alpha = loaded.alpha();
    eprintln!(
        "{} source cells ({}), {} target cells ({}), {} candidate genes, {} null genes",
        source.len(),
        args.source.join(","),
        target.len(),
        args.target.join(","),
        candidates.len(),
        null.len()
    );
    let tested: Vec<u32> = candidates.iter().chain(&null).copied().collect();
    let bar = crate::progress::cells_bar(tested.len(), "fate");
    let start = std::time::Instant::now();
    let report = fate_search(
        loaded.checkpoint.bert(),
        &source,
        &target,
        &tested,
        &options,
        &loaded.device,
        |n| bar.inc(n as u64),
    )?;
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    let null_set: HashSet<u32> = null.iter().copied().collect();
    let (null_fx, cand_fx): (Vec<_>, Vec<_>) = report
        .effects
        .iter()
        .partition(|e| null_set.contains(&e.token));
    let null_gains: Vec<f64> = null_fx.iter().map(|e| e.mean_gain).collect();
    let nm = null_gains.iter().sum::<f64>() / null_gains.len().max(1) as f64;
    let nsd = if null_gains.len() > 1 {
        (null_gains.iter().map(|g| (g - nm).powi(2)).sum::<f64>() / (null_gains.len() - 1) as f64)
            .sqrt()
    } else {
        0.0
    };
    let mut null_tsv = String::from("gene\tsymbol\tcells\tinserted\tmean_gain\tsd_gain\n");
    for e in &null_fx {
        let id = loaded.vocab.token(e.token).unwrap_or("?");
        null_tsv.push_str(&format!(
            "{id}\t{}\t{}\t{}\t{:.6}\t{:.6}\n",
            symbol_of(id).as_deref().unwrap_or("NA"),
            e.cells,
            e.inserted,
            e.mean_gain,
            e.sd_gain
        ));
    }
    let mut table = String::from(
        "rank\tgene\tsymbol\tis_tf\tcells\tinserted\tmean_gain\tsd_gain\tstandardised\tfrac_closer\tcos_after\tnull_z\tnull_frac_ge\n",
    );
    let mut rows = Vec::new();
    for (i, e) in cand_fx.iter().enumerate() {
        let null_z = (nsd > 0.0).then(|| (e.mean_gain - nm) / nsd);
        let frac_ge = (!null_gains.is_empty()).then(|| {
            null_gains.iter().filter(|&&g| g >= e.mean_gain).count() as f64
                / null_gains.len() as f64
        });
        let id = loaded.vocab.token(e.token).unwrap_or("?");
        let sym = symbol_of(id);
        let tf = is_tf(e.token);
        table.push_str(&format!(
            "{}\t{id}\t{}\t{}\t{}\t{}\t{:.6}\t{:.6}\t{:.3}\t{:.3}\t{:.6}\t{}\t{}\n",
            i + 1,
            sym.as_deref().unwrap_or("NA"),
            tf.map_or("NA", |t| if t { "1" } else { "0" }),
            e.cells,
            e.inserted,
            e.mean_gain,
            e.sd_gain,
            e.standardised,
            e.frac_closer,
            e.mean_cos_after,
            null_z.map_or("NA".into(), |z| format!("{z:.3}")),
            frac_ge.map_or("NA".into(), |f| format!("{f:.3}")),
        ));
        rows.push(serde_json::json!({
            "gene": id, "symbol": sym, "is_tf": tf, "effect": e,
            "null_z": null_z, "null_frac_ge": frac_ge,
        }));
    }
    let path = beside(&args.output, ".tsv")?;
    print!("{table}");
    write(&path, table)?;
    write(&beside(&args.output, ".null.tsv")?, null_tsv)?;
    let doc = serde_json::json!({
        "source": args.source, "target": args.target,
        "source_cells": source.len(), "target_cells": target.len(),
        "source_cos_to_target_centroid": report.source_cos,
        "target_cos_to_own_centroid": report.target_cos,
        "mode": format!("{:?}", args.mode).to_lowercase(), "factor": args.factor,
        "vector": format!("{:?}", args.vector).to_lowercase(),
        "genes": rows, "variants": report.variants, "seconds": secs,
        "null": {"genes": null_gains.len(), "mean_gain": nm, "sd_gain": nsd, "seed": args.seed},
        "model": args.run.model.display().to_string(),
        "cells": args.run.cells.display().to_string(),
    });
    write(
        &beside(&args.output, ".json")?,
        serde_json::to_string_pretty(&doc)?,
    )?;
    eprintln!(
        "source cells start at cosine {:.4} to the target centroid (target cells: {:.4}); \
         {} genes tested on {} edited cells in {secs:.2}s -> {}",
        report.source_cos,
        report.target_cos,
        cand_fx.len(),
        report.variants,
        path.display()
    );
    Ok(())
}
