//! The end of a fine-tuning run: test metrics, the baseline, `metrics.json`, `model_card.md`
//! and the exported native classifier (`RUN/model/`).

use burn::module::Module;
use burn::prelude::*;
use genecompass_core::checkpoint::{Checkpoint, LoadedModel, save_native};
use genecompass_core::model::{GeneCompassConfig, GeneCompassForSequenceClassification};
use serde_json::json;

use super::baseline::{BaselineOptions, fit_baseline};
use super::finetune::{FinetuneSpec, batch_options, evaluate};
use super::finetune_data::LabelledData;
use super::run_dir::{RunDir, TrainState, emit, write_atomic};

/// Evaluates, fits the baseline, writes the reports and exports the model.
pub fn finish_finetune(
    run: &RunDir,
    spec: &FinetuneSpec,
    config: &GeneCompassConfig,
    model: &GeneCompassForSequenceClassification,
    data: &LabelledData,
    state: &TrainState,
    device: &Device,
) -> anyhow::Result<()> {
    let bo = batch_options(spec, config.max_position_embeddings);
    let val = evaluate(model, data, &data.split.val, &bo, device);
    let test = evaluate(model, data, &data.split.test, &bo, device);
    let baseline = fit_baseline(
        &data.features,
        &data.labels,
        &data.names,
        &data.split.train,
        &data.split.val,
        &data.split.test,
        &data.feature_desc,
        &BaselineOptions {
            max_features: spec.baseline_features,
            ..Default::default()
        },
        &device.clone().without_autodiff(),
    );
    let model_dir = run.file("model");
    let ck = Checkpoint {
        dir: run.path.clone(),
        config: config.clone(),
        model: LoadedModel::Classifier(model.valid()),
        weights_file: model_dir.join("model.bpk"),
        tensor_count: 0,
    };
    save_native(&ck, &model_dir, false)?;
    let vocab_hash = data.vocab.as_ref().map(|v| v.sha256().to_string());
    if let Some(v) = &data.vocab {
        v.save_json(&model_dir.join("token_dict.json"))?;
    }
    if let Some(m) = &data.medians {
        write_atomic(&model_dir.join("gene_medians.json"), &m.to_json())?;
    }
    let count = |c: usize, set: &[usize]| set.iter().filter(|&&i| data.labels[i] == c).count();
    let class_counts: Vec<_> = (0..data.names.len())
        .map(|c| {
            json!({"label": data.names[c], "train": count(c, &data.split.train),
            "val": count(c, &data.split.val), "test": count(c, &data.split.test)})
        })
        .collect();
    let test =
        test.ok_or_else(|| anyhow::anyhow!("the test split is empty; raise --test-fraction"))?;
    let metrics = json!({
        "test": test,
        "val": val,
        "baseline": {"test": baseline.test, "val": baseline.val, "features": baseline.features,
            "n_features": baseline.n_features, "l2_penalty": baseline.penalty},
        "label_map": data.names,
        "tokenizer_dictionary_sha256": vocab_hash,
        "data_provenance": data.provenance,
        "split": {"seed": spec.seed, "val_fraction": spec.val_fraction, "test_fraction": spec.test_fraction,
            "train": data.split.train.len(), "val": data.split.val.len(), "test": data.split.test.len(),
            "per_class": class_counts},
        "cells_in_input": data.cells_in_input,
        "best_epoch": state.best_epoch,
        "best_val_macro_f1": state.best_val_macro_f1,
        "steps": state.step,
        "job": spec,
    });
    write_atomic(
        &run.file("metrics.json"),
        &serde_json::to_string_pretty(&metrics)?,
    )?;
    let card = format!(
        "# GeneCompass cell-type classifier\n\n\
         - Data: `{}` (label column `{}`), {} cells used of {} in the input; {}.\n\
         - Split (seed {}): {} train / {} validation / {} test, stratified by cell type.\n\
         - Model: {} ({} layers, hidden {}), {} classes, trained {} steps; best epoch {:?} by validation macro-F1.\n\
         - Species passed to the model: {}; values not truncated.\n\
         - Tokenizer dictionary sha256: {}.\n\n\
         | | accuracy | macro-F1 |\n|---|---|---|\n| GeneCompass (test) | {:.4} | {:.4} |\n\
         | logistic regression baseline (test) | {:.4} | {:.4} |\n\n\
         Baseline: multinomial L2 logistic regression on {} ({} features), penalty {} chosen on validation.\n\n\
         Load with `genecompass-train classify --checkpoint {}`.\n",
        spec.data.display(),
        spec.label_column,
        data.cells.len(),
        data.cells_in_input,
        data.provenance,
        spec.seed,
        data.split.train.len(),
        data.split.val.len(),
        data.split.test.len(),
        spec.checkpoint.as_ref().map_or_else(
            || format!("config {}", spec.config.as_deref().unwrap_or("small")),
            |p| p.display().to_string()
        ),
        config.num_hidden_layers,
        config.hidden_size,
        data.names.len(),
        state.step,
        state.best_epoch,
        spec.with_species,
        vocab_hash.as_deref().unwrap_or("unknown"),
        test.accuracy,
        test.macro_f1,
        baseline.test.accuracy,
        baseline.test.macro_f1,
        baseline.features,
        baseline.n_features,
        baseline.penalty,
        model_dir.display(),
    );
    write_atomic(&run.file("model_card.md"), &card)?;
    emit(
        json!({"event": "done", "test_accuracy": test.accuracy, "test_macro_f1": test.macro_f1,
        "baseline_test_accuracy": baseline.test.accuracy, "baseline_test_macro_f1": baseline.test.macro_f1,
        "model": model_dir}),
    );
    Ok(())
}
