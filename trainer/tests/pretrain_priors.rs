//! `pretrain --priors STORE` from scratch: the store's kinds are switched on, its tables become
//! the model's frozen knowledge tables (saved with the model), and a store whose rows are not
//! the vocabulary's is refused with a message saying how to build it.

mod common_util;

use std::path::Path;

use burn::prelude::*;
use common_util::{ok, s, tiny, tmp, train};
use genecompass_core::checkpoint::{WeightsFormat, load_checkpoint};
use genecompass_core::model::PriorKind;
use genecompass_core::priors::store::{PriorEntry, write_prior};

fn entry(kind: PriorKind) -> PriorEntry {
    PriorEntry {
        kind,
        file: String::new(),
        sha256: String::new(),
        rows: 0,
        width: 0,
        builder: "test".into(),
        seed: None,
        parameters: serde_json::json!({}),
        inputs: Vec::new(),
        stats: serde_json::json!({}),
    }
}

#[test]
fn pretraining_from_scratch_takes_the_store_tables() {
    let dir = tmp("pretrain-priors");
    let dict: std::collections::HashMap<String, u32> =
        serde_json::from_str(&std::fs::read_to_string(tiny().join("token_dict.json")).unwrap())
            .unwrap();
    let mut genes = vec![String::new(); dict.len()];
    for (t, &i) in &dict {
        genes[i as usize] = t.clone();
    }
    let k = 6;
    let fam: Vec<f32> = (0..genes.len() * k)
        .map(|i| (i % 17) as f32 * 0.1 - 0.5)
        .collect();
    let grn: Vec<f32> = (0..genes.len() * k).map(|i| (i % 5) as f32).collect();
    let store = dir.join("store");
    write_prior(&store, &genes, k, &fam, entry(PriorKind::GeneFamily)).unwrap();
    write_prior(&store, &genes, k, &grn, entry(PriorKind::PecaGrn)).unwrap();
    let run = dir.join("run");
    let inputs = tiny().join("inputs.safetensors");
    let args = |store: &Path, out: &Path| {
        vec![
            "pretrain".to_string(),
            "--data".into(),
            s(&inputs).into(),
            "--token-dict".into(),
            s(&tiny().join("token_dict.json")).into(),
            "--config".into(),
            "tiny".into(),
            "--epochs".into(),
            "1".into(),
            "--batch-size".into(),
            "4".into(),
            "--priors".into(),
            s(store).into(),
            "--output".into(),
            s(out).into(),
        ]
    };
    let a = args(&store, &run);
    ok(train(&a.iter().map(String::as_str).collect::<Vec<_>>()));
    let ck = load_checkpoint(&run.join("model"), WeightsFormat::Auto, &Device::flex()).unwrap();
    assert!(ck.config.use_gene_family && ck.config.use_peca_grn);
    assert!(!ck.config.use_promoter && !ck.config.use_co_exp);
    let priors = &ck.bert().embeddings.priors;
    assert_eq!(priors.len(), 2);
    let got = |i: usize| -> Vec<f32> {
        priors[i]
            .knowledge
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    };
    assert_eq!(got(0), fam, "gene family table saved unchanged (frozen)");
    assert_eq!(got(1), grn, "GRN table saved unchanged (frozen)");
    // The model names the store it was built with (the registry links the two by this hash).
    let src: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("model/priors_source.json")).unwrap(),
    )
    .unwrap();
    let manifest = std::fs::read(store.join("priors.json")).unwrap();
    assert_eq!(
        src["manifest_sha256"],
        genecompass_core::priors::sha256_hex(&manifest).as_str()
    );
    assert_eq!(src["kinds"], serde_json::json!(["gene_family", "peca_grn"]));
    assert_eq!(src["rows"], genes.len());

    // Rows in another order: refused, naming the fix.
    let mut shuffled = genes.clone();
    shuffled.swap(2, 3);
    let bad = dir.join("bad");
    write_prior(&bad, &shuffled, k, &fam, entry(PriorKind::GeneFamily)).unwrap();
    let a = args(&bad, &dir.join("run2"));
    let o = train(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("first difference at row 2") && e.contains("--vocab"),
        "{e}"
    );
}
