//! `perturb`: in-silico deletion / over-expression of genes over a tokenized dataset.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use genecompass_core::tasks::perturb::{
    Alignment, CellRecord, PerturbKind, PerturbOptions, perturb_cells,
};

use super::gene_args::{Gene, ModelCellsArgs, beside, gene_names, resolve_genes, symbol_of, write};
use crate::progress::cells_bar;

/// What to do to the genes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Remove the gene from the cell (every later gene moves up one rank).
    Delete,
    /// Multiply its value by --factor and re-rank the cell.
    Overexpress,
}

/// How per-gene cosines are paired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum AlignArg {
    /// Each gene against itself in the original cell (correct; default).
    #[default]
    Identity,
    /// The official perturber's positions and labels, off-by-one included; also switches to its
    /// forward conventions (no attention mask, species forced to human, stored padding). Delete only.
    Official,
}

/// Arguments of `perturb`.
#[derive(Args, Debug)]
pub struct PerturbArgs {
    #[command(flatten)]
    pub run: ModelCellsArgs,
    /// Genes to perturb: Ensembl ids (ENSG…, ENSMUSG…) or HGNC/MGI symbols, space- or comma-separated.
    #[arg(long, num_args = 1.., value_delimiter = ',', value_name = "GENE", required_unless_present = "genes_file")]
    pub genes: Vec<String>,
    /// File with one gene per line (first tab/comma column; `#` comments).
    #[arg(long, value_name = "F")]
    pub genes_file: Option<PathBuf>,
    /// Perturbation.
    #[arg(long, value_enum)]
    pub mode: ModeArg,
    /// Over-expression factor (the official value is 10000, which moves the gene to the front).
    #[arg(long, default_value_t = PerturbKind::OFFICIAL_FACTOR)]
    pub factor: f32,
    /// Perturb all the genes together in each cell instead of one at a time.
    #[arg(long)]
    pub joint: bool,
    /// Per-gene cosine alignment.
    #[arg(long, value_enum, default_value_t = AlignArg::Identity)]
    pub align: AlignArg,
    /// Also write each cell's per-gene cosines into OUT.cells.jsonl (large: one value per gene).
    #[arg(long)]
    pub per_gene: bool,
    /// Output prefix: writes OUT.tsv (one row per perturbation), OUT.affected.tsv (per affected
    /// gene), OUT.cells.jsonl (per cell) and, with --align official, OUT.official.json.
    #[arg(long, value_name = "OUT")]
    pub output: PathBuf,
}

fn label(genes: &[&Gene], f: impl Fn(&Gene) -> String) -> String {
    genes.iter().map(|g| f(g)).collect::<Vec<_>>().join("+")
}

fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "NA".into(), |v| format!("{v:.6}"))
}

/// Runs the perturbations and writes the tables.
pub fn run(args: PerturbArgs) -> anyhow::Result<()> {
    let kind = match args.mode {
        ModeArg::Delete => PerturbKind::Delete,
        ModeArg::Overexpress => PerturbKind::Overexpress {
            factor: args.factor,
        },
    };
    if args.align == AlignArg::Official && args.mode == ModeArg::Overexpress {
        bail!(
            "--align official is only defined for --mode delete (the official over-expression \
             compares each row with a different gene); use --align identity"
        );
    }
    let names = gene_names(&args.genes, args.genes_file.as_deref())?;
    let loaded = args.run.load()?;
    let genes = resolve_genes(&names, &loaded.vocab)?;
    let groups: Vec<Vec<&Gene>> = if args.joint {
        vec![genes.iter().collect()]
    } else {
        genes.iter().map(|g| vec![g]).collect()
    };
    let perturbations: Vec<Vec<u32>> = groups
        .iter()
        .map(|g| g.iter().map(|x| x.token).collect())
        .collect();
    let cells = &loaded.cells;
    // One pass over the cells: how many hold each gene (to name the absent ones before any
    // forward pass) and how many tokens the run will push through the model.
    let mut by_token: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, p) in perturbations.iter().enumerate() {
        for &t in p {
            by_token.entry(t).or_default().push(i);
        }
    }
    let mut holders: HashMap<u32, usize> = HashMap::new();
    let mut tokens = 0usize;
    for c in &cells.cells {
        let mut touched: Vec<usize> = Vec::new();
        for t in &c.input_ids {
            if let Some(ps) = by_token.get(t) {
                *holders.entry(*t).or_default() += 1;
                touched.extend(ps);
            }
        }
        touched.sort_unstable();
        touched.dedup();
        if !touched.is_empty() {
            tokens += c.len() * (touched.len() + 1);
        }
    }
    let mut absent = Vec::new();
    for g in genes.iter().filter(|g| !holders.contains_key(&g.token)) {
        absent.push(format!(
            "{}{}",
            g.ensembl,
            g.symbol
                .as_ref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default()
        ));
    }
    if absent.len() == genes.len() {
        bail!(
            "none of the genes ({}) is expressed in any of the {} cells of {}: nothing to perturb",
            absent.join(", "),
            cells.len(),
            args.run.cells.display()
        );
    }
    for a in &absent {
        eprintln!(
            "warning: {a} is expressed in none of the {} cells; its row reports 0 cells",
            cells.len()
        );
    }

    let mut options = match args.align {
        AlignArg::Identity => PerturbOptions {
            infer: args.run.options(),
            kind,
            alignment: Alignment::Identity,
        },
        AlignArg::Official => {
            let mut o = PerturbOptions::official(kind);
            o.infer.batch.batch_size = args.run.batch_size.max(1);
            o
        }
    };
    // Folding the knowledge tables costs about one projection per vocabulary token; it only
    // pays off when more tokens than that go through the model (exact up to rounding either way).
    options.infer.folded = !args.run.unfolded && tokens > loaded.checkpoint.config.vocab_size;
    options.infer.alpha = loaded.alpha();

    let jsonl_path = beside(&args.output, ".cells.jsonl")?;
    let mut jsonl = std::io::BufWriter::new(
        std::fs::File::create(&jsonl_path)
            .with_context(|| format!("creating {}", jsonl_path.display()))?,
    );
    let bar = cells_bar(cells.len(), "perturb");
    let start = std::time::Instant::now();
    let mut io_error: Option<std::io::Error> = None;
    let mut on_record = |r: &CellRecord| {
        if io_error.is_some() {
            return;
        }
        let g = &groups[r.perturbation];
        let mut v = serde_json::json!({
            "cell": r.cell,
            "perturbed": label(g, |x| x.ensembl.clone()),
            "token": r.token,
            "positions": r.positions,
            "cls_cos": r.cls_cos,
            "mean_pool_cos": r.mean_pool_cos,
            "gene_score": r.gene_score,
        });
        if !r.new_positions.is_empty() {
            v["new_positions"] = serde_json::json!(r.new_positions);
            v["self_cos"] = serde_json::json!(r.self_cos);
        }
        if let Some(l) = &cells.cells[r.cell].label {
            v["label"] = serde_json::json!(l);
        }
        if args.per_gene {
            v["genes"] = serde_json::json!(r.affected.iter().map(|a| a.0).collect::<Vec<_>>());
            v["cos"] = serde_json::json!(r.affected.iter().map(|a| a.1).collect::<Vec<_>>());
        }
        if let Err(e) = writeln!(jsonl, "{v}") {
            io_error = Some(e);
        }
    };
    let report = perturb_cells(
        loaded.checkpoint.bert(),
        cells,
        &perturbations,
        &options,
        &loaded.device,
        |n| bar.inc(n as u64),
        &mut on_record,
    )?;
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    if let Some(e) = io_error {
        return Err(e).with_context(|| format!("writing {}", jsonl_path.display()));
    }
    jsonl
        .flush()
        .with_context(|| format!("writing {}", jsonl_path.display()))?;

    let mut table = String::from(
        "gene\tsymbol\ttoken\tcells\tmean_cls_cos\tmean_cls_shift\tmean_pool_cos\tmean_gene_cos\n",
    );
    let mut affected = String::from(
        "perturbed\taffected\taffected_symbol\taffected_token\tcells\tmean_cos\tmin_cos\n",
    );
    for (g, s) in groups.iter().zip(&report.summaries) {
        let name = label(g, |x| x.ensembl.clone());
        table.push_str(&format!(
            "{name}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            label(g, |x| x.symbol.clone().unwrap_or_else(|| "NA".into())),
            label(g, |x| x.token.to_string()),
            s.cells,
            fmt(s.mean_cls_cos),
            fmt(s.mean_cls_cos.map(|c| 1.0 - c)),
            fmt(s.mean_pool_cos),
            fmt(s.mean_gene_score),
        ));
        for a in s.affected.ranked() {
            let (id, sym) = match a.token {
                0 => ("<pad>".to_string(), "NA".to_string()),
                t => {
                    let id = loaded.vocab.token(t).unwrap_or("?").to_string();
                    let sym = symbol_of(&id).unwrap_or_else(|| "NA".into());
                    (id, sym)
                }
            };
            affected.push_str(&format!(
                "{name}\t{id}\t{sym}\t{}\t{}\t{:.6}\t{:.6}\n",
                a.token, a.count, a.mean_cos, a.min_cos
            ));
        }
    }
    let table_path = beside(&args.output, ".tsv")?;
    print!("{table}");
    write(&table_path, table)?;
    write(&beside(&args.output, ".affected.tsv")?, affected)?;
    if args.align == AlignArg::Official {
        let doc = serde_json::json!({
            "description": "The official InSilicoPerturber result dict as a list of \
                [perturbed_token_id, affected_token_id or 'cell_emb', [cos values in insertion order]]; \
                affected labels are the original gene at each row (off by one after the deleted gene).",
            "perturbed_tokens": genes.iter().map(|g| &g.ensembl).collect::<Vec<_>>(),
            "entries": report.official.to_json(),
        });
        write(
            &beside(&args.output, ".official.json")?,
            serde_json::to_string_pretty(&doc)?,
        )?;
    }
    eprintln!(
        "perturbed {} gene set(s) in {} cells: {} perturbed cells + {} originals in {secs:.2}s \
         ({:.2} perturbations/s, {} embedding) -> {}",
        groups.len(),
        cells.len(),
        report.variants,
        report.originals,
        report.variants as f64 / secs.max(1e-9),
        if options.infer.folded {
            "folded"
        } else {
            "unfolded"
        },
        table_path.display()
    );
    Ok(())
}
