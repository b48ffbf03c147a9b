//! Prior builders on generated inputs: skip-gram, co-expression pairs, promoter embedding, table
//! parsers, and the official-pickle export read back by the official loader.

mod common;

use std::collections::BTreeMap;

use common::tiny;
use genecompass_core::data::CsrChunk;
use genecompass_core::priors::coexp::{CoexpOptions, coexpressed_pairs};
use genecompass_core::priors::graphs::{self, GeneGraph};
use genecompass_core::priors::official::{MemoryFiles, OfficialLayout, load_official};
use genecompass_core::priors::promoter::{self, FastaRecord, PromoterOptions};
use genecompass_core::priors::sgns::SkipGramConfig;
use genecompass_core::priors::{GeneVectors, PriorKind, SplitMix64, cosine, pickle_write, quality};
use genecompass_core::tokenize::TokenDictionary;

fn small_cfg(seed: u64) -> SkipGramConfig {
    SkipGramConfig {
        dim: 16,
        epochs: 300,
        negatives: 5,
        learning_rate: 0.025,
        seed,
        vectors: Default::default(),
    }
}

/// Two 8-gene cliques joined by one edge, plus an isolated gene.
fn two_cliques() -> GeneGraph {
    let mut g = GeneGraph::default();
    for c in 0..2 {
        for i in 0..8 {
            for j in i + 1..8 {
                g.add(&format!("c{c}g{i}"), &format!("c{c}g{j}"));
            }
        }
    }
    g.add("c0g0", "c1g0");
    g.node("lonely");
    g
}

#[test]
fn skip_gram_separates_communities_and_is_deterministic() {
    let g = two_cliques();
    let rows: Vec<String> = ["<pad>", "c0g1", "c0g2", "c1g1", "c1g2", "lonely"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let v = graphs::embed_graph(&g, Some(&rows), &small_cfg(7), &mut |_, _| {});
    assert_eq!((v.genes.len(), v.width), (6, 16));
    assert!(v.row(0).iter().all(|&x| x == 0.0), "<pad> row is zero");
    let within = cosine(v.row(1), v.row(2)).min(cosine(v.row(3), v.row(4)));
    let across = cosine(v.row(1), v.row(3)).max(cosine(v.row(2), v.row(4)));
    println!("within {within:.3} across {across:.3}");
    assert!(
        within > 0.5 && within > across + 0.5,
        "within {within} across {across}"
    );
    // The isolated gene keeps a small random vector.
    let lonely_norm: f32 = v.row(5).iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!(lonely_norm > 0.0 && lonely_norm < 0.2, "{lonely_norm}");
    // Same seed, same bits; another seed, other vectors.
    let again = graphs::embed_graph(&g, Some(&rows), &small_cfg(7), &mut |_, _| {});
    assert_eq!(v, again);
    let other = graphs::embed_graph(&g, Some(&rows), &small_cfg(8), &mut |_, _| {});
    assert_ne!(v.data, other.data);
    // Pair separation on the graph's own pairs.
    let sorted = graphs::embed_graph(&g, None, &small_cfg(7), &mut |_, _| {});
    let idx = |n: &str| sorted.genes.iter().position(|g| g == n).unwrap() as u32;
    let pairs: Vec<(u32, u32)> = g
        .pairs
        .iter()
        .map(|&(a, b)| (idx(&g.nodes[a as usize]), idx(&g.nodes[b as usize])))
        .collect();
    // Degree-matched random pairs fall inside one clique about half the time: AUC ≈ 0.75 is the ceiling.
    let s = quality::pair_separation(&sorted, &pairs, 2000, 1);
    assert!(s.auc > 0.7, "{s:?}");
}

#[test]
fn auc_and_rank_statistics() {
    assert_eq!(quality::auc(&[3.0, 4.0], &[1.0, 2.0]), 1.0);
    assert_eq!(quality::auc(&[1.0], &[1.0]), 0.5);
    assert_eq!(quality::auc(&[1.0, 2.0], &[3.0, 4.0]), 0.0);
    let x = [1.0, 2.0, 3.0, 4.0];
    assert!((quality::spearman(&x, &[10.0, 20.0, 25.0, 100.0]) - 1.0).abs() < 1e-12);
    assert!((quality::spearman(&x, &[4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
}

/// Cells × 6 genes: genes 0 and 1 track one latent factor (co-expressed), gene 2 is independent,
/// gene 3 is expressed in only 5 cells, genes 4/5 anti-correlated with 0.
fn planted_matrix(cells: usize) -> CsrChunk {
    let mut rng = SplitMix64::new(11);
    let mut m = CsrChunk {
        first_cell: 0,
        indptr: vec![0],
        indices: vec![],
        data: vec![],
    };
    for c in 0..cells {
        let f = 1.0 + 20.0 * rng.next_f64();
        let vals: [f64; 6] = [
            f,
            2.0 * f + rng.next_f64(),
            1.0 + 20.0 * rng.next_f64(),
            if c < 5 { f } else { 0.0 },
            30.0 - f,
            25.0 - f + rng.next_f64(),
        ];
        for (g, v) in vals.iter().enumerate() {
            if *v > 0.0 {
                m.indices.push(g as u32);
                m.data.push(v.round() as f32 + 1.0);
            }
        }
        m.indptr.push(m.indices.len());
    }
    m
}

#[test]
fn coexpression_finds_planted_pairs_only() {
    let m = planted_matrix(400);
    let opts = CoexpOptions {
        normalize: false,
        cells_per_matrix: 300,
        ..Default::default()
    };
    let res = coexpressed_pairs(&m, 6, None, &opts, true);
    let kept: Vec<(u32, u32)> = res.kept.iter().map(|p| (p.a, p.b)).collect();
    println!("{:?}\n{:?}", res.stats, res.kept);
    assert!(kept.contains(&(0, 1)), "{kept:?}");
    assert!(kept.contains(&(4, 5)), "{kept:?}");
    assert!(
        !kept.iter().any(|&(a, b)| a == 2 || b == 2),
        "independent gene paired: {kept:?}"
    );
    assert!(
        !kept.iter().any(|&(a, b)| a == 3 || b == 3),
        "gene in 5 cells must not pair (min_cells 20)"
    );
    // Anti-correlated pairs are tested but not kept.
    let r04 = res.tested.iter().find(|p| (p.a, p.b) == (0, 4)).unwrap().r;
    assert!(r04 < -0.9, "{r04}");
    assert_eq!(res.stats.cells_used, 300);
    // Seeded: same sample, same result; the column mask drops gene 1.
    let again = coexpressed_pairs(&m, 6, None, &opts, true);
    assert_eq!(again.kept, res.kept);
    let mask = [true, false, true, true, true, true];
    let masked = coexpressed_pairs(&m, 6, Some(&mask), &opts, false);
    assert!(masked.kept.iter().all(|p| p.a != 1 && p.b != 1));
}

fn random_seq(rng: &mut SplitMix64, n: usize, gc: f64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            let r = rng.next_f64();
            if r < gc / 2.0 {
                b'G'
            } else if r < gc {
                b'C'
            } else if r < gc + (1.0 - gc) / 2.0 {
                b'A'
            } else {
                b'T'
            }
        })
        .collect()
}

#[test]
fn promoter_embedding_reflects_sequence_similarity() {
    let mut rng = SplitMix64::new(3);
    let base = random_seq(&mut rng, 2500, 0.5);
    let mut mutant = base.clone();
    for _ in 0..125 {
        let i = rng.below(mutant.len());
        mutant[i] = b"ACGT"[rng.below(4)];
    }
    let recs = vec![
        FastaRecord {
            name: "base".into(),
            seq: base,
        },
        FastaRecord {
            name: "mutant".into(),
            seq: mutant,
        },
        FastaRecord {
            name: "other".into(),
            seq: random_seq(&mut rng, 2500, 0.5),
        },
        FastaRecord {
            name: "gc1".into(),
            seq: random_seq(&mut rng, 2500, 0.7),
        },
        FastaRecord {
            name: "gc2".into(),
            seq: random_seq(&mut rng, 2500, 0.7),
        },
        FastaRecord {
            name: "allN".into(),
            seq: vec![b'N'; 100],
        },
    ];
    let opts = PromoterOptions {
        dim: 64,
        ..Default::default()
    };
    let v = promoter::embed_sequences(&recs, &opts, &mut |_, _| {}).unwrap();
    let c = |i, j| cosine(v.row(i), v.row(j));
    println!(
        "mutant {:.3} other {:.3} gc {:.3} gc-vs-base {:.3}",
        c(0, 1),
        c(0, 2),
        c(3, 4),
        c(3, 0)
    );
    assert!(c(0, 1) > 0.8, "5% mutated copy: {}", c(0, 1));
    assert!(c(0, 1) > c(0, 2) + 0.3);
    assert!(c(3, 4) > c(3, 0) + 0.3, "GC-rich promoters group together");
    assert!(
        v.row(5).iter().all(|&x| x == 0.0),
        "no valid k-mer → zero row"
    );
    assert_eq!(
        v,
        promoter::embed_sequences(&recs, &opts, &mut |_, _| {}).unwrap()
    );

    let fasta = ">ENSG00000141510.17 TP53 promoter\nacgt\nACGN\n>BRCA1|x\nGGGG\n";
    let r = promoter::parse_fasta(fasta, "p.fa").unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[0].name.as_str(), r[0].seq.as_slice()),
        ("ENSG00000141510.17", &b"ACGTACGN"[..])
    );
    assert_eq!(r[1].name, "BRCA1");
    let err = promoter::parse_fasta("ACGT\n", "p.fa")
        .unwrap_err()
        .to_string();
    assert!(err.contains("p.fa") && err.contains("header"), "{err}");
}

#[test]
fn edge_and_family_tables_parse() {
    let tsv = "source\ttarget\tsource_symbol\ttarget_symbol\nMYC\tO14746\tMYC\tTERT\nSPI1\tBGLAP\tSPI1\tBGLAP\nX\tY\t\tZ\n";
    let e = graphs::read_edge_table(tsv, "e.tsv", true, None, None).unwrap();
    assert_eq!(
        e,
        vec![
            ("MYC".into(), "TERT".into()),
            ("SPI1".into(), "BGLAP".into())
        ]
    );
    let e = graphs::read_edge_table(tsv, "e.tsv", true, Some("source"), Some("target")).unwrap();
    assert_eq!(e[0], ("MYC".into(), "O14746".into()));
    let e = graphs::read_edge_table("TP53,MDM2\nMYC,CDK4\n", "e.csv", false, None, None).unwrap();
    assert_eq!(e.len(), 2);
    let err = graphs::read_edge_table(tsv, "e.tsv", true, Some("tf"), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"tf\"") && err.contains("e.tsv"), "{err}");

    let fam = "\"hgnc_id\",\"family_id\"\n\"11998\",\"3\"\n\"1100\",\"3\"\n\"11998\",\"9\"\n\"5\",\"77\"\n";
    let sym = "HGNC ID,Approved symbol\nHGNC:11998,TP53\nHGNC:1100,BRCA1\nHGNC:5,A1BG\n";
    let f = graphs::hgnc_families(fam, sym).unwrap();
    assert_eq!(f[0], ("3".into(), vec!["BRCA1".into(), "TP53".into()]));
    let mut resolver = graphs::Resolver::embedded(genecompass_core::cells::Species::Human);
    let (g, stats) = graphs::family_graph(&f, &Default::default(), &mut resolver);
    assert_eq!(g.pairs.len(), 1);
    assert_eq!(stats.unresolved_names, 0);
    assert!(g.nodes.contains(&"ENSG00000141510".to_string()));
    // Mouse through orthologs: Trp53 / Brca1.
    let m = g.through_orthologs(genecompass_core::tokenize::Orthologs::embedded());
    assert_eq!(m.pairs.len(), 1, "{:?}", m.nodes);
    assert!(m.nodes.iter().all(|n| n.starts_with("ENSMUSG")));
}

#[test]
fn official_pickle_export_loads_back_through_the_official_loader() {
    // Rows = the fixture vocabulary (real Ensembl ids of named genes); values generated.
    let vocab = TokenDictionary::load(&tiny().join("token_dict.json")).unwrap();
    let width = 8;
    let mut rng = SplitMix64::new(5);
    let data: Vec<f32> = (0..vocab.len() * width)
        .map(|i| {
            if i < 2 * width {
                0.0
            } else {
                rng.normal() as f32
            }
        })
        .collect();
    let v = GeneVectors {
        genes: vocab.tokens().to_vec(),
        width,
        data,
    };
    let p = pickle_write::to_official_pickles(&v);
    assert_eq!(p.counts, (20, 18));
    assert_eq!(p.duplicate_symbols, 0);
    let mut files = BTreeMap::new();
    for kind in PriorKind::ALL {
        let (h, m) = pickle_write::official_names(kind, width, p.counts);
        files.insert(h, p.human.clone());
        files.insert(m, p.mouse.clone());
    }
    let names = p.id_to_symbol.iter().map(|(a, b)| (a.as_str(), b.as_str()));
    files.insert(
        "gene_list/Gene_id_name_dict_human_mouse.pickle".into(),
        pickle_write::str_str_dict(names),
    );
    let tokens = vocab
        .tokens()
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i as i64));
    files.insert(
        "human_mouse_tokens.pickle".into(),
        pickle_write::str_int_dict(tokens),
    );
    files.insert(
        "homologous_hm_token.pickle".into(),
        pickle_write::int_int_dict([(2, 22)]),
    );
    let files = MemoryFiles(files);
    let layout = OfficialLayout::default().resolve(&files);
    let t = load_official(&files, &layout, &mut |_, _, _| {}).unwrap();
    assert_eq!(t.width, width);
    for (_, table) in &t.tables {
        assert_eq!(table, &v.data);
    }
    assert_eq!(t.homologous_index[22], 2);
}
