//! `inspect`: what a model directory holds.

use std::path::PathBuf;

use anyhow::Context;
use burn::module::Module;
use burn::prelude::*;
use clap::Args;
use genecompass_core::checkpoint::{LoadedModel, WeightsFormat, load_checkpoint};

/// Arguments of `inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Model directory.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
}

/// Prints config, parameter counts and the file read.
pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let device = Device::flex();
    let ck = load_checkpoint(&args.checkpoint, WeightsFormat::Auto, &device)
        .with_context(|| format!("loading {}", args.checkpoint.display()))?;
    let c = &ck.config;
    println!("directory      {}", ck.dir.display());
    println!(
        "weights        {} ({} tensors)",
        ck.weights_file.display(),
        ck.tensor_count
    );
    println!("model          {:?}", ck.kind());
    println!(
        "shape          {} layers, hidden {}, {} heads, FFN {}, act {:?}",
        c.num_hidden_layers,
        c.hidden_size,
        c.num_attention_heads,
        c.intermediate_size,
        c.hidden_act
    );
    println!(
        "vocabulary     {} tokens, max {} genes per cell, knowledge width {}",
        c.vocab_size,
        c.max_position_embeddings,
        c.knowledge_width()
    );
    let priors: Vec<&str> = c.priors().iter().map(|p| p.stem()).collect();
    println!(
        "inputs         values {}, priors [{}], species CLS {}",
        c.use_values,
        priors.join(", "),
        c.use_cls_token
    );
    let bert = ck.bert();
    let knowledge: usize = bert
        .embeddings
        .priors
        .iter()
        .map(|p| p.knowledge.val().dims().iter().product::<usize>())
        .sum();
    let total = match &ck.model {
        LoadedModel::MaskedLm(m, w) => {
            println!("emb_warmup     alpha {}, steps {}", w.alpha, w.steps);
            m.num_params()
        }
        LoadedModel::Classifier(clf) => {
            println!(
                "labels         {}: {}",
                clf.num_labels(),
                ck.label_names().join(", ")
            );
            println!(
                "classifier     trained with species: {}, on truncated values: {}",
                c.genecompass_trained_with_species.unwrap_or(false),
                c.genecompass_truncate_values.unwrap_or(true)
            );
            clf.num_params()
        }
    };
    let hom = bert
        .embeddings
        .homologous_index
        .val()
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()?;
    let remapped = hom
        .iter()
        .enumerate()
        .filter(|(i, v)| **v != *i as i64)
        .count();
    println!("homologs       {remapped} tokens remapped to a homolog for mouse cells");
    println!(
        "parameters     {} trainable, {} frozen knowledge values",
        total - knowledge - hom.len(),
        knowledge
    );
    println!("encoder        {} parameters", bert.encoder.num_params());
    Ok(())
}
