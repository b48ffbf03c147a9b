//! GRN inference by in-silico deletion: for each transcription factor, the genes whose
//! embeddings move most when the TF is deleted are its predicted targets. The ranking is scored
//! against a TF→target prior (precision and recall at k, average precision, AUROC), always beside
//! what a random ranking of the same candidates would score, so a number is never read alone.
//!
//! Gene identity across species goes through human Ensembl ids: a mouse gene is named by its
//! one-to-one human ortholog (the TF→target priors at hand are human).

use std::collections::{HashMap, HashSet};

use super::perturb::AffectedGene;
use crate::cells::Species;
use crate::priors::graphs::Resolver;
use crate::tokenize::Orthologs;
use crate::tokenize::genes::parse_ensembl;

/// TF → target sets, keyed by human Ensembl gene id (names resolved through the embedded HGNC
/// table, previous and alias symbols included when unique).
#[derive(Debug, Clone, Default)]
pub struct TargetPrior {
    targets: HashMap<String, HashSet<String>>,
    /// Edges whose source or target did not resolve to one human gene (complexes, unknown or
    /// ambiguous names).
    pub unresolved_edges: usize,
}

impl TargetPrior {
    /// Builds the sets from (source, target) human gene names. Complex sources (`COMPLEX:…`,
    /// as in OmniPath) never resolve: no single gene can be deleted for them.
    pub fn from_edges(edges: &[(String, String)]) -> Self {
        let mut resolver = Resolver::embedded(Species::Human);
        let mut targets: HashMap<String, HashSet<String>> = HashMap::new();
        let mut unresolved_edges = 0;
        for (s, t) in edges {
            if s.starts_with("COMPLEX:") {
                unresolved_edges += 1;
                continue;
            }
            match (resolver.resolve(s), resolver.resolve(t)) {
                (Some(s), Some(t)) if s != t => {
                    targets.entry(s).or_default().insert(t);
                }
                (Some(_), Some(_)) => {}
                _ => unresolved_edges += 1,
            }
        }
        Self {
            targets,
            unresolved_edges,
        }
    }

    /// The targets of a TF given by its human Ensembl id, if the prior lists it.
    pub fn targets(&self, tf: &str) -> Option<&HashSet<String>> {
        self.targets.get(tf)
    }

    /// Every TF (human Ensembl ids), sorted.
    pub fn tfs(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.targets.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// Number of TFs.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// True without any TF.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

/// The human Ensembl id naming a gene in the priors: itself for a human id (version dropped),
/// its one-to-one human ortholog for a mouse id; `None` otherwise.
pub fn human_gene(ensembl: &str) -> Option<String> {
    let (base, species) = parse_ensembl(ensembl)?;
    match species {
        Species::Human => Some(base.to_string()),
        Species::Mouse => Orthologs::embedded().counterpart(base).map(String::from),
        // No nomenclature or orthology table ships for an added species.
        Species::Added(_) => None,
    }
}

/// Precision and recall at one cut-off, with the random ranking's expectation beside each.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct AtK {
    /// The cut-off (at most the number of candidates).
    pub k: usize,
    /// Prior targets among the top k.
    pub hits: usize,
    /// hits / k.
    pub precision: f64,
    /// A random ranking's expected precision: positives / candidates.
    pub random_precision: f64,
    /// hits / positives.
    pub recall: f64,
    /// A random ranking's expected recall: k / candidates.
    pub random_recall: f64,
}

/// How well one ranking recovers the prior targets.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RankingEval {
    /// Genes ranked.
    pub candidates: usize,
    /// Prior targets among them.
    pub positives: usize,
    /// Average precision (area under the precision-recall curve, step-wise); `None` without
    /// positives.
    pub average_precision: Option<f64>,
    /// A random ranking's expected average precision, positives / candidates (the usual AUPRC
    /// baseline).
    pub random_average_precision: Option<f64>,
    /// Area under the ROC curve (0.5 for a random ranking); `None` unless there are positives
    /// and negatives.
    pub auroc: Option<f64>,
    /// Per requested cut-off.
    pub at_k: Vec<AtK>,
}

/// Scores a ranking given, best first, whether each candidate is a prior target.
pub fn evaluate_ranking(is_target: &[bool], ks: &[usize]) -> RankingEval {
    let n = is_target.len();
    let p = is_target.iter().filter(|&&t| t).count();
    let mut hits = 0usize;
    let mut ap = 0f64;
    // AUROC as the share of (positive, negative) pairs ordered correctly.
    let mut negatives_below = 0usize;
    let mut ordered = 0usize;
    for (i, &t) in is_target.iter().enumerate() {
        if t {
            hits += 1;
            ap += hits as f64 / (i + 1) as f64;
        }
    }
    for &t in is_target.iter().rev() {
        if t {
            ordered += negatives_below;
        } else {
            negatives_below += 1;
        }
    }
    let neg = n - p;
    let mut at_k = Vec::new();
    for &k in ks {
        let k = k.min(n);
        if k == 0 || at_k.iter().any(|a: &AtK| a.k == k) {
            continue;
        }
        let h = is_target[..k].iter().filter(|&&t| t).count();
        at_k.push(AtK {
            k,
            hits: h,
            precision: h as f64 / k as f64,
            random_precision: p as f64 / n as f64,
            recall: if p > 0 { h as f64 / p as f64 } else { 0.0 },
            random_recall: k as f64 / n as f64,
        });
    }
    RankingEval {
        candidates: n,
        positives: p,
        average_precision: (p > 0).then(|| ap / p as f64),
        random_average_precision: (p > 0).then(|| p as f64 / n as f64),
        auroc: (p > 0 && neg > 0).then(|| ordered as f64 / (p * neg) as f64),
        at_k,
    }
}

/// One candidate target of a TF.
#[derive(Debug, Clone, PartialEq)]
pub struct RankedTarget {
    /// The gene's token.
    pub token: u32,
    /// Embedding shift when the TF is deleted: 1 − mean cosine over the cells holding both.
    pub shift: f64,
    /// Cells the mean is over.
    pub cells: usize,
}

/// Ranks a deletion's affected genes: most shifted first, ties by token; genes seen in fewer
/// than `min_cells` cells (a mean of too few cosines) and the TF's own tokens are left out.
pub fn rank_targets(
    affected: &[AffectedGene],
    tf_tokens: &[u32],
    min_cells: usize,
) -> Vec<RankedTarget> {
    let mut v: Vec<RankedTarget> = affected
        .iter()
        .filter(|a| a.token != 0 && a.count >= min_cells.max(1) && !tf_tokens.contains(&a.token))
        .map(|a| RankedTarget {
            token: a.token,
            shift: 1.0 - a.mean_cos,
            cells: a.count,
        })
        .collect();
    v.sort_by(|a, b| b.shift.total_cmp(&a.shift).then(a.token.cmp(&b.token)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }

    #[test]
    fn ranking_metrics_by_hand() {
        // T F T F F: AP = (1/1 + 2/3) / 2; AUROC: positive 1 beats 3 negatives, positive 2
        // beats 2 → 5 / 6.
        let e = evaluate_ranking(&[true, false, true, false, false], &[1, 2, 10, 0]);
        assert_eq!((e.candidates, e.positives), (5, 2));
        close(e.average_precision.unwrap(), (1.0 + 2.0 / 3.0) / 2.0);
        close(e.random_average_precision.unwrap(), 0.4);
        close(e.auroc.unwrap(), 5.0 / 6.0);
        let ks: Vec<usize> = e.at_k.iter().map(|a| a.k).collect();
        assert_eq!(ks, [1, 2, 5], "k is capped at the candidates and 0 dropped");
        let a2 = e.at_k[1];
        assert_eq!(a2.hits, 1);
        close(a2.precision, 0.5);
        close(a2.recall, 0.5);
        close(a2.random_precision, 0.4);
        close(a2.random_recall, 0.4);
        close(e.at_k[2].recall, 1.0);
    }

    #[test]
    fn perfect_worst_and_empty_rankings() {
        let best = evaluate_ranking(&[true, true, false, false], &[2]);
        close(best.average_precision.unwrap(), 1.0);
        close(best.auroc.unwrap(), 1.0);
        let worst = evaluate_ranking(&[false, false, true, true], &[2]);
        close(worst.auroc.unwrap(), 0.0);
        close(
            worst.average_precision.unwrap(),
            (1.0 / 3.0 + 2.0 / 4.0) / 2.0,
        );
        let none = evaluate_ranking(&[false, false], &[1]);
        assert_eq!(none.average_precision, None);
        assert_eq!(none.auroc, None);
        let all = evaluate_ranking(&[true], &[1]);
        assert_eq!(all.auroc, None, "no negatives: AUROC undefined");
    }

    #[test]
    fn prior_resolves_symbols_and_skips_complexes_and_self_loops() {
        let e = |a: &str, b: &str| (a.to_string(), b.to_string());
        let p = TargetPrior::from_edges(&[
            e("TP53", "MDM2"),
            e("tp53", "CDKN1A"),
            e("COMPLEX:P1_P2", "MYC"),
            e("MYC", "MYC"),
            e("NOT_A_GENE_X", "MYC"),
        ]);
        const TP53: &str = "ENSG00000141510";
        assert_eq!(p.tfs(), [TP53]);
        assert_eq!(p.targets(TP53).unwrap().len(), 2);
        assert!(p.targets(TP53).unwrap().contains("ENSG00000135679"), "MDM2");
        assert_eq!(p.unresolved_edges, 2);
    }

    #[test]
    fn human_genes_for_both_species() {
        assert_eq!(
            human_gene("ENSG00000141510.17").as_deref(),
            Some("ENSG00000141510")
        );
        // Mouse Trp53 names itself by its human ortholog.
        assert_eq!(
            human_gene("ENSMUSG00000059552").as_deref(),
            Some("ENSG00000141510")
        );
        assert_eq!(human_gene("not-an-id"), None);
    }

    #[test]
    fn ranks_by_shift_and_filters() {
        let a = |token, count, mean_cos| AffectedGene {
            token,
            count,
            mean_cos,
            min_cos: mean_cos,
        };
        let r = rank_targets(
            &[
                a(5, 3, 0.9),
                a(6, 1, 0.1),
                a(7, 3, 0.5),
                a(8, 4, 0.9),
                a(9, 9, 0.0),
                a(0, 9, 0.0),
            ],
            &[9],
            2,
        );
        let order: Vec<u32> = r.iter().map(|t| t.token).collect();
        assert_eq!(order, [7, 5, 8]);
        close(r[0].shift, 0.5);
    }
}
