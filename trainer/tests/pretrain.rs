//! Pretraining: the loss falls on real cells, and one step on the reference fixture's corrupted
//! batch reproduces the official loss with gradients confirmed by finite differences.

mod common_util;
use common_util::*;

use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use genecompass_core::checkpoint::{LoadedModel, TensorMap, WeightsFormat, load_checkpoint};
use genecompass_core::model::{ForwardOptions, GeneCompassForMaskedLm};
use genecompass_trainer::train::masking::MaskedBatch;
use genecompass_trainer::train::optim::{OptimOptions, build_optimizer};
use genecompass_trainer::train::pretrain::mlm_micro_step;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/reference-tiny"
);

#[test]
fn pretraining_loss_falls_on_real_cells() {
    let dir = tmp("pt_real");
    let out = dir.join("run");
    ok(train(&[
        "pretrain",
        "--data",
        BARON,
        "--output",
        out.to_str().unwrap(),
        "--config",
        "tiny",
        "--max-cells",
        "160",
        "--max-genes",
        "64",
        "--batch-size",
        "8",
        "--epochs",
        "3",
        "--lr",
        "2e-3",
        "--warmup-steps",
        "5",
        "--seed",
        "3",
    ]));
    let l: Vec<f64> = step_losses(&out).into_iter().map(|(_, l)| l).collect();
    assert_eq!(l.len(), 60);
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    let (first, last) = (mean(&l[..10]), mean(&l[50..]));
    assert!(
        last < 0.8 * first,
        "loss did not fall: first 10 steps {first:.3}, last 10 {last:.3}"
    );
    assert!(out.join("model/model.bpk").is_file() && out.join("model/token_dict.json").is_file());
}

/// The fixture's corrupted batch (spec §7.1, outputs from the official code).
fn fixture_batch() -> MaskedBatch {
    let inputs =
        TensorMap::read_safetensors(&std::path::Path::new(FIXTURE).join("inputs.safetensors"))
            .unwrap();
    let g = |k: &str| inputs.tensors.get(k).unwrap_or_else(|| panic!("{k}"));
    let ids = g("mlm_input_ids").to_i64().unwrap();
    let labels = g("mlm_labels").to_i64().unwrap();
    let label_values = g("mlm_labels_values").to_f32().unwrap();
    let positions: Vec<i64> = (0..labels.len() as i64)
        .filter(|&i| labels[i as usize] != -100)
        .collect();
    MaskedBatch {
        input_ids: ids,
        values: g("mlm_values").to_f32().unwrap(),
        attention_mask: g("mlm_attention_mask")
            .to_i64()
            .unwrap()
            .iter()
            .map(|&v| v as f32)
            .collect(),
        species: g("species").to_i64().unwrap(),
        label_ids: positions.iter().map(|&p| labels[p as usize]).collect(),
        label_values: positions
            .iter()
            .map(|&p| label_values[p as usize])
            .collect(),
        positions,
        dims: [6, 16],
    }
}

/// The fixture checkpoint with dropout off (the fixture ran in eval mode).
fn fixture_model(device: &Device) -> GeneCompassForMaskedLm {
    let dir = tmp("pt_fixture_ckpt");
    for f in ["model.safetensors", "token_dict.json"] {
        std::fs::copy(std::path::Path::new(FIXTURE).join(f), dir.join(f)).unwrap();
    }
    let mut cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(std::path::Path::new(FIXTURE).join("config.json")).unwrap(),
    )
    .unwrap();
    cfg["hidden_dropout_prob"] = 0.0.into();
    cfg["attention_probs_dropout_prob"] = 0.0.into();
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    match load_checkpoint(&dir, WeightsFormat::Auto, device)
        .unwrap()
        .model
    {
        LoadedModel::MaskedLm(m, _) => m,
        _ => panic!("fixture is an MLM"),
    }
}

/// Layer 1's query, key or value weight.
fn attention_weight<'a>(m: &'a mut GeneCompassForMaskedLm, name: &str) -> &'a mut Param<Tensor<2>> {
    let attn = &mut m.bert.encoder.layer[1].attention.attn;
    match name {
        "query" => &mut attn.query.weight,
        "key" => &mut attn.key.weight,
        _ => &mut attn.value.weight,
    }
}

fn loss_of(model: &GeneCompassForMaskedLm, batch: &MaskedBatch) -> f64 {
    let dev = Device::flex();
    let m = model.valid();
    let (input, targets) = batch.to_device(true, &dev);
    m.loss(&input, &targets, ForwardOptions::default())
        .loss
        .into_scalar::<f32>() as f64
}

fn perturb<const D: usize>(p: &Param<Tensor<D>>, at: usize, delta: f32) -> Param<Tensor<D>> {
    let t = p.val();
    let (shape, device) = (t.shape(), t.device());
    let mut v = t.into_data().try_to_vec::<f32>().unwrap();
    v[at] += delta;
    Param::initialized(
        p.id,
        Tensor::from_data(TensorData::new(v, shape), &device).require_grad(),
    )
}

#[test]
fn one_step_on_the_fixture_matches_the_official_loss_and_finite_differences() {
    let dev = Device::flex().autodiff();
    let model = fixture_model(&dev);
    let batch = fixture_batch();
    let (vals, grads) = mlm_micro_step(&model, &batch, true, &dev);
    let expect = [23.442535400390625, 3.599429130554199, 28.40331268310547];
    for (got, want) in vals.iter().zip(expect) {
        assert!(
            (got - want).abs() < 1e-4 * want,
            "loss {got} vs official {want}"
        );
    }
    // Finite differences on a few parameters (central, f32).
    let eps = 1e-2f32;
    let check =
        |name: &str, grad: f64, plus: GeneCompassForMaskedLm, minus: GeneCompassForMaskedLm| {
            let fd = (loss_of(&plus, &batch) - loss_of(&minus, &batch)) / (2.0 * eps as f64);
            assert!(
                (fd - grad).abs() <= 2e-3 + 0.03 * grad.abs(),
                "{name}: autodiff {grad} vs finite difference {fd}"
            );
            assert!(grad.abs() > 1e-4, "{name}: gradient should not vanish");
        };
    let g1 = |p: &Param<Tensor<1>>, g: &GradientsParams, at: usize| -> f64 {
        g.get::<1>(p.id)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()[at] as f64
    };
    let g2 = |p: &Param<Tensor<2>>, g: &GradientsParams, at: usize| -> f64 {
        g.get::<2>(p.id)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()[at] as f64
    };
    // cls.bias at a masked label id (21).
    let (mut a, mut b) = (model.clone(), model.clone());
    a.cls.bias = perturb(&model.cls.bias, 21, eps);
    b.cls.bias = perturb(&model.cls.bias, 21, -eps);
    check("cls.bias[21]", g1(&model.cls.bias, &grads, 21), a, b);
    // The value decoder weight (H x 1), element 3.
    let (mut a, mut b) = (model.clone(), model.clone());
    a.cls4value.decoder.weight = perturb(&model.cls4value.decoder.weight, 3, eps);
    b.cls4value.decoder.weight = perturb(&model.cls4value.decoder.weight, 3, -eps);
    check(
        "cls4value.decoder.weight[3]",
        g2(&model.cls4value.decoder.weight, &grads, 3),
        a,
        b,
    );
    // A word embedding entry of a masked gene (row 38, tied to the decoder), column 5.
    let w = &model.bert.embeddings.word_embeddings.weight;
    let at = 38 * 32 + 5;
    let (mut a, mut b) = (model.clone(), model.clone());
    a.bert.embeddings.word_embeddings.weight = perturb(w, at, eps);
    b.bert.embeddings.word_embeddings.weight = perturb(w, at, -eps);
    check("word_embeddings[38, 5]", g2(w, &grads, at), a, b);
    // An encoder weight: layer 0 FFN input, element 7.
    let w = &model.bert.encoder.layer[0].intermediate.weight;
    let (mut a, mut b) = (model.clone(), model.clone());
    a.bert.encoder.layer[0].intermediate.weight = perturb(w, 7, eps);
    b.bert.encoder.layer[0].intermediate.weight = perturb(w, 7, -eps);
    check(
        "encoder.layer.0.intermediate.weight[7]",
        g2(w, &grads, 7),
        a,
        b,
    );
    // Attention weights, whose gradients come back through the host attention's backward
    // pass on flex: layer 1's query and key (through the scores) and value.
    for name in ["query", "key", "value"] {
        let (mut a, mut b) = (model.clone(), model.clone());
        let p = attention_weight(&mut model.clone(), name).clone();
        *attention_weight(&mut a, name) = perturb(&p, 11, eps);
        *attention_weight(&mut b, name) = perturb(&p, 11, -eps);
        check(
            &format!("encoder.layer.1.attention.self.{name}.weight[11]"),
            g2(&p, &grads, 11),
            a,
            b,
        );
    }
    // And the optimiser step moves parameters (AdamW's first step is ~lr per entry).
    let o = OptimOptions {
        lr: 1e-3,
        weight_decay: 0.01,
        warmup_steps: 0,
        total_steps: 10,
        max_grad_norm: None,
    };
    let mut optim = build_optimizer(&model, &o);
    let before = model
        .cls
        .bias
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let stepped = optim.step(1e-3, model, grads);
    let after = stepped
        .cls
        .bias
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert!(
        (before[21] - after[21]).abs() > 5e-4,
        "{} -> {}",
        before[21],
        after[21]
    );
}
