//! The safe unpickler against the real GeneCompass-format pickles of the reference fixture and
//! against pickles generated with Python (see tests/data/README.md).

use genecompass_core::pickle::{self, DType, PickleError, Value};
use genecompass_core::tokenize::{GeneMedians, HomologMap, TokenDictionary, TokenizeError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/reference-tiny"
);

fn fixture(rel: &str) -> Option<PathBuf> {
    let p = Path::new(FIXTURE).join(rel);
    if p.exists() {
        Some(p)
    } else {
        panic!(
            "{} not found: the tests need ../shared beside the checkout",
            p.display()
        )
    }
}

fn data(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
    .unwrap()
}

#[test]
fn token_dict_pickle_matches_json() {
    let (Some(pk), Some(js)) = (
        fixture("prior_knowledge/human_mouse_tokens.pickle"),
        fixture("token_dict.json"),
    ) else {
        return;
    };
    let a = TokenDictionary::load(&pk).unwrap();
    let b = TokenDictionary::load(&js).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.len(), 40);
    assert_eq!(a.get("<pad>"), Some(0));
    assert_eq!(a.mask_id(), Some(1));
    assert_eq!(a.get("ENSG00000141510"), Some(2));
    assert_eq!(a.get("ENSMUSG00000031004"), Some(39));
    assert_eq!(a.sha256(), b.sha256());
    // JSON export reloads to the same dictionary and hash.
    let again = TokenDictionary::from_json(a.to_json().as_bytes(), "export").unwrap();
    assert_eq!(again, a);
}

#[test]
fn homolog_pickle_matches_json() {
    let (Some(pk), Some(js)) = (
        fixture("prior_knowledge/homologous_hm_token.pickle"),
        fixture("homologs.json"),
    ) else {
        return;
    };
    let a = HomologMap::from_pickle(&std::fs::read(pk).unwrap(), "pk").unwrap();
    let b = HomologMap::from_json(&std::fs::read(js).unwrap(), "json").unwrap();
    assert_eq!(a, b);
    assert_eq!(a.pairs.len(), 12);
    assert_eq!(a.pairs[0], (2, 22));
    let idx = a.homologous_index(40);
    assert_eq!(idx[22], 2);
    assert_eq!(idx[33], 21);
    assert_eq!(idx[34], 34);
    assert_eq!(a.human_of(25), Some(7));
}

#[test]
fn id_name_dict() {
    let Some(p) = fixture("prior_knowledge/gene_list/Gene_id_name_dict_human_mouse.pickle") else {
        return;
    };
    let v = pickle::read_file(&p).unwrap();
    let d = pickle::str_str_dict(&v, "x").unwrap();
    assert_eq!(d.len(), 38);
    assert_eq!(d["ENSG00000141510"], "TP53");
    assert_eq!(d["ENSMUSG00000052305"], "Hbb-bs");
}

/// Reads an F32 tensor `[rows, cols]` from the fixture's safetensors checkpoint.
fn knowledge(name: &str) -> Option<Vec<Vec<f32>>> {
    let p = fixture("model.safetensors")?;
    let bytes = std::fs::read(p).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    let cols = t.shape()[1];
    let vals: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    Some(vals.chunks(cols).map(|r| r.to_vec()).collect())
}

/// The knowledge buffers of the checkpoint were built by the official loader from these pickles:
/// row `id` = vector of the token's symbol in the species file (float64 PECA cast to float32).
#[test]
fn prior_knowledge_arrays_rebuild_checkpoint_buffers() {
    let (Some(tok), Some(names)) = (
        fixture("token_dict.json"),
        fixture("prior_knowledge/gene_list/Gene_id_name_dict_human_mouse.pickle"),
    ) else {
        return;
    };
    let vocab = TokenDictionary::load(&tok).unwrap();
    let id2name = pickle::str_str_dict(&pickle::read_file(&names).unwrap(), "names").unwrap();
    for (buffer, human, mouse, dtype) in [
        (
            "bert.embeddings.promoter_knowledge",
            "promoter_emb/human_emb_768.pickle",
            "promoter_emb/mouse_emb_768.pickle",
            DType::F32,
        ),
        (
            "bert.embeddings.peca_grn_knowledge",
            "PECA2vec/human_PECA_vec.pickle",
            "PECA2vec/mouse_PECA_vec.pickle",
            DType::F64,
        ),
    ] {
        let rows = knowledge(buffer).unwrap();
        let load = |f: &str| -> HashMap<String, pickle::NdArray> {
            let p = fixture(&format!("prior_knowledge/{f}")).unwrap();
            pickle::str_array_dict(&pickle::read_file(&p).unwrap(), f)
                .unwrap()
                .into_iter()
                .collect()
        };
        let (h, m) = (load(human), load(mouse));
        let mut checked = 0;
        for id in 2..vocab.len() as u32 {
            let tok = vocab.token(id).unwrap();
            let table = if tok.starts_with("ENSMUSG") { &m } else { &h };
            let arr = &table[&id2name[tok]];
            assert_eq!(arr.dtype, dtype, "{buffer} {tok}");
            assert_eq!(arr.shape, vec![768]);
            assert_eq!(arr.to_f32(), rows[id as usize], "{buffer} row {id}");
            checked += 1;
        }
        assert_eq!(checked, 38);
        assert!(rows[0].iter().all(|&x| x == 0.0), "<pad> row is zero");
    }
}

#[test]
fn numpy_arrays_all_protocols() {
    for p in [2, 3, 5] {
        let name = format!("arrays_protocol{p}.pickle");
        let v = pickle::unpickle(&data(&name), &name).unwrap();
        let d: HashMap<_, _> = pickle::str_array_dict(&v, &name)
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(d["TP53"].dtype, DType::F32, "{name}");
        assert_eq!(d["TP53"].to_f32(), vec![1.5, -2.25, 3.0, 0.1f32], "{name}");
        assert_eq!(d["Gapdh"].dtype, DType::F64, "{name}");
        assert_eq!(d["Gapdh"].data, vec![1e-3, 2.0, -7.5], "{name}");
    }
}

#[test]
fn median_dict_with_numpy_scalars() {
    let m = GeneMedians::from_pickle(&data("medians_numpy_scalars.pickle"), "m").unwrap();
    assert_eq!(m.get("ENSG00000141510"), Some(1.4178609997034073));
    assert_eq!(m.get("ENSG00000111640"), Some(0.44774532318115234));
    assert_eq!(m.get("ENSMUSG00000057666"), Some(2.0));
    assert!(m.get("ENSG00000075624").unwrap().is_nan());
    assert_eq!(m.divisor("ENSG_missing"), 1.0);
    // JSON round trip (NaN <-> null).
    let back = GeneMedians::from_json(m.to_json().as_bytes(), "j").unwrap();
    assert_eq!(back.get("ENSG00000141510"), Some(1.4178609997034073));
    assert!(back.get("ENSG00000075624").unwrap().is_nan());
}

#[test]
fn large_protocol2_dict() {
    let d = TokenDictionary::from_pickle(&data("token_dict_1200_protocol2.pickle"), "big");
    // ids 0.. are ENSG...; "<pad>" is missing, which the dictionary must refuse.
    let err = d.unwrap_err().to_string();
    assert!(err.contains("<pad>"), "{err}");
    let v = pickle::unpickle(&data("token_dict_1200_protocol2.pickle"), "big").unwrap();
    let m = pickle::str_int_dict(&v, "big").unwrap();
    assert_eq!(m.len(), 1200);
    assert_eq!(m["ENSG00000001199"], 1199);
}

#[test]
fn lfs_pointer_is_explained() {
    let ptr = b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 1144041\n";
    let err = TokenDictionary::from_bytes(ptr, "human_mouse_tokens.pickle").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(
        err,
        TokenizeError::Pickle(PickleError::LfsPointer { .. })
    ));
    assert!(
        msg.contains("git lfs pull") && msg.contains("human_mouse_tokens.pickle"),
        "{msg}"
    );
}

#[test]
fn corrupt_and_hostile_pickles_are_refused() {
    // Truncated.
    let good = data("arrays_protocol2.pickle");
    let err = pickle::unpickle(&good[..good.len() / 2], "cut.pickle").unwrap_err();
    assert!(matches!(err, PickleError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("cut.pickle"));
    // Not a pickle at all.
    assert!(pickle::unpickle(b"<html>", "x").is_err());
    assert!(pickle::unpickle(b"", "x").is_err());
    // os.system is never evaluated.
    let evil = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00lsR.";
    let err = pickle::unpickle(evil, "evil.pickle").unwrap_err();
    assert!(
        matches!(err, PickleError::UnsupportedGlobal { ref module, .. } if module == "os"),
        "{err}"
    );
    // Wrong shape for the typed helper.
    let v = Value::List(vec![Value::Int(1)]);
    let err = pickle::str_int_dict(&v, "list.pickle")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dict[str, int]") && err.contains("list"),
        "{err}"
    );
}
