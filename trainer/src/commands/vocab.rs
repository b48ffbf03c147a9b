//! `vocab`: a token dictionary from the gene tables embedded in the binary.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use genecompass_core::cells::Species;
use genecompass_core::tokenize::TokenDictionary;

use super::tokenize::embedded_gene_ids;

/// Arguments of `vocab`.
#[derive(Args, Debug)]
pub struct VocabArgs {
    /// Species whose genes become tokens, in this order: `human`, `mouse` or `human,mouse`.
    #[arg(long, value_delimiter = ',', default_value = "human,mouse")]
    pub species: Vec<String>,
    /// Keep only genes of these canonical biotypes (e.g. `protein_coding,miRNA`); all when omitted.
    #[arg(long, value_delimiter = ',')]
    pub biotypes: Option<Vec<String>>,
    /// Output JSON `{token: id}`.
    #[arg(long, value_name = "token_dict.json")]
    pub output: PathBuf,
}

/// Writes `<pad>` = 0, `<mask>` = 1, then each species' Ensembl ids (HGNC / MGI tables) sorted.
/// The ids differ from the official `human_mouse_tokens.pickle`: a dictionary for training from
/// scratch, not for official checkpoints.
pub fn run(args: VocabArgs) -> anyhow::Result<()> {
    let mut ids = Vec::new();
    let mut counts = Vec::new();
    for s in &args.species {
        let sp = match s.trim().to_ascii_lowercase().as_str() {
            "human" => Species::Human,
            "mouse" => Species::Mouse,
            other => bail!("unknown species {other:?}: use human, mouse or human,mouse"),
        };
        let g = embedded_gene_ids(sp, args.biotypes.as_deref());
        counts.push(format!("{} {}", g.len(), sp.name()));
        ids.extend(g);
    }
    if ids.is_empty() {
        bail!("no genes selected (check --biotypes, e.g. protein_coding)");
    }
    let vocab = TokenDictionary::build(ids);
    vocab
        .save_json(&args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    println!(
        "wrote {} tokens (<pad>, <mask>, {}) -> {}; sha256 {}. Not the official ids: for training from scratch",
        vocab.len(),
        counts.join(", "),
        args.output.display(),
        vocab.sha256()
    );
    Ok(())
}
