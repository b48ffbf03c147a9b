//! `priors`: load the official prior-knowledge files, or build the four priors from public data.
//!
//! Every subcommand writes the compact store of `genecompass_core::priors::store` into
//! `--output` (`{stem}.safetensors`, `genes.txt`, `priors.json` with input SHA-256s, seed and
//! parameters); builders can also write the official pickle layout (`--official-pickles`), so the
//! official Python code can use the result unchanged.

mod build;
mod coexp;
mod official;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use genecompass_core::cells::Species;
use genecompass_core::priors::graphs::{self, GeneGraph};
use genecompass_core::priors::pickle_write;
use genecompass_core::priors::quality::{self, PairSeparation};
use genecompass_core::priors::sgns::{SkipGramConfig, VectorKind};
use genecompass_core::priors::store::{self, InputRecord, PriorEntry};
use genecompass_core::priors::{GeneVectors, PriorKind};
use genecompass_core::tokenize::{HomologMap, Orthologs, TokenDictionary};
use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `priors`.
#[derive(Args, Debug)]
pub struct PriorsArgs {
    #[command(subcommand)]
    pub command: PriorsCommand,
}

/// The `priors` subcommands.
#[derive(Subcommand, Debug)]
pub enum PriorsCommand {
    /// Convert the official `prior_knowledge/` pickles into the compact store (exactly the
    /// tables the official loader builds).
    LoadOfficial(official::LoadOfficialArgs),
    /// Gene-family prior from HGNC gene groups (all within-family pairs, gene2vec).
    BuildFamily(build::FamilyArgs),
    /// GRN prior from a TF → target table (any 2-column TSV; default OmniPath), gene2vec.
    BuildGrn(build::GrnArgs),
    /// Co-expression prior from count matrices (3,000 cells each, Pearson ≥ 0.8), gene2vec.
    BuildCoexp(coexp::CoexpArgs),
    /// Promoter prior from a FASTA of promoter sequences (k-mer profile + random projection).
    BuildPromoter(build::PromoterArgs),
}

/// Runs a `priors` subcommand.
pub fn run(args: PriorsArgs) -> anyhow::Result<()> {
    match args.command {
        PriorsCommand::LoadOfficial(a) => official::run(a),
        PriorsCommand::BuildFamily(a) => build::run_family(a),
        PriorsCommand::BuildGrn(a) => build::run_grn(a),
        PriorsCommand::BuildCoexp(a) => coexp::run(a),
        PriorsCommand::BuildPromoter(a) => build::run_promoter(a),
    }
}

/// Output options shared by the builders.
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Output folder (compact store; several builders may write into one folder).
    #[arg(long)]
    pub output: PathBuf,
    /// Token dictionary (`token_dict.json` or `human_mouse_tokens.pickle`): rows follow its ids,
    /// so the table drops into a checkpoint as is. Default: the genes found in the input, sorted.
    #[arg(long)]
    pub vocab: Option<PathBuf>,
    /// Also write the official pickle layout under `OUTPUT/official/` (symbol-keyed float32 dicts).
    #[arg(long)]
    pub official_pickles: bool,
    /// Random seed (initialisation, shuffling, sampling): same seed, same output.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Skip-gram settings shared by the graph builders.
#[derive(Args, Debug, Clone)]
pub struct SkipGramArgs {
    /// Vector width K (official: 768).
    #[arg(long, default_value_t = 768)]
    pub dim: usize,
    /// Training passes over the pairs.
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// Negative samples per update.
    #[arg(long, default_value_t = 5)]
    pub negatives: usize,
    /// Initial learning rate (decays linearly).
    #[arg(long, default_value_t = 0.025)]
    pub learning_rate: f32,
    /// Fraction of pairs held out to measure quality (held-out pairs vs random pairs); 0 = train on all.
    #[arg(long, default_value_t = 0.0)]
    pub holdout: f64,
    /// Vectors to keep: `input` (word2vec/gene2vec input vectors: shared-neighbour similarity)
    /// or `sum` (input + output vectors: linked genes are also near). Default: `input`, except
    /// `sum` for build-grn (TF → target graphs are hub-and-spoke).
    #[arg(long)]
    pub vectors: Option<String>,
    /// Species to build: `human`, `mouse` (through one-to-one orthologs) or `human,mouse`.
    #[arg(long, value_delimiter = ',', default_value = "human,mouse")]
    pub species: Vec<String>,
}

impl SkipGramArgs {
    fn config(&self, seed: u64, default: VectorKind) -> anyhow::Result<SkipGramConfig> {
        let vectors = match self.vectors.as_deref() {
            None => default,
            Some("input") => VectorKind::Input,
            Some("sum") => VectorKind::Sum,
            Some(o) => anyhow::bail!("--vectors {o:?}: use input or sum"),
        };
        Ok(SkipGramConfig {
            dim: self.dim,
            epochs: self.epochs,
            negatives: self.negatives,
            learning_rate: self.learning_rate,
            seed,
            vectors,
        })
    }

    fn species(&self) -> anyhow::Result<Vec<Species>> {
        self.species
            .iter()
            .map(|s| match s.trim().to_ascii_lowercase().as_str() {
                "human" => Ok(Species::Human),
                "mouse" => Ok(Species::Mouse),
                other => {
                    anyhow::bail!("unknown species {other:?}: use human, mouse or human,mouse")
                }
            })
            .collect()
    }
}

/// Reads an input file, recording its hash.
pub fn read_input(path: &Path, inputs: &mut Vec<InputRecord>) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    inputs.push(InputRecord::of(path.display().to_string(), &bytes));
    Ok(bytes)
}

/// A progress bar over `total` steps (hidden when stderr is not a terminal).
pub fn bar(total: u64, what: &str) -> ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(total);
    b.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, ETA {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    b.set_message(what.to_string());
    b
}

/// A human graph plus, when asked, its mouse counterpart through orthologs.
pub fn with_species(human: GeneGraph, species: &[Species]) -> GeneGraph {
    let mut g = GeneGraph::default();
    if species.contains(&Species::Human) {
        g.extend(&human);
    }
    if species.contains(&Species::Mouse) {
        g.extend(&human.through_orthologs(Orthologs::embedded()));
    }
    g
}

/// Trains skip-gram on `graph` (optionally holding out pairs), prints and returns quality figures.
pub fn embed_and_score(
    graph: &GeneGraph,
    out: &OutputArgs,
    cfg: &SkipGramConfig,
    holdout: f64,
) -> anyhow::Result<(GeneVectors, serde_json::Value)> {
    let vocab = out
        .vocab
        .as_deref()
        .map(super::tokenize::load_token_dict)
        .transpose()?;
    let (train, test) = quality::hold_out(&graph.pairs, holdout, out.seed);
    let mut g = graph.clone();
    g.pairs = train;
    let b = bar((g.pairs.len() * 2 * cfg.epochs) as u64, "skip-gram");
    let rows = vocab.as_ref().map(|v| v.tokens().to_vec());
    let vectors = graphs::embed_graph(&g, rows.as_deref(), cfg, &mut |d, _| b.set_position(d));
    b.finish_and_clear();
    // Score on the graph's own node order: map pairs to rows of the output.
    let row_of: std::collections::HashMap<&str, u32> = vectors
        .genes
        .iter()
        .enumerate()
        .map(|(i, g)| (g.as_str(), i as u32))
        .collect();
    let to_rows = |pairs: &[(u32, u32)]| -> Vec<(u32, u32)> {
        pairs
            .iter()
            .filter_map(|&(a, b)| {
                Some((
                    *row_of.get(graph.nodes[a as usize].as_str())?,
                    *row_of.get(graph.nodes[b as usize].as_str())?,
                ))
            })
            .collect()
    };
    // At most ~200k trained pairs are scored (a seeded uniform sample).
    let sample = |v: Vec<(u32, u32)>| -> Vec<(u32, u32)> {
        let f = (200_000.0 / v.len().max(1) as f64).min(1.0);
        if f >= 1.0 {
            v
        } else {
            quality::hold_out(&v, f, out.seed ^ 7).1
        }
    };
    let trained = quality::pair_separation(&vectors, &sample(to_rows(&g.pairs)), 200_000, out.seed);
    print_sep("trained pairs", &trained);
    let mut stats = serde_json::json!({
        "nodes": graph.nodes.len(),
        "pairs": graph.pairs.len(),
        "pairs_trained": g.pairs.len(),
        "trained_pairs_vs_random": trained,
    });
    if !test.is_empty() {
        let held = quality::pair_separation(&vectors, &to_rows(&test), 200_000, out.seed);
        print_sep("held-out pairs", &held);
        stats["held_out_pairs_vs_random"] = serde_json::to_value(held)?;
    }
    Ok((vectors, stats))
}

fn print_sep(what: &str, s: &PairSeparation) {
    println!(
        "  {what}: {} pairs, mean cosine {:.4} vs {:.4} for {} random pairs, AUC {:.4}",
        s.pairs, s.mean_cosine_pairs, s.mean_cosine_random, s.random_pairs, s.auc
    );
}

/// Writes a built prior: compact store entry and, when asked, the official pickles.
pub fn save(
    out: &OutputArgs,
    kind: PriorKind,
    vectors: &GeneVectors,
    builder: &str,
    parameters: serde_json::Value,
    inputs: Vec<InputRecord>,
    stats: serde_json::Value,
) -> anyhow::Result<()> {
    let entry = PriorEntry {
        kind,
        file: String::new(),
        sha256: String::new(),
        rows: 0,
        width: 0,
        builder: builder.into(),
        seed: Some(out.seed),
        parameters,
        inputs,
        stats,
    };
    let e = store::write_prior(
        &out.output,
        &vectors.genes,
        vectors.width,
        &vectors.data,
        entry,
    )?;
    println!(
        "wrote {} [{} × {}] -> {} (sha256 {}…)",
        kind.stem(),
        e.rows,
        e.width,
        out.output.join(&e.file).display(),
        &e.sha256[..12]
    );
    if out.official_pickles {
        write_official(out, kind, vectors)?;
    }
    Ok(())
}

fn write_official(out: &OutputArgs, kind: PriorKind, v: &GeneVectors) -> anyhow::Result<()> {
    let dir = out.output.join("official");
    let p = pickle_write::to_official_pickles(v);
    let (h, m) = pickle_write::official_names(kind, v.width, p.counts);
    let put = |rel: &str, bytes: &[u8]| -> anyhow::Result<()> {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().expect("has a parent"))?;
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
    };
    put(&h, &p.human)?;
    put(&m, &p.mouse)?;
    let names = p.id_to_symbol.iter().map(|(a, b)| (a.as_str(), b.as_str()));
    put(
        "gene_list/Gene_id_name_dict_human_mouse.pickle",
        &pickle_write::str_str_dict(names),
    )?;
    if let Some(path) = &out.vocab {
        let vocab: TokenDictionary = super::tokenize::load_token_dict(path)?;
        let tokens = vocab
            .tokens()
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_str(), i as i64));
        put(
            "human_mouse_tokens.pickle",
            &pickle_write::str_int_dict(tokens),
        )?;
        let hm = HomologMap::from_orthologs(&vocab, Orthologs::embedded());
        let pairs = hm.pairs.iter().map(|&(a, b)| (a as i64, b as i64));
        put(
            "homologous_hm_token.pickle",
            &pickle_write::int_int_dict(pairs),
        )?;
    }
    println!(
        "wrote official pickles {} ({} human, {} mouse genes{})",
        dir.display(),
        p.counts.0,
        p.counts.1,
        if p.duplicate_symbols > 0 {
            format!(
                "; {} rows share a symbol with an earlier row and were left out",
                p.duplicate_symbols
            )
        } else {
            String::new()
        }
    );
    Ok(())
}
