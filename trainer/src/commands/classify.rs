//! `classify`: cell-type predictions with a classifier directory, on tokenized cells or on a
//! single-cell file (h5ad, 10x, CSV/TSV: tokenized here; for an h5ad, `--write-h5ad` returns
//! the file with the predictions in `obs`).

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use genecompass_core::batch::validate_cells;
use genecompass_core::checkpoint::{LoadedModel, WeightsFormat, load_checkpoint};
use genecompass_core::tasks::infer::classify_cells;

use super::classify_h5ad::{
    TokenizeFor, check_write_target, is_raw_cells, tokenize_file, write_h5ad,
};
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
    /// With an .h5ad --input: write a copy of it with obs columns `genecompass_label`
    /// (categorical; cells the tokenizer dropped are "filtered") and `genecompass_confidence`
    /// (float32 probability of the label; NaN for dropped cells), readable by anndata.
    #[arg(long, value_name = "OUT.h5ad")]
    pub write_h5ad: Option<PathBuf>,
    /// With --write-h5ad: replace those columns when the input already has them.
    #[arg(long)]
    pub replace_columns: bool,
    /// With a single-cell file as --input: token dictionary (default: token_dict.json beside the classifier).
    #[arg(long, value_name = "FILE")]
    pub token_dict: Option<PathBuf>,
    /// With a single-cell file as --input: gene medians (default: gene_medians.json beside the classifier).
    #[arg(long, value_name = "FILE")]
    pub medians: Option<PathBuf>,
}

/// Writes `logits` and `probabilities` [N, C] and `pooled` [N, H]; prints predicted labels
/// (`cell ROW\tLABEL\tPROBABILITY`, ROW being the file row for a single-cell file).
pub fn run(args: ClassifyArgs) -> anyhow::Result<()> {
    let a = &args.infer;
    check_write_target(&a.input, args.write_h5ad.as_ref())?;
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
    let c = &ck.config;
    let h5ad = if is_raw_cells(&a.input) {
        let t = TokenizeFor {
            checkpoint: &a.checkpoint,
            token_dict: args.token_dict.as_deref(),
            medians: args.medians.as_deref(),
            max_len: c.max_position_embeddings.min(2048),
            refuse_existing: args.write_h5ad.is_some() && !args.replace_columns,
        };
        Some(tokenize_file(&a.input, &t)?)
    } else {
        None
    };
    let read;
    let cells = match &h5ad {
        Some(h) => &h.cells,
        None => {
            read = read_cells(&a.input, None)?;
            &read
        }
    };
    validate_cells(
        cells,
        &a.input.display().to_string(),
        c.vocab_size,
        c.max_position_embeddings,
    )?;
    let species = args.with_species || c.genecompass_trained_with_species.unwrap_or(false);
    if species {
        genecompass_core::batch::validate_species(
            cells,
            &a.input.display().to_string(),
            &c.species_names(),
        )?;
    }
    let truncate = args
        .truncate_values
        .unwrap_or(c.genecompass_truncate_values.unwrap_or(true));
    let options = a.options(species, truncate, c.max_position_embeddings);
    let bar = cells_bar(cells.len(), "classify");
    let start = std::time::Instant::now();
    let p = classify_cells(model, cells, &options, &dev, |n| bar.inc(n as u64));
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    let names = ck.label_names();
    let (n, k, h) = (cells.len(), p.classes, c.hidden_size);
    let predicted: Vec<(&str, f32)> = (p.argmax().into_iter().enumerate())
        .map(|(i, cls)| (names[cls].as_str(), p.probabilities[i * k + cls]))
        .collect();
    let row = |i: usize| h5ad.as_ref().map_or(i, |h| h.rows[i]);
    for (i, (label, prob)) in predicted.iter().enumerate().take(args.show) {
        println!("cell {}\t{label}\t{prob:.4}", row(i));
    }
    if n > args.show {
        println!(
            "... ({} more cells in {})",
            n - args.show,
            a.output.display()
        );
    }
    let mut meta = HashMap::from([
        ("checkpoint".to_string(), a.checkpoint.display().to_string()),
        ("labels".to_string(), serde_json::to_string(&names)?),
        ("species".to_string(), species.to_string()),
        ("truncate_values".to_string(), truncate.to_string()),
    ]);
    if let Some(h) = &h5ad {
        // Row i of the tensors is file row rows[i]; the other rows were dropped by the tokenizer.
        meta.insert("rows".into(), serde_json::to_string(&h.rows)?);
        meta.insert("cells_in_file".into(), h.n_obs.to_string());
    }
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
    if let (Some(out), Some(h)) = (&args.write_h5ad, &h5ad) {
        write_h5ad(&a.input, out, h, &predicted, args.replace_columns)?;
    }
    Ok(())
}
