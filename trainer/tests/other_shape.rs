//! The CLI works unchanged on a checkpoint of another shape (hidden size, heads, layers,
//! knowledge width, vocabulary) whose human and mouse token ids are shuffled: nothing may
//! assume the official layout (human ids first, mouse after, 768-wide priors). Two exported
//! official directories hold the same model under two id orders; embedding the same cells
//! (ids translated) through `genecompass-train embed` must give the same numbers.

mod common_util;
use common_util::*;

use std::collections::HashMap;
use std::path::Path;

use burn::module::{Param, ParamId};
use burn::prelude::*;
use burn::tensor::Distribution;
use genecompass_core::checkpoint::{EmbWarmup, LoadedModel, export_official_safetensors};
use genecompass_core::model::{GeneCompassConfig, GeneCompassForMaskedLm, init_mlm};
use safetensors::{Dtype, tensor::TensorView};

const V: usize = 302; // pad, mask, 150 human genes, 150 mouse genes
const HUMAN: usize = 150;

fn shuffled_ids(seed: u64) -> Vec<usize> {
    // A fixed permutation of 2..V (pad and mask keep their ids, as in every official dictionary).
    let mut rest: Vec<usize> = (2..V).collect();
    let mut s = seed;
    for i in (1..rest.len()).rev() {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        rest.swap(i, (s >> 33) as usize % (i + 1));
    }
    [0, 1].into_iter().chain(rest).collect()
}

fn model(config: &GeneCompassConfig, device: &Device) -> GeneCompassForMaskedLm {
    let k = config.knowledge_width();
    let mut mlm = init_mlm(config, device);
    let emb = &mut mlm.bert.embeddings;
    for p in &mut emb.priors {
        p.knowledge = Param::from_tensor(Tensor::random(
            [V, k],
            Distribution::Normal(0.0, 1.0),
            device,
        ))
        .set_require_grad(false);
    }
    // Mouse token 2 + HUMAN + i is the homolog of human token 2 + i for even i.
    let hom: Vec<i64> = (0..V)
        .map(|t| match t.checked_sub(2 + HUMAN) {
            Some(i) if i % 2 == 0 => (2 + i) as i64,
            _ => t as i64,
        })
        .collect();
    emb.homologous_index = Param::initialized(
        ParamId::new(),
        Tensor::from_data(TensorData::new(hom, [V]), device),
    );
    mlm
}

/// The same model with token `t` renamed `perm[t]`: every vocabulary-indexed row moves.
fn renamed(
    mut mlm: GeneCompassForMaskedLm,
    perm: &[usize],
    device: &Device,
) -> GeneCompassForMaskedLm {
    let mut inv = vec![0i64; V];
    for (t, &p) in perm.iter().enumerate() {
        inv[p] = t as i64;
    }
    let inv_t = Tensor::<1, Int>::from_data(TensorData::new(inv.clone(), [V]), device);
    let rows = |t: Tensor<2>| t.select(0, inv_t.clone());
    let emb = &mut mlm.bert.embeddings;
    emb.word_embeddings.weight = Param::from_tensor(rows(emb.word_embeddings.weight.val()));
    for p in &mut emb.priors {
        p.knowledge = Param::from_tensor(rows(p.knowledge.val())).set_require_grad(false);
    }
    let hom: Vec<i64> = emb
        .homologous_index
        .val()
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .unwrap();
    let moved: Vec<i64> = inv
        .iter()
        .map(|&old| perm[hom[old as usize] as usize] as i64)
        .collect();
    emb.homologous_index = Param::initialized(
        ParamId::new(),
        Tensor::from_data(TensorData::new(moved, [V]), device),
    );
    mlm.cls.bias = Param::from_tensor(mlm.cls.bias.val().select(0, inv_t));
    mlm
}

fn export(mlm: GeneCompassForMaskedLm, config: &GeneCompassConfig, dir: &Path) {
    let model = LoadedModel::MaskedLm(
        mlm,
        EmbWarmup {
            alpha: 1.0,
            steps: 0,
        },
    );
    export_official_safetensors(&model, config, dir).unwrap();
}

/// Mouse and human cells of real-looking lengths, as token ids of the first id order.
fn cells() -> (Vec<Vec<usize>>, Vec<i64>) {
    let mut out = Vec::new();
    let mut species = Vec::new();
    for c in 0..6usize {
        let mouse = c % 2 == 1;
        let len = 20 + 7 * c;
        let base = if mouse { 2 + HUMAN } else { 2 };
        out.push((0..len).map(|g| base + (g * 13 + c * 5) % HUMAN).collect());
        species.push(mouse as i64);
    }
    (out, species)
}

fn write_cells(path: &Path, cells: &[Vec<usize>], species: &[i64], perm: &[usize]) {
    let l = cells.iter().map(Vec::len).max().unwrap();
    let (mut ids, mut vals) = (Vec::new(), Vec::new());
    for cell in cells {
        for g in 0..l {
            let (id, v) = match cell.get(g) {
                Some(&t) => (perm[t] as i64, 4.0 - g as f32 * 0.05),
                None => (0, 0.0),
            };
            ids.push(id);
            vals.push(v);
        }
    }
    let n = cells.len();
    let ids_b: Vec<u8> = ids.iter().flat_map(|v| v.to_le_bytes()).collect();
    let vals_b: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    let sp_b: Vec<u8> = species.iter().flat_map(|v| v.to_le_bytes()).collect();
    let views: HashMap<&str, TensorView> = HashMap::from([
        (
            "input_ids",
            TensorView::new(Dtype::I64, vec![n, l], &ids_b).unwrap(),
        ),
        (
            "values",
            TensorView::new(Dtype::F32, vec![n, l], &vals_b).unwrap(),
        ),
        (
            "species",
            TensorView::new(Dtype::I64, vec![n, 1], &sp_b).unwrap(),
        ),
    ]);
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// `genecompass-train embed` of `input` through `model` into `output`, with `flag`.
fn embed(model: &Path, input: &Path, output: &Path, flag: &str) {
    ok(train(&[
        "embed",
        "--checkpoint",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        flag,
    ]));
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max)
}

fn cell_embeddings(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("cell_embedding").unwrap();
    let v = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    (t.shape().to_vec(), v)
}

#[test]
fn shuffled_ids_in_another_shape_give_the_same_embeddings() {
    let dir = tmp("other_shape");
    let device = Device::flex();
    // Hidden 48 with 6 heads of 8, 3 layers, FFN 80, knowledge width 20, 302 tokens.
    let mut config = GeneCompassConfig::shaped(V, 48, 3, 6, 80);
    config.max_position_embeddings = 96;
    config.knowledge_size = Some(20);
    let mlm = model(&config, &device);
    let perm = shuffled_ids(11);
    let identity: Vec<usize> = (0..V).collect();
    let (a, b) = (dir.join("model_a"), dir.join("model_b"));
    export(mlm.clone(), &config, &a);
    export(renamed(mlm, &perm, &device), &config, &b);

    let inspect = ok(train(&["inspect", "--checkpoint", b.to_str().unwrap()]));
    for expected in ["48", "302", "20"] {
        assert!(
            inspect.contains(expected),
            "inspect misses {expected}:\n{inspect}"
        );
    }

    let (cells, species) = cells();
    let mut got = Vec::new();
    for (model_dir, ids, name) in [(&a, &identity, "a"), (&b, &perm, "b")] {
        let input = dir.join(format!("cells_{name}.safetensors"));
        let output = dir.join(format!("emb_{name}.safetensors"));
        write_cells(&input, &cells, &species, ids);
        embed(model_dir, &input, &output, "--cells-only");
        got.push(cell_embeddings(&output));
    }
    assert_eq!(got[0].0, vec![cells.len(), 48]);
    assert_eq!(got[0].0, got[1].0);
    let max_diff = max_abs_diff(&got[0].1, &got[1].1);
    assert!(
        max_diff < 1e-4,
        "embeddings differ by {max_diff} across id orders"
    );
    // Not a vacuous match: the embeddings carry signal.
    let spread = got[0].1.iter().map(|x| x.abs()).fold(0.0f32, f32::max);
    assert!(spread > 1e-3, "embeddings are all ~0");

    // `--cls-only` (the last layer for the CLS rows only) writes the same cell embeddings and
    // nothing per gene.
    let (input, output) = (
        dir.join("cells_b.safetensors"),
        dir.join("cls_b.safetensors"),
    );
    embed(&b, &input, &output, "--cls-only");
    let cls = cell_embeddings(&output);
    assert_eq!(cls.0, got[1].0);
    let diff = max_abs_diff(&cls.1, &got[1].1);
    assert!(
        diff < 1e-5,
        "--cls-only differs from --cells-only by {diff}"
    );
    let bytes = std::fs::read(&output).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert!(
        st.tensor("mean_embedding").is_err() && st.tensor("last_hidden_state").is_err(),
        "--cls-only wrote per-gene outputs: {:?}",
        st.names()
    );
}
