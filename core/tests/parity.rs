//! Parity with the official PyTorch code: every model tensor of
//! `shared/fixtures/reference-tiny/outputs.safetensors`, from both weight formats.

mod common;

use burn::prelude::*;
use common::{assert_close, read_f32, read_i64, tiny};
use genecompass_core::checkpoint::{Checkpoint, LoadedModel, WeightsFormat, load_checkpoint};
use genecompass_core::model::{
    FoldedEmbedding, ForwardOptions, MlmTargets, ModelInput, OutputRows,
};

const ATOL: f32 = 1e-4;

struct Fixture {
    ids: Vec<i64>,
    values: Vec<f32>,
    species: Vec<i64>,
    mask: Vec<f32>,
    out: std::collections::HashMap<String, (Vec<usize>, Vec<f32>)>,
    ints: std::collections::HashMap<String, Vec<i64>>,
    floats_in: std::collections::HashMap<String, (Vec<usize>, Vec<f32>)>,
}

fn fixture() -> Fixture {
    let ints = read_i64(tiny().join("inputs.safetensors"));
    let floats_in = read_f32(tiny().join("inputs.safetensors"));
    Fixture {
        ids: ints["input_ids"].clone(),
        values: floats_in["values"].1.clone(),
        species: ints["species"].clone(),
        mask: ints["attention_mask"].iter().map(|&m| m as f32).collect(),
        out: read_f32(tiny().join("outputs.safetensors")),
        ints,
        floats_in,
    }
}

fn vec3(t: Tensor<3>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn want<'a>(f: &'a Fixture, name: &str) -> &'a [f32] {
    &f.out
        .get(name)
        .unwrap_or_else(|| panic!("fixture has no {name}"))
        .1
}

fn input(
    f: &Fixture,
    ids: &[i64],
    values: &[f32],
    species: bool,
    mask: bool,
    dev: &Device,
) -> ModelInput {
    ModelInput::from_host(
        ids,
        values,
        species.then_some(&f.species[..]),
        mask.then_some(&f.mask[..]),
        6,
        16,
        dev,
    )
}

fn mlm(
    dir: &std::path::Path,
    format: WeightsFormat,
    dev: &Device,
) -> (
    Checkpoint,
    genecompass_core::model::GeneCompassForMaskedLm,
    f32,
) {
    let ck = load_checkpoint(dir, format, dev).expect("load MLM fixture");
    let (m, alpha) = match &ck.model {
        LoadedModel::MaskedLm(m, w) => (m.clone(), w.alpha),
        _ => panic!("expected an MLM checkpoint"),
    };
    (ck, m, alpha)
}

fn check_mlm(format: WeightsFormat) {
    let dev = Device::flex();
    let f = fixture();
    let (ck, m, alpha) = mlm(&tiny(), format, &dev);
    assert_eq!(alpha, 1.0);
    assert_eq!(ck.config.knowledge_size, Some(768));
    let opts = ForwardOptions::default();
    let full = input(&f, &f.ids, &f.values, true, true, &dev);

    let emb = m.bert.embeddings.forward(
        full.input_ids.clone(),
        full.values.clone(),
        full.species.clone(),
        1.0,
    );
    assert_close(
        "embeddings_output",
        &vec3(emb),
        want(&f, "embeddings_output"),
        ATOL,
    );
    let emb = m
        .bert
        .embeddings
        .forward(full.input_ids.clone(), full.values.clone(), None, 1.0);
    assert_close(
        "embeddings_output_no_species",
        &vec3(emb),
        want(&f, "embeddings_output_no_species"),
        ATOL,
    );
    let emb = m.bert.embeddings.forward(
        full.input_ids.clone(),
        full.values.clone(),
        full.species.clone(),
        0.5,
    );
    assert_close(
        "embeddings_output_alpha0p5",
        &vec3(emb),
        want(&f, "embeddings_output_alpha0p5"),
        ATOL,
    );

    let out = m.bert.forward(
        &full,
        ForwardOptions {
            output_hidden_states: true,
            ..opts
        },
    );
    assert_close(
        "bert_last_hidden_state_masked",
        &vec3(out.last_hidden_state),
        want(&f, "bert_last_hidden_state_masked"),
        ATOL,
    );
    let hs: Vec<f32> = out.hidden_states.into_iter().flat_map(vec3).collect();
    assert_close(
        "bert_hidden_states_masked",
        &hs,
        want(&f, "bert_hidden_states_masked"),
        ATOL,
    );

    let nomask = input(&f, &f.ids, &f.values, true, false, &dev);
    let out = m.bert.forward(&nomask, opts);
    assert_close(
        "bert_last_hidden_state_nomask",
        &vec3(out.last_hidden_state),
        want(&f, "bert_last_hidden_state_nomask"),
        ATOL,
    );
    let nosp = input(&f, &f.ids, &f.values, false, true, &dev);
    let out = m.bert.forward(&nosp, opts);
    assert_close(
        "bert_last_hidden_state_masked_no_species",
        &vec3(out.last_hidden_state),
        want(&f, "bert_last_hidden_state_masked_no_species"),
        ATOL,
    );
    let out = m.bert.forward(&full, ForwardOptions { alpha: 0.5, ..opts });
    assert_close(
        "bert_last_hidden_state_masked_alpha0p5",
        &vec3(out.last_hidden_state),
        want(&f, "bert_last_hidden_state_masked_alpha0p5"),
        ATOL,
    );

    let o = m.forward(&full, opts);
    assert_close("mlm_logits", &vec3(o.logits), want(&f, "mlm_logits"), ATOL);
    assert_close(
        "mlm_value_pred",
        &o.values.into_data().try_to_vec::<f32>().unwrap(),
        want(&f, "mlm_value_pred"),
        ATOL,
    );

    let corrupted = ModelInput::from_host(
        &f.ints["mlm_input_ids"],
        &f.floats_in["mlm_values"].1,
        Some(&f.species),
        Some(
            &f.ints["mlm_attention_mask"]
                .iter()
                .map(|&m| m as f32)
                .collect::<Vec<_>>(),
        ),
        6,
        16,
        &dev,
    );
    let o = m.forward(&corrupted, opts);
    assert_close(
        "mlm_corrupted_logits",
        &vec3(o.logits),
        want(&f, "mlm_corrupted_logits"),
        ATOL,
    );
    assert_close(
        "mlm_corrupted_value_pred",
        &o.values.into_data().try_to_vec::<f32>().unwrap(),
        want(&f, "mlm_corrupted_value_pred"),
        ATOL,
    );

    let labels = &f.ints["mlm_labels"];
    let positions: Vec<i64> = (0..labels.len() as i64)
        .filter(|&i| labels[i as usize] != -100)
        .collect();
    let ids: Vec<i64> = positions.iter().map(|&i| labels[i as usize]).collect();
    let vals: Vec<f32> = positions
        .iter()
        .map(|&i| f.floats_in["mlm_labels_values"].1[i as usize])
        .collect();
    let n = positions.len();
    assert_eq!(n, 9);
    let targets = MlmTargets {
        positions: Tensor::from_data(TensorData::new(positions, [n]), &dev),
        ids: Tensor::from_data(TensorData::new(ids, [n]), &dev),
        values: Tensor::from_data(TensorData::new(vals, [n]), &dev),
    };
    let loss = m.loss(&corrupted, &targets, opts);
    let scalar = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap()[0];
    for (name, got) in [
        ("mlm_loss", scalar(loss.loss)),
        ("mlm_id_loss", scalar(loss.id_loss)),
        ("mlm_value_loss", scalar(loss.value_loss)),
    ] {
        let w = want(&f, name)[0];
        assert!((got - w).abs() <= 1e-5 * w.abs(), "{name}: {got} vs {w}");
    }

    // The folded inference embedding gives the same numbers, folded over the whole vocabulary
    // and over only the fixture's genes (what the CLI and the browser do per file).
    let b = f.species.len();
    let l = f.ids.len() / b;
    let mouse_ids = (0..b)
        .filter(|&i| f.species[i] != 0)
        .flat_map(|i| f.ids[i * l..(i + 1) * l].iter().map(|&id| id as u32));
    let subset = FoldedEmbedding::fold_for_ids(
        &m.bert.embeddings,
        f.ids.iter().map(|&id| id as u32),
        mouse_ids,
    );
    let vocab = m.bert.embeddings.word_embeddings.weight.dims()[0];
    let mut unique: Vec<i64> = f.ids.iter().copied().chain([0, 1]).collect();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(
        subset.word_part.dims()[0],
        unique.len(),
        "one row per used id"
    );
    assert!(
        unique.len() < vocab,
        "the fixture uses {} of {vocab} ids",
        unique.len()
    );
    for (name, folded) in [
        (
            "embeddings_output (folded)",
            FoldedEmbedding::fold(&m.bert.embeddings),
        ),
        ("embeddings_output (folded over the batch's genes)", subset),
    ] {
        let e = folded.forward(
            &m.bert.embeddings,
            full.input_ids.clone(),
            full.values.clone(),
            full.species.clone(),
            1.0,
        );
        assert_close(name, &vec3(e), want(&f, "embeddings_output"), ATOL);
    }
}

#[test]
fn mlm_from_safetensors_matches_every_reference_tensor() {
    check_mlm(WeightsFormat::Safetensors);
}

#[test]
fn mlm_from_pytorch_bin_matches_every_reference_tensor() {
    check_mlm(WeightsFormat::Pytorch);
}

fn check_classifier(format: WeightsFormat) {
    let dev = Device::flex();
    let f = fixture();
    let ck = load_checkpoint(&tiny().join("classifier"), format, &dev).expect("load classifier");
    let LoadedModel::Classifier(c) = &ck.model else {
        panic!("expected a classifier")
    };
    assert_eq!(c.num_labels(), 5);
    assert_eq!(ck.label_names().len(), 5);
    let opts = ForwardOptions::default();
    let (logits, pooled) =
        c.forward_with_pooled(&input(&f, &f.ids, &f.values, false, true, &dev), opts);
    let l = logits.into_data().try_to_vec::<f32>().unwrap();
    assert_close("cls_logits", &l, want(&f, "cls_logits"), ATOL);
    assert_close(
        "cls_pooler_output",
        &pooled.into_data().try_to_vec::<f32>().unwrap(),
        want(&f, "cls_pooler_output"),
        ATOL,
    );
    // Skipping the padded rows (packed on the CPU), and computing only the CLS row in the last
    // layer, change nothing the classifier reads.
    for rows in [OutputRows::Real, OutputRows::Cls] {
        let (logits, pooled) = c.forward_with_pooled(
            &input(&f, &f.ids, &f.values, false, true, &dev),
            ForwardOptions { rows, ..opts },
        );
        let lr = logits.into_data().try_to_vec::<f32>().unwrap();
        assert_close(
            &format!("cls_logits ({rows:?})"),
            &lr,
            want(&f, "cls_logits"),
            ATOL,
        );
        assert_close(
            &format!("cls_pooler_output ({rows:?})"),
            &pooled.into_data().try_to_vec::<f32>().unwrap(),
            want(&f, "cls_pooler_output"),
            ATOL,
        );
    }
    // Without a mask every position is real: only the CLS-only last layer differs.
    let logits = c.forward(
        &input(&f, &f.ids, &f.values, false, false, &dev),
        ForwardOptions {
            rows: OutputRows::Cls,
            ..opts
        },
    );
    assert_close(
        "cls_logits_nomask (Cls)",
        &logits.into_data().try_to_vec::<f32>().unwrap(),
        want(&f, "cls_logits_nomask"),
        ATOL,
    );
    let logits = c.forward(&input(&f, &f.ids, &f.values, false, false, &dev), opts);
    assert_close(
        "cls_logits_nomask",
        &logits.into_data().try_to_vec::<f32>().unwrap(),
        want(&f, "cls_logits_nomask"),
        ATOL,
    );
    let truncated: Vec<f32> = f.ints["cls_values_int64"]
        .iter()
        .map(|&v| v as f32)
        .collect();
    let via_trunc: Vec<f32> = f.values.iter().map(|v| v.trunc()).collect();
    assert_eq!(
        truncated, via_trunc,
        "truncation toward zero reproduces the official collator"
    );
    let logits = c.forward(&input(&f, &f.ids, &truncated, false, true, &dev), opts);
    assert_close(
        "cls_logits_official_collator",
        &logits.into_data().try_to_vec::<f32>().unwrap(),
        want(&f, "cls_logits_official_collator"),
        ATOL,
    );
    // Loss of the reference CE over these logits.
    let labels = &f.ints["cls_labels"];
    let mut ce = 0f32;
    for (row, &y) in labels.iter().enumerate() {
        let r = &l[row * 5..row * 5 + 5];
        let max = r.iter().cloned().fold(f32::MIN, f32::max);
        let lse = max + r.iter().map(|v| (v - max).exp()).sum::<f32>().ln();
        ce += lse - r[y as usize];
    }
    let ce = ce / labels.len() as f32;
    assert!((ce - want(&f, "cls_loss")[0]).abs() < 1e-4, "cls_loss {ce}");
}

#[test]
fn classifier_from_safetensors_matches_reference() {
    check_classifier(WeightsFormat::Safetensors);
}

#[test]
fn classifier_from_pytorch_bin_matches_reference() {
    check_classifier(WeightsFormat::Pytorch);
}

/// Inference that reads only real positions skips the padded rows: every layer's real positions
/// still match the official outputs, and the padded positions come out as zeros.
#[test]
fn skipping_padded_rows_keeps_every_real_position() {
    let dev = Device::flex();
    let f = fixture();
    let (_, m, _) = mlm(&tiny(), WeightsFormat::Safetensors, &dev);
    let full = input(&f, &f.ids, &f.values, true, true, &dev);
    let out = m.bert.forward(
        &full,
        ForwardOptions {
            output_hidden_states: true,
            rows: OutputRows::Real,
            ..ForwardOptions::default()
        },
    );
    // 6 cells of 16 genes, the species CLS first.
    let (cells, genes) = (6, 16);
    let seq = genes + 1;
    let real = |cell: usize, pos: usize| pos == 0 || f.mask[cell * genes + pos - 1] > 0.0;
    let padded = (0..cells)
        .flat_map(|c| (0..seq).map(move |p| (c, p)))
        .filter(|&(c, p)| !real(c, p))
        .count();
    assert_eq!(
        padded,
        4 + 7 + 2 + 11 + 5,
        "the fixture pads five of its cells"
    );
    // `layer` is one [cells, seq, H] block: real rows within ATOL, padded rows zero.
    let check = |name: &str, got: &[f32], want: &[f32]| {
        let h = got.len() / (cells * seq);
        assert_eq!(got.len(), want.len(), "{name}: shape");
        for cell in 0..cells {
            for pos in 0..seq {
                let at = (cell * seq + pos) * h;
                let (g, w) = (&got[at..at + h], &want[at..at + h]);
                if real(cell, pos) {
                    let worst = g
                        .iter()
                        .zip(w)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0f32, f32::max);
                    assert!(
                        worst < ATOL,
                        "{name}: cell {cell} position {pos}: max |Δ| {worst}"
                    );
                } else {
                    assert!(
                        g.iter().all(|&v| v == 0.0),
                        "{name}: padded {cell}/{pos} not zero"
                    );
                }
            }
        }
    };
    check(
        "bert_last_hidden_state_masked",
        &vec3(out.last_hidden_state),
        want(&f, "bert_last_hidden_state_masked"),
    );
    let per_layer = want(&f, "bert_hidden_states_masked");
    let block = per_layer.len() / out.hidden_states.len();
    for (i, hs) in out.hidden_states.into_iter().enumerate() {
        let w = &per_layer[i * block..(i + 1) * block];
        if i == 0 {
            // The encoder's input is computed before any row is skipped.
            assert_close("bert_hidden_states_masked[0]", &vec3(hs), w, ATOL);
        } else {
            check(&format!("bert_hidden_states_masked[{i}]"), &vec3(hs), w);
        }
    }
    // Only the CLS: its last-layer row matches, every other position is zero.
    let out = m.bert.forward(
        &full,
        ForwardOptions {
            rows: OutputRows::Cls,
            ..ForwardOptions::default()
        },
    );
    let got = vec3(out.last_hidden_state);
    let all = want(&f, "bert_last_hidden_state_masked");
    let h = got.len() / (cells * seq);
    for cell in 0..cells {
        for pos in 0..seq {
            let at = (cell * seq + pos) * h;
            let g = &got[at..at + h];
            if pos == 0 {
                assert_close(&format!("CLS of cell {cell}"), g, &all[at..at + h], ATOL);
            } else {
                assert!(
                    g.iter().all(|&v| v == 0.0),
                    "cell {cell} position {pos} not zero"
                );
            }
        }
    }
}
