//! `extend-vocab --add-species`: a third species (rat) added to the reference-tiny model. It
//! gets a CLS row (the mean of the others) and its own genes, which look their priors up
//! through their human orthologs; old outputs are unchanged, its cells tokenize with
//! `--species 2` and run through the new model, and the old model refuses them by name.

mod common_util;

use std::collections::HashMap;

use common_util::{ok, s, tiny, tmp, train};
use genecompass_core::checkpoint::TensorMap;

fn tensor(dir: &std::path::Path, key: &str) -> (Vec<usize>, Vec<f32>) {
    let m = TensorMap::read_safetensors(&dir.join("model.safetensors")).unwrap();
    let t = &m.tensors[key];
    (t.shape.clone(), t.to_f32().unwrap())
}

fn ints(dir: &std::path::Path, key: &str) -> Vec<i64> {
    let m = TensorMap::read_safetensors(&dir.join("model.safetensors")).unwrap();
    m.tensors[key].to_i64().unwrap()
}

fn embed(model: &std::path::Path, cells: &std::path::Path, out: &std::path::Path) -> Vec<f32> {
    ok(train(&[
        "embed",
        "--checkpoint",
        s(model),
        "--input",
        s(cells),
        "--output",
        s(out),
    ]));
    TensorMap::read_safetensors(out).unwrap().tensors["cell_embedding"]
        .to_f32()
        .unwrap()
}

#[test]
fn a_rat_species_gets_a_cls_row_its_genes_and_runs() {
    let dir = tmp("add-species");
    let dict: HashMap<String, u32> =
        serde_json::from_str(&std::fs::read_to_string(tiny().join("token_dict.json")).unwrap())
            .unwrap();
    let mut human: Vec<(&String, &u32)> =
        dict.iter().filter(|(t, _)| t.starts_with("ENSG")).collect();
    human.sort_by_key(|(_, i)| **i);
    // Ten rat genes, the first nine with a human ortholog from the vocabulary.
    let rat: Vec<String> = (1..=10).map(|i| format!("ENSRNOG{i:011}")).collect();
    let mut genes_file = String::from("gene_id\thuman_ortholog\n");
    for (i, g) in rat.iter().enumerate() {
        let o = if i < 9 { human[i].0.as_str() } else { "" };
        // The last id carries a version suffix, which is dropped.
        let id = if i == 9 { format!("{g}.4") } else { g.clone() };
        genes_file.push_str(&format!("{id}\t{o}\n"));
    }
    let gf = dir.join("rat_genes.tsv");
    std::fs::write(&gf, genes_file).unwrap();
    let ext = dir.join("tiny+rat");
    let out = train(&[
        "extend-vocab",
        "--model",
        s(&tiny()),
        "--add-species",
        "rat",
        "--species-genes",
        s(&gf),
        "--output",
        s(&ext),
    ]);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    ok(out);
    assert!(log.contains("added species rat with code 2"), "{log}");

    // Config, CLS table, vocabulary and homolog index.
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ext.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["genecompass_species"],
        serde_json::json!(["human", "mouse", "rat"])
    );
    let (shape0, cls0) = tensor(&tiny(), "bert.cls_embedding.weight");
    let (shape1, cls1) = tensor(&ext, "bert.cls_embedding.weight");
    let h = shape0[1];
    assert_eq!((shape0[0], shape1), (2, vec![3, h]));
    assert_eq!(&cls1[..2 * h], &cls0[..], "existing species rows unchanged");
    for j in 0..h {
        let mean = (cls0[j] + cls0[h + j]) / 2.0;
        assert!((cls1[2 * h + j] - mean).abs() < 1e-6);
    }
    let v0 = dict.len();
    let new_dict: HashMap<String, u32> =
        serde_json::from_str(&std::fs::read_to_string(ext.join("token_dict.json")).unwrap())
            .unwrap();
    assert_eq!(new_dict.len(), v0 + 10);
    assert_eq!(new_dict[&rat[9]], (v0 + 9) as u32, "version suffix dropped");
    let homologs = ints(&ext, "bert.embeddings.homologous_index");
    for (i, g) in rat.iter().enumerate() {
        let id = new_dict[g] as usize;
        let expect = if i < 9 { *human[i].1 as i64 } else { id as i64 };
        assert_eq!(homologs[id], expect, "{g}");
    }

    // Old cells: identical embeddings through both models.
    let inputs = tiny().join("inputs.safetensors");
    assert_eq!(
        embed(&tiny(), &inputs, &dir.join("old.safetensors")),
        embed(&ext, &inputs, &dir.join("old_ext.safetensors"))
    );

    // Rat cells: a counts table of 20 cells x 10 rat genes, tokenized as species 2.
    let mut csv = format!("cell,{}\n", rat.join(","));
    for c in 0..20u64 {
        let row: Vec<String> = (0..10u64)
            .map(|g| (1 + (c * 7 + g * 13) % 29).to_string())
            .collect();
        csv.push_str(&format!("rat_cell_{c},{}\n", row.join(",")));
    }
    let table = dir.join("rat.csv");
    std::fs::write(&table, csv).unwrap();
    let cells = dir.join("rat.safetensors");
    ok(train(&[
        "tokenize",
        s(&table),
        "--species",
        "2",
        "--token-dict",
        s(&ext.join("token_dict.json")),
        "--output",
        s(&cells),
    ]));
    let m = TensorMap::read_safetensors(&cells).unwrap();
    let species = m.tensors["species"].to_i64().unwrap();
    assert!(
        !species.is_empty() && species.iter().all(|&c| c == 2),
        "{species:?}"
    );
    let ids = m.tensors["input_ids"].to_i64().unwrap();
    assert!(
        ids.iter().all(|&t| t == 0 || t >= v0 as i64),
        "only rat tokens"
    );
    let emb = embed(&ext, &cells, &dir.join("rat_emb.safetensors"));
    assert_eq!(emb.len(), species.len() * h);
    assert!(emb.iter().all(|x| x.is_finite()));

    // The old model does not know species 2 and says how to add it (cells of its own genes,
    // declared species 2: the genes are matched by their ids as for any added species).
    let own: Vec<&str> = human[..10].iter().map(|(t, _)| t.as_str()).collect();
    let mut csv = format!("cell,{}\n", own.join(","));
    for c in 0..20u64 {
        let row: Vec<String> = (0..10u64)
            .map(|g| (1 + (c * 5 + g * 11) % 23).to_string())
            .collect();
        csv.push_str(&format!("cell_{c},{}\n", row.join(",")));
    }
    std::fs::write(dir.join("own.csv"), csv).unwrap();
    let own_cells = dir.join("own.safetensors");
    ok(train(&[
        "tokenize",
        s(&dir.join("own.csv")),
        "--species",
        "species2",
        "--token-dict",
        s(&tiny().join("token_dict.json")),
        "--output",
        s(&own_cells),
    ]));
    let out = train(&[
        "embed",
        "--checkpoint",
        s(&tiny()),
        "--input",
        s(&own_cells),
        "--output",
        s(&dir.join("nope.safetensors")),
    ]);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("species code 2") && e.contains("--add-species"),
        "{e}"
    );
}

#[test]
fn bad_species_requests_are_refused_with_the_fix() {
    let dir = tmp("add-species-bad");
    let run = |name: &str, out: &str| {
        train(&[
            "extend-vocab",
            "--model",
            s(&tiny()),
            "--add-species",
            name,
            "--output",
            s(&dir.join(out)),
        ])
    };
    let e = |o: std::process::Output| {
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    assert!(e(run("mouse", "a")).contains("already has a species named"));
    assert!(e(run("Rat!", "b")).contains("lower-case letters"));
    assert!(e(run("species4", "c")).contains("lower-case letters"));
    let o = train(&[
        "extend-vocab",
        "--model",
        s(&tiny()),
        "--species-genes",
        "x.tsv",
        "--output",
        s(&dir.join("d")),
    ]);
    assert!(e(o).contains("--add-species"));
    assert!(!dir.join("a").exists() && !dir.join("b").exists());
}
