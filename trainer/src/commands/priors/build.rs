//! `priors build-family`, `build-grn`, `build-promoter`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use genecompass_core::cells::Species;
use genecompass_core::priors::graphs::{self, FamilyOptions, Resolver};
use genecompass_core::priors::promoter::{self, PromoterOptions};
use genecompass_core::priors::sgns::VectorKind;
use genecompass_core::priors::{GeneVectors, PriorKind, text_maybe_gz};

use super::{OutputArgs, SkipGramArgs, bar, embed_and_score, read_input, save, with_species};

/// Arguments of `priors build-family`.
#[derive(Args, Debug)]
pub struct FamilyArgs {
    /// HGNC gene-group memberships `gene_has_family.csv(.gz)` (`hgnc_id,family_id`).
    #[arg(long)]
    pub gene_has_family: PathBuf,
    /// HGNC `gene_symbols.csv(.gz)` (`HGNC ID,Approved symbol`).
    #[arg(long)]
    pub gene_symbols: PathBuf,
    /// Skip groups with more genes than this (official: none; the largest HGNC group has
    /// ~2,400 genes and ~2.9M of the ~8.3M pairs).
    #[arg(long)]
    pub max_family_size: Option<usize>,
    #[command(flatten)]
    pub sg: SkipGramArgs,
    #[command(flatten)]
    pub out: OutputArgs,
}

/// Builds the gene-family prior.
pub fn run_family(a: FamilyArgs) -> anyhow::Result<()> {
    let mut inputs = Vec::new();
    let fam = text_maybe_gz(
        &read_input(&a.gene_has_family, &mut inputs)?,
        "gene_has_family",
    )?;
    let sym = text_maybe_gz(&read_input(&a.gene_symbols, &mut inputs)?, "gene_symbols")?;
    let families = graphs::hgnc_families(&fam, &sym)?;
    let opts = FamilyOptions {
        max_family_size: a.max_family_size,
    };
    let (human, rs) =
        graphs::family_graph(&families, &opts, &mut Resolver::embedded(Species::Human));
    println!(
        "{} gene groups; {} human genes in {} within-family pairs ({} symbols not in the HGNC table, e.g. {:?})",
        families.len(),
        human.nodes.len(),
        human.pairs.len(),
        rs.unresolved_names,
        &rs.unresolved_examples[..rs.unresolved_examples.len().min(3)]
    );
    let graph = with_species(human, &a.sg.species()?);
    let cfg = a.sg.config(a.out.seed, VectorKind::Input)?;
    let (vectors, mut stats) = embed_and_score(&graph, &a.out, &cfg, a.sg.holdout)?;
    stats["resolution"] = serde_json::to_value(&rs)?;
    stats["families"] = families.len().into();
    let params = serde_json::json!({
        "source": "HGNC gene groups (direct memberships), all within-family pairs",
        "family": opts,
        "skip_gram": cfg,
        "holdout": a.sg.holdout,
        "species": a.sg.species,
    });
    save(
        &a.out,
        PriorKind::GeneFamily,
        &vectors,
        "build-family",
        params,
        inputs,
        stats,
    )
}

/// Arguments of `priors build-grn`.
#[derive(Args, Debug)]
pub struct GrnArgs {
    /// TF → target edge table (TSV, or CSV; `.gz` accepted). Default columns: `source_symbol`
    /// and `target_symbol` when present (OmniPath export), else the first two.
    #[arg(long)]
    pub edges: PathBuf,
    /// Source (TF) column name.
    #[arg(long)]
    pub source_col: Option<String>,
    /// Target column name.
    #[arg(long)]
    pub target_col: Option<String>,
    /// The table has no header line.
    #[arg(long)]
    pub no_header: bool,
    /// Species the gene names of the table belong to (`human` or `mouse`).
    #[arg(long, default_value = "human")]
    pub edge_species: String,
    #[command(flatten)]
    pub sg: SkipGramArgs,
    #[command(flatten)]
    pub out: OutputArgs,
}

/// Builds the GRN prior. The official PECA2 networks need paired RNA-seq + ATAC-seq per
/// context, which is not available here; any TF → target network can stand in (pluggable table).
pub fn run_grn(a: GrnArgs) -> anyhow::Result<()> {
    let mut inputs = Vec::new();
    let name = a.edges.display().to_string();
    let text = text_maybe_gz(&read_input(&a.edges, &mut inputs)?, &name)?;
    let pairs = graphs::read_edge_table(
        &text,
        &name,
        !a.no_header,
        a.source_col.as_deref(),
        a.target_col.as_deref(),
    )?;
    let edge_species = match a.edge_species.as_str() {
        "human" => Species::Human,
        "mouse" => Species::Mouse,
        o => bail!("--edge-species {o:?}: use human or mouse"),
    };
    let (g, rs) = Resolver::embedded(edge_species).graph(&pairs);
    println!(
        "{} edges read; {} kept between {} genes; {} names unresolved (complexes, unknown or ambiguous symbols, e.g. {:?})",
        rs.pairs_in,
        rs.pairs_kept,
        g.nodes.len(),
        rs.unresolved_names,
        &rs.unresolved_examples[..rs.unresolved_examples.len().min(3)]
    );
    let species = a.sg.species()?;
    let graph = if edge_species == Species::Human {
        with_species(g, &species)
    } else if species == [Species::Mouse] {
        g
    } else {
        bail!("a mouse edge table builds only --species mouse")
    };
    let cfg = a.sg.config(a.out.seed, VectorKind::Sum)?;
    let (vectors, mut stats) = embed_and_score(&graph, &a.out, &cfg, a.sg.holdout)?;
    stats["resolution"] = serde_json::to_value(&rs)?;
    let params = serde_json::json!({
        "source": "TF -> target table (directed edges used as undirected pairs)",
        "columns": [a.source_col, a.target_col],
        "edge_species": a.edge_species,
        "skip_gram": cfg,
        "holdout": a.sg.holdout,
        "species": a.sg.species,
    });
    save(
        &a.out,
        PriorKind::PecaGrn,
        &vectors,
        "build-grn",
        params,
        inputs,
        stats,
    )
}

/// Arguments of `priors build-promoter`.
#[derive(Args, Debug)]
pub struct PromoterArgs {
    /// FASTA of promoter sequences (e.g. −500/+2000 bp around each TSS, as the paper uses);
    /// headers start with the Ensembl id or symbol (`>ENSG…` or `>TP53 …`). `.gz` accepted.
    #[arg(long)]
    pub fasta: PathBuf,
    /// Species of the FASTA genes (`human` or `mouse`), for symbol resolution.
    #[arg(long, default_value = "human")]
    pub species: String,
    /// Shortest k-mer profiled.
    #[arg(long, default_value_t = 1)]
    pub min_k: usize,
    /// Longest k-mer profiled (4^k features).
    #[arg(long, default_value_t = 6)]
    pub max_k: usize,
    /// Vector width K.
    #[arg(long, default_value_t = 768)]
    pub dim: usize,
    #[command(flatten)]
    pub out: OutputArgs,
}

/// Builds the promoter prior.
pub fn run_promoter(a: PromoterArgs) -> anyhow::Result<()> {
    let mut inputs = Vec::new();
    let name = a.fasta.display().to_string();
    let text = text_maybe_gz(&read_input(&a.fasta, &mut inputs)?, &name)?;
    let records = promoter::parse_fasta(&text, &name)?;
    if records.is_empty() {
        bail!("{name}: no FASTA records");
    }
    let species = match a.species.as_str() {
        "human" => Species::Human,
        "mouse" => Species::Mouse,
        o => bail!("--species {o:?}: use human or mouse"),
    };
    let opts = PromoterOptions {
        min_k: a.min_k,
        max_k: a.max_k,
        dim: a.dim,
        seed: a.out.seed,
    };
    let b = bar(records.len() as u64, "promoters");
    let raw = promoter::embed_sequences(&records, &opts, &mut |i, _| b.set_position(i as u64))?;
    b.finish_and_clear();
    // Rows: Ensembl ids (first record wins for a gene), then the vocabulary order if given.
    let mut resolver = Resolver::embedded(species);
    let mut by_gene = std::collections::BTreeMap::new();
    let mut unresolved = Vec::new();
    for (i, r) in records.iter().enumerate() {
        match resolver.resolve(&r.name) {
            Some(id) => {
                by_gene.entry(id).or_insert(i);
            }
            None => unresolved.push(r.name.clone()),
        }
    }
    println!(
        "{} sequences; {} genes; {} names unresolved{}",
        records.len(),
        by_gene.len(),
        unresolved.len(),
        if unresolved.is_empty() {
            String::new()
        } else {
            format!(" (e.g. {:?})", &unresolved[..unresolved.len().min(3)])
        }
    );
    let rows: Vec<String> = match &a.out.vocab {
        Some(p) => super::super::tokenize::load_token_dict(p)?
            .tokens()
            .to_vec(),
        None => by_gene.keys().cloned().collect(),
    };
    let mut data = vec![0f32; rows.len() * a.dim];
    let mut covered = 0usize;
    for (j, g) in rows.iter().enumerate() {
        if let Some(&i) = by_gene.get(g) {
            data[j * a.dim..(j + 1) * a.dim].copy_from_slice(raw.row(i));
            covered += 1;
        }
    }
    if covered == 0 {
        bail!("no FASTA gene is in the vocabulary; check --species and the FASTA header names")
    }
    let vectors = GeneVectors {
        genes: rows,
        width: a.dim,
        data,
    };
    let stats = serde_json::json!({
        "sequences": records.len(),
        "genes": by_gene.len(),
        "rows_covered": covered,
        "rows_zero": vectors.genes.len() - covered,
        "unresolved": unresolved.len(),
    });
    let params = serde_json::json!({
        "method": "centred k-mer frequency profile + seeded Gaussian random projection",
        "options": opts,
        "species": a.species,
    });
    save(
        &a.out,
        PriorKind::Promoter,
        &vectors,
        "build-promoter",
        params,
        inputs,
        stats,
    )
    .context("saving the promoter prior")
}
