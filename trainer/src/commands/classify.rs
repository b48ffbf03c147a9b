//! `classify`: cell-type predictions with a classifier directory.

use std::collections::HashMap;

use anyhow::{Context, bail};
use clap::Args;
use genecompass_core::batch::validate_cells;
use genecompass_core::checkpoint::{LoadedModel, WeightsFormat, load_checkpoint};
use genecompass_core::tasks::infer::classify_cells;

use super::common::InferArgs;
use crate::cells_io::{OutTensor, read_cells, write_safetensors};
use crate::device::device;
use crate::progress::cells_bar;

/// Arguments of `classify`.
#[derive(Args, Debug)]
pub struct ClassifyArgs {
    #[command(flatten)]
    pub infer: InferArgs,
    /// Use the cells' species even if the classifier was trained without (official classifiers
    /// take no species: human CLS, no homolog remap).
    #[arg(long)]
    pub with_species: bool,
    /// Truncate values to integers as the official fine-tuning collator did (default: what the
    /// classifier's config records; official classifiers, which record nothing, were trained
    /// and evaluated that way, so it is on for them).
    #[arg(long)]
    pub truncate_values: Option<bool>,
    /// Print at most this many predictions.
    #[arg(long, default_value_t = 20)]
    pub show: usize,
}

/// Writes `logits` and `probabilities` [N, C] and `pooled` [N, H]; prints predicted labels.
pub fn run(args: ClassifyArgs) -> anyhow::Result<()> {
    let a = &args.infer;
    let dev = device(a.backend, a.gpu)?;
    let ck = load_checkpoint(&a.checkpoint, WeightsFormat::Auto, &dev)
        .with_context(|| format!("loading {}", a.checkpoint.display()))?;
    let LoadedModel::Classifier(model) = &ck.model else {
        bail!(
            "{} is a pretraining (masked-LM) model, not a classifier; fine-tune one with \
             `genecompass-train finetune` or use `embed`",
            a.checkpoint.display()
        );
    };
    let cells = read_cells(&a.input, None)?;
    let c = &ck.config;
    validate_cells(
        &cells,
        &a.input.display().to_string(),
        c.vocab_size,
        c.max_position_embeddings,
    )?;
    let species = args.with_species || c.genecompass_trained_with_species.unwrap_or(false);
    let truncate = args
        .truncate_values
        .unwrap_or(c.genecompass_truncate_values.unwrap_or(true));
    let options = a.options(species, truncate);
    let bar = cells_bar(cells.len(), "classify");
    let start = std::time::Instant::now();
    let p = classify_cells(model, &cells, &options, &dev, |n| bar.inc(n as u64));
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    let names = ck.label_names();
    let (n, k, h) = (cells.len(), p.classes, c.hidden_size);
    for (i, cls) in p.argmax().into_iter().enumerate().take(args.show) {
        println!(
            "cell {i}\t{}\t{:.4}",
            names[cls],
            p.probabilities[i * k + cls]
        );
    }
    if n > args.show {
        println!(
            "... ({} more cells in {})",
            n - args.show,
            a.output.display()
        );
    }
    let meta = HashMap::from([
        ("checkpoint".to_string(), a.checkpoint.display().to_string()),
        ("labels".to_string(), serde_json::to_string(&names)?),
        ("species".to_string(), species.to_string()),
        ("truncate_values".to_string(), truncate.to_string()),
    ]);
    write_safetensors(
        &a.output,
        vec![
            (
                "logits".into(),
                OutTensor {
                    shape: vec![n, k],
                    data: p.logits,
                },
            ),
            (
                "probabilities".into(),
                OutTensor {
                    shape: vec![n, k],
                    data: p.probabilities,
                },
            ),
            (
                "pooled".into(),
                OutTensor {
                    shape: vec![n, h],
                    data: p.pooled,
                },
            ),
        ],
        meta,
    )?;
    eprintln!(
        "classified {n} cells in {secs:.2}s ({:.1} cells/s)",
        n as f64 / secs.max(1e-9)
    );
    Ok(())
}
