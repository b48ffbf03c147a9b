//! `genecompass-train`: GeneCompass inference, tokenization and training jobs.

use genecompass_trainer::cells_io;
mod commands;
mod device;
mod progress;

use clap::{Parser, Subcommand};

/// GeneCompass in Rust: embed, classify, tokenize and train single-cell foundation models.
#[derive(Parser, Debug)]
#[command(name = "genecompass-train", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter (e.g. `info`, `genecompass_core=debug`); also read from RUST_LOG.
    #[arg(long, global = true, default_value = "info")]
    log: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a model directory's config, parameter counts and what was found.
    Inspect(commands::inspect::InspectArgs),
    /// Write cell and gene embeddings of tokenized cells.
    Embed(commands::embed::EmbedArgs),
    /// Write context-averaged gene embeddings (.npy + gene list) and cell embeddings.
    EmbedGenes(commands::embed_genes::EmbedGenesArgs),
    /// In-silico perturbation: delete or over-express genes and measure the embedding shift.
    Perturb(commands::perturb::PerturbArgs),
    /// GRN inference: rank each TF's targets by the shift its deletion causes; score against priors.
    Grn(commands::grn::GrnArgs),
    /// Cell-fate factor search: genes whose over-expression moves source cells toward a target.
    Fate(commands::fate::FateArgs),
    /// Predict cell types with a classifier directory.
    Classify(commands::classify::ClassifyArgs),
    /// Convert a model directory to the native burnpack format (optionally f16).
    Convert(commands::convert::ConvertArgs),
    /// Fine-tune a cell-type classifier (resumable job; baseline and test metrics at the end).
    Finetune(commands::finetune::FinetuneArgs),
    /// Add genes to a model (new table rows; existing weights and ids kept).
    ExtendVocab(commands::extend_vocab::ExtendVocabArgs),
    /// Masked-LM pretraining (resumable job).
    Pretrain(commands::pretrain::PretrainArgs),
    /// Tokenize a single-cell count file (h5ad, 10x, CSV) into cells for embed/classify/training.
    ///
    /// The official steps, in order: cell QC (total counts > 0; z-scores of total counts and of
    /// the mitochondrial fraction inside (-3, 3) within each sample), more than 6 expressed
    /// protein-coding or miRNA genes, division by each gene's median, log2(1 + x), ranking by
    /// value (descending; equal values by ascending token id), the top 2048 genes, the species
    /// flag. The input is read twice: QC statistics first (after which the coverage is
    /// reported), then the tokens.
    Tokenize(commands::tokenize::TokenizeArgs),
    /// Compute per-gene medians (`{ensembl_id: median}`) from count files.
    Medians(commands::medians::MediansArgs),
    /// Build a token dictionary from the embedded human/mouse gene tables.
    Vocab(commands::vocab::VocabArgs),
    /// Prior knowledge: load the official pickles, or build the four priors from public data.
    Priors(commands::priors::PriorsArgs),
}

fn main() {
    let cli = Cli::parse();
    let filter = std::env::var("RUST_LOG").unwrap_or(cli.log.clone());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();
    // Training steps, tokenizer chunks and inference batches all allocate and free the same
    // buffers over and over: keep freed memory instead of faulting fresh pages in each time.
    genecompass_trainer::train::alloc::keep_freed_memory();
    let result = match cli.command {
        Command::Inspect(a) => commands::inspect::run(a),
        Command::Embed(a) => commands::embed::run(a),
        Command::EmbedGenes(a) => commands::embed_genes::run(a),
        Command::Perturb(a) => commands::perturb::run(a),
        Command::Grn(a) => commands::grn::run(a),
        Command::Fate(a) => commands::fate::run(a),
        Command::Classify(a) => commands::classify::run(a),
        Command::Convert(a) => commands::convert::run(a),
        Command::Finetune(a) => commands::finetune::run(a),
        Command::Pretrain(a) => commands::pretrain::run(a),
        Command::ExtendVocab(a) => commands::extend_vocab::run(a),
        Command::Tokenize(a) => commands::tokenize::run(a),
        Command::Medians(a) => commands::medians::run(a),
        Command::Vocab(a) => commands::vocab::run(a),
        Command::Priors(a) => commands::priors::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
