//! In-silico perturbation against the official `InSilicoPerturber` run of `reference-tiny`
//! (fixture README §5 (g) and §6.5): TP53 (token 2) deleted at rank 3 of cell 0.

mod common;

use burn::prelude::*;
use common::{assert_close, read_f32, read_i64, tiny};
use genecompass_core::batch::{BatchOptions, Padding};
use genecompass_core::cells::{CellSet, Species, TokenizedCell};
use genecompass_core::checkpoint::{Checkpoint, WeightsFormat, load_checkpoint};
use genecompass_core::tasks::infer::InferOptions;
use genecompass_core::tasks::perturb::{
    Alignment, CellRecord, PerturbError, PerturbKind, PerturbOptions, PerturbReport, perturb_cells,
};

const ATOL: f32 = 1e-4;
const TP53: u32 = 2;

/// The fixture's six cells, unpadded, remembering the stored length 16.
fn fixture_cells() -> CellSet {
    let ints = read_i64(tiny().join("inputs.safetensors"));
    let values = &read_f32(tiny().join("inputs.safetensors"))["values"].1;
    let (ids, lengths, species) = (&ints["input_ids"], &ints["lengths"], &ints["species"]);
    let cells = (0..6)
        .map(|i| {
            let n = lengths[i] as usize;
            TokenizedCell {
                input_ids: ids[i * 16..i * 16 + n].iter().map(|&v| v as u32).collect(),
                values: values[i * 16..i * 16 + n].to_vec(),
                species: Species::from_code(species[i]).expect("0 or 1"),
                label: None,
            }
        })
        .collect();
    CellSet {
        cells,
        padded_len: Some(16),
    }
}

fn model(format: WeightsFormat, dev: &Device) -> Checkpoint {
    load_checkpoint(&tiny(), format, dev).expect("load MLM fixture")
}

fn run(
    ck: &Checkpoint,
    cells: &CellSet,
    genes: &[Vec<u32>],
    options: &PerturbOptions,
    dev: &Device,
) -> (PerturbReport, Vec<CellRecord>) {
    let mut records = Vec::new();
    let report = perturb_cells(
        ck.bert(),
        cells,
        genes,
        options,
        dev,
        |_| {},
        |r| records.push(r.clone()),
    )
    .expect("perturbation runs");
    (report, records)
}

fn fixture_cos() -> Vec<f32> {
    read_f32(tiny().join("outputs.safetensors"))["perturb_cos"]
        .1
        .clone()
}

fn ints(name: &str) -> Vec<u32> {
    read_i64(tiny().join("inputs.safetensors"))[name]
        .iter()
        .map(|&v| v as u32)
        .collect()
}

#[test]
fn official_alignment_reproduces_perturb_cos_and_labels() {
    let dev = Device::flex();
    let cells = fixture_cells();
    for format in [WeightsFormat::Pytorch, WeightsFormat::Safetensors] {
        let ck = model(format, &dev);
        for folded in [true, false] {
            let mut opts = PerturbOptions::official(PerturbKind::Delete);
            opts.infer.folded = folded;
            let (report, records) = run(&ck, &cells, &[vec![TP53]], &opts, &dev);
            // Only cell 0 holds TP53; the other five never reach the model.
            assert_eq!(records.len(), 1);
            assert_eq!((report.originals, report.variants), (1, 1));
            let r = &records[0];
            assert_eq!((r.cell, r.token, r.positions.clone()), (0, TP53, vec![3]));
            let labels: Vec<u32> = r.affected.iter().map(|a| a.0).collect();
            assert_eq!(labels, ints("perturb_official_affected_token_ids"));
            let cos: Vec<f32> = r.affected.iter().map(|a| a.1).collect();
            assert_close("perturb_cos", &cos, &fixture_cos(), ATOL);
            let cell_cos = read_f32(tiny().join("outputs.safetensors"))["perturb_cell_cos"].1[0];
            assert_close("perturb_cell_cos", &[r.gene_score], &[cell_cos], ATOL);
            assert_eq!(report.summaries[0].cells, 1);
        }
    }
}

#[test]
fn official_dict_equals_perturbation_official_json() {
    let dev = Device::flex();
    let ck = model(WeightsFormat::Auto, &dev);
    let opts = PerturbOptions::official(PerturbKind::Delete);
    let (report, _) = run(&ck, &fixture_cells(), &[vec![TP53]], &opts, &dev);
    let text = std::fs::read_to_string(tiny().join("perturbation_official.json")).unwrap();
    let want: serde_json::Value = serde_json::from_str(&text).unwrap();
    let want = want["entries"].as_array().unwrap();
    let got = report.official.to_json();
    let got = got.as_array().unwrap();
    assert_eq!(got.len(), want.len(), "number of dict keys");
    for (g, w) in got.iter().zip(want) {
        // Keys exactly (perturbed token, affected id or "cell_emb"), in insertion order.
        assert_eq!((&g[0], &g[1]), (&w[0], &w[1]));
        let f = |v: &serde_json::Value| -> Vec<f32> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        };
        assert_close(&format!("entry {}", w[1]), &f(&g[2]), &f(&w[2]), ATOL);
    }
}

#[test]
fn identity_alignment_compares_the_same_genes() {
    let dev = Device::flex();
    let ck = model(WeightsFormat::Auto, &dev);
    let mut opts = PerturbOptions::official(PerturbKind::Delete);
    opts.alignment = Alignment::Identity;
    let (_, records) = run(&ck, &fixture_cells(), &[vec![TP53]], &opts, &dev);
    let r = &records[0];
    // The 11 real genes left, labelled with themselves: the correct alignment of §6.5.
    let labels: Vec<u32> = r.affected.iter().map(|a| a.0).collect();
    assert_eq!(labels, ints("perturb_compared_token_ids")[..11]);
    let cos: Vec<f32> = r.affected.iter().map(|a| a.1).collect();
    assert_close("perturb_cos[..11]", &cos, &fixture_cos()[..11], ATOL);
    let mean = cos.iter().sum::<f32>() / 11.0;
    assert_close("gene_score", &[r.gene_score], &[mean], 1e-6);
    assert!(r.cls_cos.unwrap() > 0.0 && r.cls_cos.unwrap() <= 1.0 + 1e-6);
}

fn correct(batch_size: usize, padding: Padding, kind: PerturbKind) -> PerturbOptions {
    PerturbOptions {
        infer: InferOptions {
            batch: BatchOptions {
                batch_size,
                padding,
                ..BatchOptions::default()
            },
            ..InferOptions::default()
        },
        kind,
        alignment: Alignment::Identity,
    }
}

/// With the attention mask on, neither batching nor padding may change a single number.
#[test]
fn masked_results_do_not_depend_on_batching_or_padding() {
    let dev = Device::flex();
    let ck = model(WeightsFormat::Auto, &dev);
    let cells = fixture_cells();
    // 33 is in cells 1, 3, 4 (mouse); 20 in cells 0, 2, 5; 17 and 20 jointly; 38 only in cell 1.
    let genes = vec![vec![33], vec![20], vec![17, 20], vec![38]];
    for kind in [
        PerturbKind::Delete,
        PerturbKind::Overexpress {
            factor: PerturbKind::OFFICIAL_FACTOR,
        },
    ] {
        let (base_report, base) = run(
            &ck,
            &cells,
            &genes,
            &correct(16, Padding::Dynamic, kind),
            &dev,
        );
        let cells_per: Vec<usize> = base_report.summaries.iter().map(|s| s.cells).collect();
        assert_eq!(cells_per, vec![3, 3, 3, 1]);
        for opts in [
            correct(1, Padding::Dynamic, kind),
            correct(2, Padding::Stored, kind),
        ] {
            let (_, other) = run(&ck, &cells, &genes, &opts, &dev);
            let key = |r: &CellRecord| (r.cell, r.perturbation);
            let mut a = base.clone();
            let mut b = other;
            a.sort_by_key(key);
            b.sort_by_key(key);
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(key(x), key(y));
                assert_eq!(x.affected.len(), y.affected.len());
                let flat = |r: &CellRecord| -> Vec<f32> {
                    let mut v: Vec<f32> = r.affected.iter().map(|a| a.1).collect();
                    v.extend([r.cls_cos.unwrap(), r.mean_pool_cos, r.gene_score]);
                    v.extend(&r.self_cos);
                    v
                };
                assert_close("batched record", &flat(x), &flat(y), 1e-5);
            }
        }
    }
}

#[test]
fn overexpress_moves_the_gene_to_the_front_and_keeps_everyone_compared() {
    let dev = Device::flex();
    let ck = model(WeightsFormat::Auto, &dev);
    let over = PerturbKind::Overexpress {
        factor: PerturbKind::OFFICIAL_FACTOR,
    };
    let (_, records) = run(
        &ck,
        &fixture_cells(),
        &[vec![TP53]],
        &correct(4, Padding::Dynamic, over),
        &dev,
    );
    let r = &records[0];
    assert_eq!(
        (r.positions.clone(), r.new_positions.clone()),
        (vec![3], vec![0])
    );
    // All 11 other genes are compared with themselves; TP53's own cosine is reported apart.
    assert_eq!(r.affected.len(), 11);
    assert_eq!(r.self_cos.len(), 1);
    // Genes before TP53 moved down one rank, genes after it kept their rank: the latter move less.
    assert!(r.affected.iter().all(|(t, c)| *t != TP53 && *c > 0.0));
}

#[test]
fn official_overexpress_and_bad_requests_are_refused() {
    let dev = Device::flex();
    let ck = model(WeightsFormat::Auto, &dev);
    let cells = fixture_cells();
    let mut opts = PerturbOptions::official(PerturbKind::Overexpress { factor: 10.0 });
    let go = |genes: &[Vec<u32>], o: &PerturbOptions| {
        perturb_cells(ck.bert(), &cells, genes, o, &dev, |_| {}, |_| {}).map(|_| ())
    };
    assert_eq!(
        go(&[vec![2]], &opts),
        Err(PerturbError::OfficialOverexpress)
    );
    opts.alignment = Alignment::Identity;
    opts.kind = PerturbKind::Overexpress { factor: 0.0 };
    assert_eq!(
        go(&[vec![2]], &opts),
        Err(PerturbError::BadFactor { factor: 0.0 })
    );
    opts.kind = PerturbKind::Delete;
    assert_eq!(go(&[], &opts), Err(PerturbError::NoGenes));
    assert_eq!(
        go(&[vec![2], vec![]], &opts),
        Err(PerturbError::EmptyPerturbation { index: 1 })
    );
    assert_eq!(
        go(&[vec![40]], &opts),
        Err(PerturbError::TokenOutOfRange {
            token: 40,
            vocab: 40
        })
    );
}

/// Gene embeddings by identity against the fixture's hidden states: the mean of the rows that
/// hold the gene, with the official no-mask forward (`perturb_original_emb`) and the masked one.
#[test]
fn gene_embeddings_average_the_rows_of_each_gene() {
    use genecompass_core::tasks::gene_embed::embed_genes;
    let dev = Device::flex();
    let ck = model(WeightsFormat::Auto, &dev);
    let cells = fixture_cells();
    let out = read_f32(tiny().join("outputs.safetensors"));
    let row = |g: &genecompass_core::tasks::gene_embed::GeneEmbeddings, token: u32| {
        let i = g.tokens.iter().position(|&t| t == token).unwrap();
        g.mean[i * 32..(i + 1) * 32].to_vec()
    };

    let official = PerturbOptions::official(PerturbKind::Delete).infer;
    let (genes, _) = embed_genes(ck.bert(), &cells, &official, &dev, |_| {});
    let original = &out["perturb_original_emb"].1;
    assert_close(
        "TP53 (no mask)",
        &row(&genes, TP53),
        &original[3 * 32..4 * 32],
        ATOL,
    );

    let masked = InferOptions::default();
    let (genes, cell_emb) = embed_genes(ck.bert(), &cells, &masked, &dev, |_| {});
    assert_eq!(genes.tokens.len(), 37);
    let h = &out["bert_last_hidden_state_masked"].1;
    let at = |c: usize, j: usize| &h[(c * 17 + j) * 32..(c * 17 + j + 1) * 32];
    // NANOG (token 20): cell 0 rank 10, cells 2 and 5 rank 0 (CLS is row 0, so gene j is row j+1).
    let want: Vec<f32> = (0..32)
        .map(|k| (at(0, 11)[k] + at(2, 1)[k] + at(5, 1)[k]) / 3.0)
        .collect();
    assert_close("NANOG (masked)", &row(&genes, 20), &want, ATOL);
    assert_eq!(
        genes.counts[genes.tokens.iter().position(|&t| t == 20).unwrap()],
        3
    );
    let cls: Vec<f32> = (0..6).flat_map(|c| at(c, 0).to_vec()).collect();
    assert_close("cell CLS", &cell_emb.cls, &cls, ATOL);
}
