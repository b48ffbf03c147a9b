//! What `perturb` and `embed-genes` share: the model + cells + forward-convention arguments, the
//! token dictionary found beside the model, gene names → tokens, and output-prefix files.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use genecompass_core::batch::{BatchOptions, Padding, validate_cells};
use genecompass_core::cells::CellSet;
use genecompass_core::checkpoint::{Checkpoint, LoadedModel, WeightsFormat, load_checkpoint};
use genecompass_core::tasks::infer::InferOptions;
use genecompass_core::tokenize::gene_tables::SymbolRule;
use genecompass_core::tokenize::genes::parse_ensembl;
use genecompass_core::tokenize::{GeneTable, NameHit, TokenDictionary, resolve_gene_name};

use super::common::PaddingArg;
use super::tokenize::load_token_dict;
use crate::cells_io::read_cells;
use crate::device::{Backend, device};

/// A model, the cells to run it on, and how.
#[derive(Args, Debug, Clone)]
pub struct ModelCellsArgs {
    /// Model directory: an official GeneCompass checkpoint (config.json + pytorch_model.bin or
    /// model.safetensors) or a native one (model.bpk).
    #[arg(long, value_name = "DIR", visible_alias = "checkpoint")]
    pub model: PathBuf,
    /// Tokenized cells: the safetensors file `genecompass-train tokenize` writes, or an official
    /// tokenized-dataset folder.
    #[arg(long, value_name = "TOKENIZED", visible_alias = "input")]
    pub cells: PathBuf,
    /// The model's token dictionary (JSON `{token: id}` or `human_mouse_tokens.pickle`).
    /// Default: `token_dict.json`, `human_mouse_tokens.pickle` or
    /// `prior_knowledge/human_mouse_tokens.pickle` in the model directory.
    #[arg(long, value_name = "F")]
    pub token_dict: Option<PathBuf>,
    /// Attend to padding, like the official inference scripts (implies --padding stored).
    #[arg(long)]
    pub no_attention_mask: bool,
    /// Ignore the cells' species: human CLS row and no homolog remap.
    #[arg(long)]
    pub no_species: bool,
    /// Cells (and perturbed cells) per forward batch.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Padding policy.
    #[arg(long, value_enum, default_value_t = PaddingArg::Dynamic)]
    pub padding: PaddingArg,
    /// Never use the folded embedding tables (by default they are used when more tokens than
    /// the vocabulary size go through the model, where folding pays for itself).
    #[arg(long)]
    pub unfolded: bool,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    pub backend: Backend,
    /// GPU index for --backend cuda.
    #[arg(long, default_value_t = 0)]
    pub gpu: usize,
}

/// The loaded model, cells and dictionary.
pub struct Loaded {
    /// The device the model lives on.
    pub device: burn::prelude::Device,
    /// The model.
    pub checkpoint: Checkpoint,
    /// The cells, validated against the model.
    pub cells: CellSet,
    /// The model's token dictionary.
    pub vocab: TokenDictionary,
}

impl ModelCellsArgs {
    /// Inference options from the flags (mask and species on unless turned off).
    pub fn options(&self) -> InferOptions {
        let padding = if self.no_attention_mask || self.padding == PaddingArg::Stored {
            Padding::Stored
        } else {
            Padding::Dynamic
        };
        InferOptions {
            batch: BatchOptions {
                batch_size: self.batch_size.max(1),
                padding,
                sort_by_length: true,
                use_species: !self.no_species,
                attention_mask: !self.no_attention_mask,
                truncate_values: false,
                max_scores_per_head: None,
            },
            ..InferOptions::default()
        }
    }

    /// Loads the model, the cells (checked against the model) and the token dictionary.
    pub fn load(&self) -> anyhow::Result<Loaded> {
        let dev = device(self.backend, self.gpu)?;
        let ck = load_checkpoint(&self.model, WeightsFormat::Auto, &dev)
            .with_context(|| format!("loading {}", self.model.display()))?;
        let vocab = match &self.token_dict {
            Some(p) => load_token_dict(p)?,
            None => load_token_dict(&find_token_dict(&self.model)?)?,
        };
        if vocab.len() != ck.config.vocab_size {
            tracing::warn!(
                dictionary = vocab.len(),
                model = ck.config.vocab_size,
                "the token dictionary and the model's vocabulary differ in size; make sure the dictionary is the model's"
            );
        }
        let cells = read_cells(&self.cells, None)?;
        if cells.is_empty() {
            bail!("{} holds no cells", self.cells.display());
        }
        validate_cells(
            &cells,
            &self.cells.display().to_string(),
            ck.config.vocab_size,
            ck.config.max_position_embeddings,
        )?;
        genecompass_core::batch::validate_species(
            &cells,
            &self.cells.display().to_string(),
            &ck.config.species_names(),
        )?;
        Ok(Loaded {
            device: dev,
            checkpoint: ck,
            cells,
            vocab,
        })
    }
}

impl Loaded {
    /// α of the checkpoint's embedding warm-up (1.0 for classifiers).
    pub fn alpha(&self) -> f32 {
        match &self.checkpoint.model {
            LoadedModel::MaskedLm(_, w) => w.alpha,
            LoadedModel::Classifier(_) => 1.0,
        }
    }
}

/// The token dictionary in a model directory, or an error naming where it looked.
pub fn find_token_dict(model: &Path) -> anyhow::Result<PathBuf> {
    const NAMES: [&str; 3] = [
        "token_dict.json",
        "human_mouse_tokens.pickle",
        "prior_knowledge/human_mouse_tokens.pickle",
    ];
    NAMES
        .iter()
        .map(|n| model.join(n))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "no token dictionary in {} (looked for {}); pass --token-dict with the model's \
                 human_mouse_tokens.pickle or a JSON {{token: id}}",
                model.display(),
                NAMES.join(", ")
            )
        })
}

/// A gene the user named, resolved to the model's token.
#[derive(Debug, Clone, PartialEq)]
pub struct Gene {
    /// The token id.
    pub token: u32,
    /// Ensembl gene id (the dictionary's key).
    pub ensembl: String,
    /// Approved symbol, when the embedded HGNC/MGI tables know the id.
    pub symbol: Option<String>,
}

/// The approved symbol of an Ensembl id, from the tables embedded in the binary.
pub fn symbol_of(ensembl: &str) -> Option<String> {
    let (base, species) = parse_ensembl(ensembl)?;
    GeneTable::embedded(species)
        .by_ensembl(base)
        .map(|r| r.symbol.to_string())
        .filter(|s| !s.is_empty())
}

/// Resolves one name: an Ensembl id (version suffix allowed) or an HGNC/MGI symbol.
fn resolve_one(name: &str, vocab: &TokenDictionary) -> Result<Gene, String> {
    let lookup = |ensembl: &str, how: &str| {
        vocab
            .get(ensembl)
            .map(|token| Gene {
                token,
                ensembl: ensembl.to_string(),
                symbol: symbol_of(ensembl),
            })
            .ok_or_else(|| {
                format!(
                    "{name}{how} is not in the model's token dictionary ({} tokens), so the model has \
                     no embedding for it; check the id (https://www.ensembl.org/id/{ensembl}) and \
                     that the dictionary is the model's",
                    vocab.len()
                )
            })
    };
    match resolve_gene_name(name, None) {
        NameHit::Ensembl(id) => lookup(&id, ""),
        NameHit::Symbol {
            ensembl,
            species,
            rule,
        } => {
            let gene = lookup(
                &ensembl,
                &format!(" ({ensembl}, {} symbol)", species.name()),
            )?;
            if rule != SymbolRule::Current {
                tracing::warn!(name, %ensembl, ?rule, "resolved a non-current symbol");
            }
            Ok(gene)
        }
        NameHit::Ambiguous(ids) => Err(format!(
            "{name} is an ambiguous symbol (previous or alias symbol of {}); pass the Ensembl id",
            ids.join(", ")
        )),
        NameHit::Unknown => Err(format!(
            "unknown gene {name:?}: not an Ensembl gene id (ENSG…/ENSMUSG…) nor a known HGNC/MGI symbol; \
             look it up (https://www.ensembl.org, https://www.genenames.org) and pass its Ensembl id"
        )),
    }
}

/// Resolves every name, reporting all the unknown ones at once.
pub fn resolve_genes(names: &[String], vocab: &TokenDictionary) -> anyhow::Result<Vec<Gene>> {
    let mut genes = Vec::new();
    let mut errors = Vec::new();
    for n in names {
        match resolve_one(n, vocab) {
            Ok(g) => {
                if parse_ensembl(n).is_none() {
                    eprintln!("{n} -> {}", g.ensembl);
                }
                genes.push(g);
            }
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(genes)
}

/// Gene names from `--genes` and `--genes-file` (one per line; `#` comments and blank lines
/// skipped; the first tab/comma-separated column is used).
pub fn gene_names(genes: &[String], file: Option<&Path>) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = genes
        .iter()
        .map(|g| g.trim().to_string())
        .filter(|g| !g.is_empty())
        .collect();
    if let Some(f) = file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading genes file {}", f.display()))?;
        names.extend(
            text.lines()
                .map(|l| l.split(['\t', ',']).next().unwrap_or("").trim())
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    if names.is_empty() {
        bail!("no genes given: use --genes ENSG… or --genes-file FILE (one Ensembl id per line)");
    }
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    Ok(names)
}

/// `prefix` + `suffix` (a prefix `out/x` gives `out/x.tsv`), creating the parent folder.
pub fn beside(prefix: &Path, suffix: &str) -> anyhow::Result<PathBuf> {
    let mut s = OsString::from(prefix.as_os_str());
    s.push(suffix);
    let p = PathBuf::from(s);
    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(p)
}

/// Writes a whole file, naming it on failure.
pub fn write(path: &Path, bytes: impl AsRef<[u8]>) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}
