//! Built prior-knowledge tables for a model from scratch: read a store, check that its rows are
//! the vocabulary's, switch on the kinds it holds, and copy them into the frozen tables.

use std::path::Path;

use anyhow::{Context, bail};
use burn::module::Param;
use burn::prelude::*;
use genecompass_core::model::{BertModel, GeneCompassConfig, PriorKind};
use genecompass_core::priors::store::{read_genes, read_prior};
use genecompass_core::tokenize::TokenDictionary;

/// The tables of one store, rows in vocabulary order.
pub struct StoreTables {
    /// Knowledge width K.
    pub width: usize,
    /// `(kind, [V, K] values)` for each kind the store holds, in [`PriorKind::ALL`] order.
    pub tables: Vec<(PriorKind, Vec<f32>)>,
    /// Where the tables came from, saved beside the model as [`SOURCE_FILE`] so the registry
    /// can link the checkpoint to the prior version it was built with.
    pub source: serde_json::Value,
}

/// File in a model directory naming the prior store its knowledge tables came from.
pub const SOURCE_FILE: &str = "priors_source.json";

/// Reads every table of `dir`; its `genes.txt` must list the vocabulary's tokens in order.
pub fn read_store(dir: &Path, vocab: &TokenDictionary) -> anyhow::Result<StoreTables> {
    let genes = read_genes(dir).with_context(|| format!("reading --priors {}", dir.display()))?;
    if genes.as_slice() != vocab.tokens() {
        let first = genes
            .iter()
            .zip(vocab.tokens())
            .position(|(a, b)| a != b)
            .unwrap_or(genes.len().min(vocab.len()));
        bail!(
            "--priors {}: its rows ({} genes) are not the token dictionary's ({} tokens; first \
             difference at row {first}); build the priors with --vocab set to this dictionary",
            dir.display(),
            genes.len(),
            vocab.len()
        );
    }
    let mut tables = Vec::new();
    let mut width = 0;
    for kind in PriorKind::ALL {
        let Ok((w, data)) = read_prior(dir, kind) else {
            continue;
        };
        if width != 0 && w != width {
            bail!(
                "--priors {}: tables of different widths ({width} and {w})",
                dir.display()
            );
        }
        width = w;
        tables.push((kind, data));
    }
    if tables.is_empty() {
        bail!(
            "--priors {}: no prior table in it (promoter, co_exp, gene_family, peca_grn)",
            dir.display()
        );
    }
    let manifest = std::fs::read(dir.join(genecompass_core::priors::store::MANIFEST)).ok();
    let source = serde_json::json!({
        "format": "genecompass-priors-source/1",
        "path": dir.display().to_string(),
        // SHA-256 of the store's priors.json: the key the registry finds the prior version by.
        "manifest_sha256": manifest.as_deref().map(genecompass_core::priors::sha256_hex),
        "kinds": tables.iter().map(|(k, _)| k.stem()).collect::<Vec<_>>(),
        "rows": genes.len(),
        "width": width,
    });
    Ok(StoreTables {
        width,
        tables,
        source,
    })
}

impl StoreTables {
    /// Turns on the kinds the store holds and sets the knowledge width.
    pub fn configure(&self, c: &mut GeneCompassConfig) {
        let has = |k: PriorKind| self.tables.iter().any(|(t, _)| *t == k);
        c.use_promoter = has(PriorKind::Promoter);
        c.use_co_exp = has(PriorKind::CoExp);
        c.use_gene_family = has(PriorKind::GeneFamily);
        c.use_peca_grn = has(PriorKind::PecaGrn);
        c.knowledge_size = Some(self.width);
    }

    /// Copies the tables into a model built with [`Self::configure`]'s config.
    pub fn install(&self, mut bert: BertModel) -> BertModel {
        for (p, (_, data)) in bert.embeddings.priors.iter_mut().zip(&self.tables) {
            let [v, k] = p.knowledge.dims();
            let device = p.knowledge.val().device();
            let t = Tensor::<1>::from_floats(data.as_slice(), &device).reshape([v, k]);
            p.knowledge = Param::from_tensor(t).set_require_grad(false);
        }
        bert
    }
}
