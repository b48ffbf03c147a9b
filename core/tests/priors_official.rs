//! The official prior-knowledge files: loading them must give exactly the knowledge buffers and
//! homolog index of the fixture checkpoint (built by the official `load_prior_embedding`), and
//! every kind of bad input must fail with a message naming the file and the problem.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use common::tiny;
use genecompass_core::checkpoint::{WeightsFormat, load_checkpoint};
use genecompass_core::pickle::{self, Value};
use genecompass_core::priors::official::{
    MemoryFiles, OfficialLayout, load_official, load_official_dir,
};
use genecompass_core::priors::{PriorError, PriorKind, PriorTables, pickle_write, store};

fn prior_dir() -> PathBuf {
    let d = tiny().join("prior_knowledge");
    assert!(
        d.is_dir(),
        "fixture folder {} is missing: lay the shared data beside the checkout",
        d.display()
    );
    d
}

fn load(dir: &Path) -> Result<PriorTables, PriorError> {
    load_official_dir(dir, None, &mut |_, _, _| {})
}

/// All fixture files in memory, keyed by their path under `prior_knowledge/`.
fn memory_files() -> MemoryFiles {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut m = BTreeMap::new();
    walk(&prior_dir(), &prior_dir(), &mut m);
    MemoryFiles(m)
}

fn load_mem(files: &MemoryFiles) -> Result<PriorTables, PriorError> {
    let layout = OfficialLayout::default().resolve(files);
    load_official(files, &layout, &mut |_, _, _| {})
}

fn host_f32(t: Tensor<2>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

#[test]
fn official_files_give_exactly_the_checkpoint_buffers() {
    let mut steps = Vec::new();
    let tables = load_official_dir(&prior_dir(), None, &mut |i, n, what| {
        steps.push((i, n, what.to_string()))
    })
    .unwrap();
    assert_eq!((tables.vocab_size, tables.width), (40, 768));
    assert_eq!(steps.last().map(|s| (s.0, s.1)), Some((10, 10)));

    let ckpt = load_checkpoint(&tiny(), WeightsFormat::Safetensors, &Device::flex()).unwrap();
    let emb = &ckpt.bert().embeddings;
    assert_eq!(emb.priors.len(), 4);
    for (i, kind) in PriorKind::ALL.iter().enumerate() {
        let ours = tables.table(*kind).unwrap();
        let theirs = host_f32(emb.priors[i].knowledge.val());
        assert_eq!(ours.len(), theirs.len(), "{kind:?}");
        let diff = ours
            .iter()
            .zip(&theirs)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(
            diff, 0,
            "{kind:?}: {diff} values differ from the checkpoint buffer"
        );
        // Pad and mask rows are zero; gene rows are not.
        assert!(ours[..2 * 768].iter().all(|&x| x == 0.0), "{kind:?}");
        assert!(ours[2 * 768..3 * 768].iter().any(|&x| x != 0.0), "{kind:?}");
    }
    let idx: Vec<i64> = emb
        .homologous_index
        .val()
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .unwrap();
    assert_eq!(tables.homologous_index, idx);
    // Mouse 22..33 map to human ids, 34..39 to themselves.
    assert_eq!(tables.homologous_index[22], 2);
    assert_eq!(tables.homologous_index[39], 39);

    // The same from bytes (the browser path).
    assert_eq!(load_mem(&memory_files()).unwrap(), tables);
}

#[test]
fn peca_float64_is_cast_like_the_official_loader() {
    let bytes = std::fs::read(prior_dir().join("PECA2vec/human_PECA_vec.pickle")).unwrap();
    let v = pickle::unpickle(&bytes, "peca").unwrap();
    let Value::Dict(items) = &v else { panic!() };
    let Value::Array(a) = &items[0].1 else {
        panic!()
    };
    assert_eq!(a.dtype, pickle::DType::F64);
    let tables = load(&prior_dir()).unwrap();
    let row2 = &tables.table(PriorKind::PecaGrn).unwrap()[2 * 768..3 * 768];
    // Token 2 is TP53, the first key of the human file.
    assert_eq!(row2, a.to_f32().as_slice());
}

fn edit(
    files: &mut MemoryFiles,
    rel: &str,
    f: impl FnOnce(Vec<(String, Vec<f32>)>) -> Vec<(String, Vec<f32>)>,
) {
    let v = pickle::unpickle(&files.0[rel], rel).unwrap();
    let entries: Vec<(String, Vec<f32>)> = pickle::str_array_dict(&v, rel)
        .unwrap()
        .into_iter()
        .map(|(k, a)| (k, a.to_f32()))
        .collect();
    let entries = f(entries);
    let keys: Vec<String> = entries.iter().map(|e| e.0.clone()).collect();
    let width = entries[0].1.len();
    let data: Vec<f32> = entries.iter().flat_map(|e| e.1.clone()).collect();
    assert!(
        entries.iter().all(|e| e.1.len() == width),
        "edit helper writes equal widths"
    );
    files.0.insert(
        rel.to_string(),
        pickle_write::str_f32_array_dict(&keys, width, &data),
    );
}

#[test]
fn rewritten_pickles_load_identically() {
    // Our writer's output for the float32 files is read back to the same tables.
    let mut files = memory_files();
    for rel in [
        "promoter_emb/human_emb_768.pickle",
        "gene_family/Mouse_dim_768_gene_27934_random.pickle",
    ] {
        edit(&mut files, rel, |e| e);
    }
    assert_eq!(load_mem(&files).unwrap(), load(&prior_dir()).unwrap());
}

#[test]
fn missing_gene_is_reported_with_count_and_names() {
    let mut files = memory_files();
    let rel = "gene_co_express_emb/Human_dim_768_gene_28291_random.pickle";
    edit(&mut files, rel, |e| {
        e.into_iter()
            .filter(|(k, _)| k != "GAPDH" && k != "EGFR")
            .collect()
    });
    let err = load_mem(&files).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            PriorError::MissingGenes {
                count: 2,
                total: 20,
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.contains(rel), "{msg}");
    assert!(msg.contains("ENSG00000111640 (GAPDH)"), "{msg}");
    assert!(msg.contains("EGFR"), "{msg}");
    assert!(msg.contains("co_exp"), "{msg}");
}

#[test]
fn wrong_vector_length_is_reported() {
    let mut files = memory_files();
    let rel = "gene_family/Human_dim_768_gene_28291_random.pickle";
    // Every vector of this file is 767 long: it disagrees with the promoter files read before it.
    edit(&mut files, rel, |e| {
        e.into_iter().map(|(k, v)| (k, v[..767].to_vec())).collect()
    });
    let msg = load_mem(&files).unwrap_err().to_string();
    assert!(
        msg.contains(rel) && msg.contains("767") && msg.contains("768"),
        "{msg}"
    );
    assert!(msg.contains("TP53"), "{msg}");

    // One short vector inside an otherwise fine file.
    let mut files = memory_files();
    let rel = "promoter_emb/mouse_emb_768.pickle";
    let v = pickle::unpickle(&files.0[rel], rel).unwrap();
    let mut entries: Vec<(String, Vec<f32>)> = pickle::str_array_dict(&v, rel)
        .unwrap()
        .into_iter()
        .map(|(k, a)| (k, a.to_f32()))
        .collect();
    entries[3].1.truncate(700);
    let victim = entries[3].0.clone();
    files.0.insert(rel.into(), write_ragged(&entries));
    let msg = load_mem(&files).unwrap_err().to_string();
    assert!(
        msg.contains(&format!("{victim:?}")) && msg.contains("700"),
        "{msg}"
    );
}

/// A dict pickle whose vectors may differ in length (one `str_f32_array_dict` per entry, spliced).
fn write_ragged(entries: &[(String, Vec<f32>)]) -> Vec<u8> {
    // Each single-entry pickle is `PROTO 3 } ( <key> <array> u .`; keep the middle parts.
    let mut out = vec![0x80, 3, b'}'];
    for (k, v) in entries {
        let one = pickle_write::str_f32_array_dict(std::slice::from_ref(k), v.len(), v);
        out.extend(&one[3..one.len() - 1]);
    }
    out.push(b'.');
    out
}

#[test]
fn corrupt_and_truncated_pickles_are_reported() {
    let rel = "promoter_emb/human_emb_768.pickle";
    // Truncated.
    let mut files = memory_files();
    let n = files.0[rel].len();
    files.0.get_mut(rel).unwrap().truncate(n / 2);
    let msg = load_mem(&files).unwrap_err().to_string();
    assert!(msg.contains(rel) && msg.contains("truncated"), "{msg}");
    // Garbage in the middle.
    let mut files = memory_files();
    for b in &mut files.0.get_mut(rel).unwrap()[11..40] {
        *b = 0xEE;
    }
    let msg = load_mem(&files).unwrap_err().to_string();
    assert!(
        msg.contains(rel) && msg.contains("not a valid pickle"),
        "{msg}"
    );
    // A Git LFS pointer, the usual failure with the official repository.
    let mut files = memory_files();
    files.0.insert(
        rel.into(),
        b"version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 88151111\n".to_vec(),
    );
    let msg = load_mem(&files).unwrap_err().to_string();
    assert!(msg.contains("git lfs pull"), "{msg}");
    // Not a dict of arrays.
    let mut files = memory_files();
    files
        .0
        .insert(rel.into(), pickle_write::str_int_dict([("TP53", 1)]));
    let msg = load_mem(&files).unwrap_err().to_string();
    assert!(
        msg.contains(rel) && msg.contains("1-D numpy array"),
        "{msg}"
    );
}

#[test]
fn token_and_homolog_problems_are_reported() {
    // A token without a symbol.
    let mut files = memory_files();
    let rel = "gene_list/Gene_id_name_dict_human_mouse.pickle";
    let v = pickle::unpickle(&files.0[rel], rel).unwrap();
    let map = pickle::str_str_dict(&v, rel).unwrap();
    let mut items: Vec<(&str, &str)> = map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    items.retain(|(k, _)| *k != "ENSG00000141510");
    files
        .0
        .insert(rel.into(), pickle_write::str_str_dict(items));
    let msg = load_mem(&files).unwrap_err().to_string();
    assert!(
        msg.contains(rel) && msg.contains("ENSG00000141510") && msg.contains("1 vocabulary tokens"),
        "{msg}"
    );

    // A homolog pair outside the vocabulary.
    let mut files = memory_files();
    files.0.insert(
        "homologous_hm_token.pickle".into(),
        pickle_write::int_int_dict([(2, 22), (5, 400)]),
    );
    let msg = load_mem(&files).unwrap_err().to_string();
    assert!(
        msg.contains("homologous_hm_token.pickle") && msg.contains("400"),
        "{msg}"
    );

    // A token that is neither special, human nor mouse.
    let mut files = memory_files();
    let tokens: Vec<(&str, i64)> = vec![
        ("<pad>", 0),
        ("<mask>", 1),
        ("ENSG00000141510", 2),
        ("FOO1", 3),
    ];
    files.0.insert(
        "human_mouse_tokens.pickle".into(),
        pickle_write::str_int_dict(tokens),
    );
    let msg = load_mem(&files).unwrap_err().to_string();
    assert!(
        msg.contains("\"FOO1\"") && msg.contains("human_mouse_tokens.pickle"),
        "{msg}"
    );
}

#[test]
fn compact_store_round_trips_and_refuses_other_gene_lists() {
    let tables = load(&prior_dir()).unwrap();
    let dir = std::env::temp_dir().join(format!("gc-priors-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let genes: Vec<String> = (0..tables.vocab_size).map(|i| format!("g{i}")).collect();
    for (kind, data) in &tables.tables {
        let entry = store::PriorEntry {
            kind: *kind,
            file: String::new(),
            sha256: String::new(),
            rows: 0,
            width: 0,
            builder: "test".into(),
            seed: None,
            parameters: serde_json::json!({}),
            inputs: vec![],
            stats: serde_json::json!({}),
        };
        store::write_prior(&dir, &genes, tables.width, data, entry).unwrap();
    }
    store::write_homologous_index(&dir, &genes, &tables.homologous_index).unwrap();
    let m = store::read_manifest(&dir).unwrap().unwrap();
    assert_eq!(m.priors.len(), 4);
    assert!(m.homologous_index);
    for (kind, data) in &tables.tables {
        let (w, back) = store::read_prior(&dir, *kind).unwrap();
        assert_eq!((w, &back), (768, data));
    }
    let other: Vec<String> = genes.iter().rev().cloned().collect();
    let err = store::write_homologous_index(&dir, &other, &tables.homologous_index).unwrap_err();
    assert!(err.to_string().contains("another gene list"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
