//! Building the model of a job: from a checkpoint directory or a named config.

use std::path::Path;

use anyhow::{Context, bail};
use burn::module::Module;
use burn::prelude::*;
use genecompass_core::checkpoint::{LoadedModel, WeightsFormat, load_checkpoint};
use genecompass_core::model::{BertModel, GeneCompassConfig};
use genecompass_core::tokenize::TokenDictionary;

/// A config by name: `tiny` (H 32, 2 layers, 4 heads, FFN 64), `small`, `base`. Without a
/// checkpoint there are no prior-knowledge tables, so the four priors are switched off.
pub fn named_config(
    name: &str,
    vocab_size: usize,
    max_len: usize,
) -> anyhow::Result<GeneCompassConfig> {
    let mut c = match name {
        "tiny" => GeneCompassConfig::shaped(vocab_size, 32, 2, 4, 64),
        "small" => GeneCompassConfig::small(vocab_size),
        "base" => GeneCompassConfig::base(vocab_size),
        other => bail!("unknown --config {other:?}; use tiny, small or base (or --checkpoint DIR)"),
    };
    c.max_position_embeddings = max_len.max(1);
    c.use_promoter = false;
    c.use_co_exp = false;
    c.use_gene_family = false;
    c.use_peca_grn = false;
    c.knowledge_size = None;
    Ok(c)
}

/// The encoder (and config) of a checkpoint directory, MLM or classifier.
pub fn checkpoint_bert(
    dir: &Path,
    device: &Device,
) -> anyhow::Result<(GeneCompassConfig, BertModel)> {
    let ck = load_checkpoint(dir, WeightsFormat::Auto, device)
        .with_context(|| format!("loading {}", dir.display()))?;
    let bert = match ck.model {
        LoadedModel::MaskedLm(m, _) => m.bert,
        LoadedModel::Classifier(c) => c.bert,
    };
    Ok((ck.config, bert))
}

/// The token dictionary stored next to a checkpoint (`token_dict.json`), if any.
pub fn checkpoint_vocab(dir: &Path) -> anyhow::Result<Option<TokenDictionary>> {
    for name in ["token_dict.json", "token_dictionary.json"] {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(Some(
                TokenDictionary::load(&p).with_context(|| format!("reading {}", p.display()))?,
            ));
        }
    }
    Ok(None)
}

/// Checks that a vocabulary matches the model's embedding table.
pub fn check_vocab(vocab_len: usize, config: &GeneCompassConfig, what: &str) -> anyhow::Result<()> {
    if vocab_len != config.vocab_size {
        bail!(
            "vocabulary mismatch: {what} has {vocab_len} tokens but the model's vocab_size is {}; pass the \
             --token-dict the checkpoint was trained with",
            config.vocab_size
        );
    }
    Ok(())
}

/// Prior-knowledge tables are frozen buffers: never trained, never decayed.
pub fn freeze_knowledge(mut bert: BertModel) -> BertModel {
    bert.embeddings.priors = bert
        .embeddings
        .priors
        .into_iter()
        .map(|mut p| {
            p.knowledge = p.knowledge.set_require_grad(false);
            p
        })
        .collect();
    bert
}

/// Freezes the first `n` encoder layers (the notebook freezes all 12).
pub fn freeze_layers(mut bert: BertModel, n: usize) -> BertModel {
    bert.encoder.layer = bert
        .encoder
        .layer
        .into_iter()
        .enumerate()
        .map(|(i, l)| if i < n { l.no_grad() } else { l })
        .collect();
    bert
}
