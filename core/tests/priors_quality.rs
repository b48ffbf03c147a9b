//! Quality of the built priors on real data (shared/data): linked genes must end up nearer than
//! degree-matched random pairs, on pairs held out of training. Sizes are cut down so that the
//! unoptimised test build stays fast; `genecompass-train priors build-* --holdout 0.1` reports
//! the same figures at full size (docs/priors.md records both).

mod common;

use common::shared;
use genecompass_core::cells::Species;
use genecompass_core::data::{CsrChunk, MatrixChoice, open_path};
use genecompass_core::priors::coexp::{CoexpOptions, coexp_graph};
use genecompass_core::priors::graphs::{self, FamilyOptions, GeneGraph, Resolver};
use genecompass_core::priors::quality::{self, PairSeparation};
use genecompass_core::priors::sgns::{SkipGramConfig, VectorKind};
use genecompass_core::priors::{GeneVectors, cosine, text_maybe_gz};
use genecompass_core::tokenize::{GeneMatchOptions, TokenDictionary, match_genes};

fn read_text(rel: &str) -> String {
    let p = shared().join(rel);
    let bytes =
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e} (shared data missing?)", p.display()));
    text_maybe_gz(&bytes, rel).unwrap()
}

fn cfg(vectors: VectorKind) -> SkipGramConfig {
    SkipGramConfig {
        dim: 32,
        epochs: 30,
        negatives: 5,
        learning_rate: 0.025,
        seed: 42,
        vectors,
    }
}

/// Trains on 90% of the pairs; scores held-out pairs against degree-matched random pairs.
fn held_out_separation(graph: &GeneGraph, cfg: &SkipGramConfig) -> (GeneVectors, PairSeparation) {
    let (train, test) = quality::hold_out(&graph.pairs, 0.1, 1);
    let mut g = graph.clone();
    g.pairs = train;
    // Rows in graph node order, so pair indices are row indices.
    let v = graphs::embed_graph(&g, Some(&graph.nodes), cfg, &mut |_, _| {});
    let s = quality::pair_separation(&v, &test, 20_000, 2);
    (v, s)
}

#[test]
fn hgnc_family_members_are_nearer_than_random_pairs() {
    let fam = read_text("data/priors/hgnc_gene_groups/gene_has_family.csv.gz");
    let sym = read_text("data/priors/hgnc_gene_groups/gene_symbols.csv.gz");
    let families = graphs::hgnc_families(&fam, &sym).unwrap();
    assert!(families.len() > 1500, "{}", families.len());
    let opts = FamilyOptions {
        max_family_size: Some(20),
    };
    let (g, rs) = graphs::family_graph(&families, &opts, &mut Resolver::embedded(Species::Human));
    let (_, s) = held_out_separation(&g, &cfg(VectorKind::Input));
    println!(
        "family (groups ≤ 20 genes): {} genes, {} pairs, {} unresolved symbols; held-out {s:?}",
        g.nodes.len(),
        g.pairs.len(),
        rs.unresolved_names
    );
    assert!(s.auc > 0.8, "{s:?}");
    assert!(s.mean_cosine_pairs > s.mean_cosine_random, "{s:?}");
}

#[test]
fn tf_targets_are_nearer_than_random_pairs() {
    let text = read_text("data/priors/omnipath_transcriptional_tf_target.tsv.gz");
    let edges = graphs::read_edge_table(&text, "omnipath", true, None, None).unwrap();
    assert!(edges.len() > 100_000);
    let (g, rs) = Resolver::embedded(Species::Human).graph(&edges);
    // Full network, smaller model (debug build): 16 dimensions, 10 epochs.
    let small = |vectors| SkipGramConfig {
        dim: 16,
        epochs: 10,
        ..cfg(vectors)
    };
    let (_, input) = held_out_separation(&g, &small(VectorKind::Input));
    let (_, sum) = held_out_separation(&g, &small(VectorKind::Sum));
    println!(
        "GRN (OmniPath, dim 16, 10 epochs): {} genes, {} pairs ({} of {} edges kept); held-out input vectors {input:?}; \
         held-out input+output vectors {sum:?}",
        g.nodes.len(),
        g.pairs.len(),
        rs.pairs_kept,
        rs.pairs_in
    );
    // TF → target graphs are hub-and-spoke: input vectors alone barely place a TF near its
    // targets; the input+output sum (the builder's default for GRN) does.
    assert!(
        sum.auc > 0.55 && sum.auc > input.auc,
        "{sum:?} vs {input:?}"
    );
    assert!(sum.mean_cosine_pairs > sum.mean_cosine_random, "{sum:?}");
}

fn read_matrix(rel: &str) -> (CsrChunk, Vec<Option<String>>) {
    let mut src = open_path(&shared().join(rel), MatrixChoice::Auto).unwrap();
    let genes = src.genes().clone();
    let m = match_genes(
        &genes,
        &TokenDictionary::build(Vec::<String>::new()),
        &GeneMatchOptions::default(),
    )
    .unwrap();
    let mut all = CsrChunk {
        first_cell: 0,
        indptr: vec![0],
        indices: vec![],
        data: vec![],
    };
    while let Some(c) = src.next_chunk(4096).unwrap() {
        let base = all.indices.len();
        all.indices.extend_from_slice(&c.indices);
        all.data.extend_from_slice(&c.data);
        all.indptr
            .extend(c.indptr[1..].iter().map(|&p| base + p - c.indptr[0]));
    }
    (all, m.ensembl)
}

#[test]
fn coexpression_neighbours_agree_with_correlation() {
    let (cells, ensembl) = read_matrix("data/h5ad/wu2020_tcells_200.h5ad");
    assert_eq!(cells.n_cells(), 200);
    let opts = CoexpOptions {
        max_genes: 600,
        ..Default::default()
    };
    let (g, res) = coexp_graph(&cells, &ensembl, &opts, true);
    assert!(res.stats.pairs_kept > 100, "{:?}", res.stats);
    let (v, s) = held_out_separation(&g, &cfg(VectorKind::Input));
    // Spearman between embedding cosine and measured r over every tested pair of embedded genes.
    let row: std::collections::HashMap<&str, usize> = v
        .genes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let (mut c, mut r) = (vec![], vec![]);
    for p in &res.tested {
        let (Some(a), Some(b)) = (&ensembl[p.a as usize], &ensembl[p.b as usize]) else {
            continue;
        };
        if let (Some(&i), Some(&j)) = (row.get(a.as_str()), row.get(b.as_str())) {
            c.push(cosine(v.row(i), v.row(j)) as f64);
            r.push(p.r as f64);
        }
    }
    let rho = quality::spearman(&c, &r);
    println!(
        "co-expression (wu2020 T cells, 200 cells, 600 genes, r ≥ 0.8): {:?}; {} genes in the graph; held-out {s:?}; \
         Spearman(cosine, r) over {} tested pairs = {rho:.4}",
        res.stats,
        g.nodes.len(),
        c.len()
    );
    // Few cells and genes give few held-out pairs (35): the rank agreement is the firm signal.
    assert!(s.auc > 0.5, "{s:?}");
    assert!(rho > 0.2, "{rho}");
}
