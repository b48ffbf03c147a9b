//! `grn`: rank each transcription factor's candidate targets by how far deleting the TF moves
//! their embeddings, and score the ranking against a TF→target prior beside a random ranking.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use genecompass_core::priors::graphs::read_edge_table;
use genecompass_core::priors::text_maybe_gz;
use genecompass_core::tasks::grn::{
    RankingEval, TargetPrior, evaluate_ranking, human_gene, rank_targets,
};
use genecompass_core::tasks::perturb::{Alignment, PerturbKind, PerturbOptions, perturb_cells};

use super::gene_args::{Gene, ModelCellsArgs, beside, gene_names, resolve_genes, symbol_of, write};
use crate::progress::cells_bar;

/// Arguments of `grn`.
#[derive(Args, Debug)]
pub struct GrnArgs {
    #[command(flatten)]
    pub run: ModelCellsArgs,
    /// TFs to delete: Ensembl ids or symbols, space- or comma-separated.
    #[arg(long, num_args = 1.., value_delimiter = ',', value_name = "GENE")]
    pub tfs: Vec<String>,
    /// File with one TF per line (first tab/comma column; `#` comments).
    #[arg(long, value_name = "F")]
    pub tfs_file: Option<PathBuf>,
    /// Instead of naming TFs: the N TFs of --priors expressed in the most cells.
    #[arg(long, value_name = "N", conflicts_with_all = ["tfs", "tfs_file"])]
    pub top_tfs: Option<usize>,
    /// TF → target table (TSV/CSV, gzip allowed; human gene symbols or Ensembl ids), e.g.
    /// `shared/data/priors/omnipath_transcriptional_tf_target.tsv.gz`. Columns `source_symbol`
    /// and `target_symbol` when present, else the first two (see --source-col / --target-col).
    /// Without it the rankings are written but not scored.
    #[arg(long, value_name = "F")]
    pub priors: Option<PathBuf>,
    /// Source column of --priors.
    #[arg(long)]
    pub source_col: Option<String>,
    /// Target column of --priors.
    #[arg(long)]
    pub target_col: Option<String>,
    /// A candidate target must be expressed with the TF in at least this many cells (a mean over
    /// fewer cosines is mostly noise).
    #[arg(long, default_value_t = 3)]
    pub min_cells: usize,
    /// Cut-offs for precision and recall.
    #[arg(long, num_args = 1.., value_delimiter = ',', default_values_t = [10usize, 50, 100])]
    pub k: Vec<usize>,
    /// Output prefix: OUT.tsv (one row per TF), OUT.targets.tsv (every ranked candidate) and
    /// OUT.json (the scores and their means over TFs).
    #[arg(long, value_name = "OUT")]
    pub output: PathBuf,
}

fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "NA".into(), |v| format!("{v:.4}"))
}

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| s / n as f64)
}

/// Reads a TF → target table (TSV/CSV, gzip allowed) into per-TF target sets; also returns the
/// number of edges read.
pub fn read_target_prior(
    path: &std::path::Path,
    source_col: Option<&str>,
    target_col: Option<&str>,
) -> anyhow::Result<(TargetPrior, usize)> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).with_context(|| format!("reading --priors {name}"))?;
    let edges = read_edge_table(
        &text_maybe_gz(&bytes, &name)?,
        &name,
        true,
        source_col,
        target_col,
    )?;
    Ok((TargetPrior::from_edges(&edges), edges.len()))
}

/// The prior's TFs the cells express, most cells first (ties by Ensembl id), as genes.
fn top_tfs(
    prior: &TargetPrior,
    loaded: &super::gene_args::Loaded,
    n: usize,
    min_cells: usize,
) -> Vec<Gene> {
    let mut holders: HashMap<u32, usize> = HashMap::new();
    for c in &loaded.cells.cells {
        for &t in &c.input_ids {
            *holders.entry(t).or_default() += 1;
        }
    }
    let mut found: Vec<(usize, Gene)> = holders
        .into_iter()
        .filter(|&(_, cells)| cells >= min_cells.max(1))
        .filter_map(|(token, cells)| {
            let ensembl = loaded.vocab.token(token)?.to_string();
            let human = human_gene(&ensembl)?;
            prior.targets(&human)?;
            Some((
                cells,
                Gene {
                    token,
                    symbol: symbol_of(&ensembl),
                    ensembl,
                },
            ))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.ensembl.cmp(&b.1.ensembl)));
    found.into_iter().take(n).map(|(_, g)| g).collect()
}

/// Runs one deletion per TF and writes the rankings and their scores.
pub fn run(args: GrnArgs) -> anyhow::Result<()> {
    let prior = match &args.priors {
        Some(p) => {
            let name = p.display().to_string();
            let (prior, edges) =
                read_target_prior(p, args.source_col.as_deref(), args.target_col.as_deref())?;
            if prior.is_empty() {
                bail!(
                    "--priors {name}: none of its {} edges resolved to two human genes; the table \
                     needs human gene symbols or Ensembl ids (pick the columns with --source-col / \
                     --target-col)",
                    edges
                );
            }
            eprintln!(
                "{name}: {} TFs, {} of {} edges unresolved (complexes, unknown or ambiguous names)",
                prior.len(),
                prior.unresolved_edges,
                edges
            );
            Some(prior)
        }
        None => None,
    };
    let loaded = args.run.load()?;
    let tfs: Vec<Gene> = match (args.top_tfs, &prior) {
        (Some(n), Some(p)) => {
            let g = top_tfs(p, &loaded, n, args.min_cells);
            if g.is_empty() {
                bail!(
                    "no TF of --priors is expressed in {} or more of the {} cells; lower --min-cells \
                     or name TFs with --tfs",
                    args.min_cells,
                    loaded.cells.len()
                );
            }
            g
        }
        (Some(_), None) => bail!("--top-tfs picks TFs from --priors: give --priors FILE"),
        (None, _) => {
            if args.tfs.is_empty() && args.tfs_file.is_none() {
                bail!(
                    "name the TFs to delete with --tfs / --tfs-file, or use --top-tfs N with --priors"
                );
            }
            resolve_genes(
                &gene_names(&args.tfs, args.tfs_file.as_deref())?,
                &loaded.vocab,
            )?
        }
    };
    let perturbations: Vec<Vec<u32>> = tfs.iter().map(|g| vec![g.token]).collect();
    let mut options = PerturbOptions {
        infer: args.run.options(),
        kind: PerturbKind::Delete,
        alignment: Alignment::Identity,
    };
    let tokens: usize = loaded.cells.cells.iter().map(|c| c.len()).sum::<usize>() * 2;
    options.infer.folded = !args.run.unfolded && tokens > loaded.checkpoint.config.vocab_size;
    options.infer.alpha = loaded.alpha();
    let bar = cells_bar(loaded.cells.len(), "grn");
    let start = std::time::Instant::now();
    let report = perturb_cells(
        loaded.checkpoint.bert(),
        &loaded.cells,
        &perturbations,
        &options,
        &loaded.device,
        |n| bar.inc(n as u64),
        |_| {},
    )?;
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();

    let mut table = String::from(
        "tf\tsymbol\tcells\tcandidates\tscored\tpositives\taverage_precision\trandom_ap\tauroc",
    );
    for k in &args.k {
        table.push_str(&format!("\tp@{k}\trandom_p@{k}"));
    }
    table.push('\n');
    let mut targets_tsv =
        String::from("tf\ttf_symbol\trank\tgene\tsymbol\tshift\tcells\tprior_target\n");
    let mut evals: Vec<(String, RankingEval)> = Vec::new();
    let mut json_tfs = Vec::new();
    for (tf, summary) in tfs.iter().zip(&report.summaries) {
        let ranked = rank_targets(&summary.affected.ranked(), &[tf.token], args.min_cells);
        let positives = prior
            .as_ref()
            .and_then(|p| p.targets(&human_gene(&tf.ensembl)?));
        // Only candidates the prior can speak about are scored: genes with a human id.
        let mut is_target = Vec::new();
        let tf_sym = tf.symbol.clone().unwrap_or_else(|| "NA".into());
        for (rank, t) in ranked.iter().enumerate() {
            let id = loaded.vocab.token(t.token).unwrap_or("?");
            let human = human_gene(id);
            let flag = match (positives, &human) {
                (Some(p), Some(h)) => {
                    is_target.push(p.contains(h));
                    if p.contains(h) { "1" } else { "0" }
                }
                _ => "NA",
            };
            targets_tsv.push_str(&format!(
                "{}\t{tf_sym}\t{}\t{id}\t{}\t{:.6}\t{}\t{flag}\n",
                tf.ensembl,
                rank + 1,
                symbol_of(id).unwrap_or_else(|| "NA".into()),
                t.shift,
                t.cells
            ));
        }
        let eval = positives.map(|_| evaluate_ranking(&is_target, &args.k));
        let e = eval.as_ref();
        table.push_str(&format!(
            "{}\t{tf_sym}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            tf.ensembl,
            summary.cells,
            ranked.len(),
            e.map_or("NA".into(), |e| e.candidates.to_string()),
            e.map_or("NA".into(), |e| e.positives.to_string()),
            fmt(e.and_then(|e| e.average_precision)),
            fmt(e.and_then(|e| e.random_average_precision)),
            fmt(e.and_then(|e| e.auroc)),
        ));
        for &k in &args.k {
            let a = e.and_then(|e| e.at_k.iter().find(|a| a.k == k.min(e.candidates)));
            table.push_str(&format!(
                "\t{}\t{}",
                fmt(a.map(|a| a.precision)),
                fmt(a.map(|a| a.random_precision))
            ));
        }
        table.push('\n');
        json_tfs.push(serde_json::json!({
            "tf": tf.ensembl, "symbol": tf.symbol, "cells": summary.cells,
            "candidates": ranked.len(), "in_prior": positives.is_some(), "eval": eval,
        }));
        if let Some(e) = eval.filter(|e| e.positives > 0) {
            evals.push((tf.ensembl.clone(), e));
        }
    }
    let m = |f: &dyn Fn(&RankingEval) -> Option<f64>| mean(evals.iter().filter_map(|(_, e)| f(e)));
    let summary = serde_json::json!({
        "tfs": json_tfs,
        "scored_tfs": evals.len(),
        "mean_average_precision": m(&|e| e.average_precision),
        "mean_random_average_precision": m(&|e| e.random_average_precision),
        "mean_auroc": m(&|e| e.auroc),
        "mean_precision_at_k": args.k.iter().map(|&k| serde_json::json!({
            "k": k,
            "precision": m(&|e| e.at_k.iter().find(|a| a.k == k.min(e.candidates)).map(|a| a.precision)),
            "random_precision": m(&|e| e.at_k.iter().find(|a| a.k == k.min(e.candidates)).map(|a| a.random_precision)),
        })).collect::<Vec<_>>(),
        "min_cells": args.min_cells,
        "priors": args.priors.as_ref().map(|p| p.display().to_string()),
        "model": args.run.model.display().to_string(),
        "cells": args.run.cells.display().to_string(),
        "seconds": secs,
    });
    let table_path = beside(&args.output, ".tsv")?;
    print!("{table}");
    write(&table_path, table)?;
    write(&beside(&args.output, ".targets.tsv")?, targets_tsv)?;
    write(
        &beside(&args.output, ".json")?,
        serde_json::to_string_pretty(&summary)?,
    )?;
    if evals.is_empty() {
        eprintln!("no TF could be scored (none is in --priors with a target among its candidates)");
    } else {
        eprintln!(
            "{} TFs scored: mean average precision {} (random {}), mean AUROC {} (random 0.5)",
            evals.len(),
            fmt(summary["mean_average_precision"].as_f64()),
            fmt(summary["mean_random_average_precision"].as_f64()),
            fmt(summary["mean_auroc"].as_f64()),
        );
    }
    eprintln!(
        "deleted {} TF(s) in {} cells ({} perturbed cells) in {secs:.2}s -> {}",
        tfs.len(),
        loaded.cells.len(),
        report.variants,
        table_path.display()
    );
    Ok(())
}
