//! Gene-pair graphs (gene families, TF → target networks) keyed by Ensembl id, and their embedding.
//!
//! Names are resolved with the embedded HGNC/MGI tables (current symbol, previous, alias, then
//! case-insensitive; ambiguous names are dropped, never guessed). Mouse graphs are derived from
//! human ones through one-to-one orthologs, as the paper derives mouse gene families.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::sgns::{self, SgnsProgress, SkipGramConfig};
use super::{GeneVectors, PriorError};
use crate::cells::Species;
use crate::tokenize::gene_tables::SymbolHit;
use crate::tokenize::genes::parse_ensembl;
use crate::tokenize::{GeneTable, Orthologs};

/// An undirected multigraph over genes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GeneGraph {
    /// Node names (Ensembl ids).
    pub nodes: Vec<String>,
    index: HashMap<String, u32>,
    /// Edges as node indices (duplicates allowed: they weigh more).
    pub pairs: Vec<(u32, u32)>,
}

impl GeneGraph {
    /// The index of a node, adding it when new.
    pub fn node(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.nodes.len() as u32;
        self.nodes.push(name.to_string());
        self.index.insert(name.to_string(), i);
        i
    }

    /// The index of an existing node.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }

    /// Adds an edge (self-loops ignored).
    pub fn add(&mut self, a: &str, b: &str) {
        if a != b {
            let (x, y) = (self.node(a), self.node(b));
            self.pairs.push((x, y));
        }
    }

    /// Adds every edge of `other`.
    pub fn extend(&mut self, other: &GeneGraph) {
        for &(a, b) in &other.pairs {
            self.add(&other.nodes[a as usize], &other.nodes[b as usize]);
        }
    }

    /// The same graph over the other species' one-to-one orthologs (edges with an unmapped end dropped).
    pub fn through_orthologs(&self, orthologs: &Orthologs) -> GeneGraph {
        let mapped: Vec<Option<&str>> = self
            .nodes
            .iter()
            .map(|n| orthologs.counterpart(n))
            .collect();
        let mut g = GeneGraph::default();
        for &(a, b) in &self.pairs {
            if let (Some(x), Some(y)) = (mapped[a as usize], mapped[b as usize]) {
                g.add(x, y);
            }
        }
        g
    }
}

/// How names were resolved.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ResolveStats {
    /// Pairs read.
    pub pairs_in: usize,
    /// Pairs with both ends resolved.
    pub pairs_kept: usize,
    /// Distinct names that did not resolve (complexes, unknown or ambiguous symbols).
    pub unresolved_names: usize,
    /// A few of them.
    pub unresolved_examples: Vec<String>,
}

/// Resolves gene names (Ensembl ids, with or without version, or symbols) of one species.
pub struct Resolver<'a> {
    table: &'a GeneTable,
    species: Species,
    cache: HashMap<String, Option<String>>,
}

impl<'a> Resolver<'a> {
    /// A resolver over `species`' embedded table.
    pub fn embedded(species: Species) -> Self {
        Self::new(GeneTable::embedded(species), species)
    }

    /// A resolver over an explicit table.
    pub fn new(table: &'a GeneTable, species: Species) -> Self {
        Self {
            table,
            species,
            cache: HashMap::new(),
        }
    }

    /// The Ensembl id of `name`, if it resolves uniquely in this species.
    pub fn resolve(&mut self, name: &str) -> Option<String> {
        if let Some(hit) = self.cache.get(name) {
            return hit.clone();
        }
        let name_t = name.trim();
        let hit = match parse_ensembl(name_t) {
            Some((id, sp)) => (sp == self.species).then(|| id.to_string()),
            None => match self.table.resolve_symbol(name_t) {
                SymbolHit::Found(i, _) => Some(self.table.record(i).ensembl_id.to_string()),
                _ => None,
            },
        };
        self.cache.insert(name.to_string(), hit.clone());
        hit
    }

    /// A graph from named pairs, with resolution statistics.
    pub fn graph(&mut self, pairs: &[(String, String)]) -> (GeneGraph, ResolveStats) {
        let mut g = GeneGraph::default();
        let mut stats = ResolveStats {
            pairs_in: pairs.len(),
            ..Default::default()
        };
        let mut unresolved = std::collections::BTreeSet::new();
        for (a, b) in pairs {
            match (self.resolve(a), self.resolve(b)) {
                (Some(x), Some(y)) => {
                    stats.pairs_kept += 1;
                    g.add(&x, &y);
                }
                (x, y) => {
                    if x.is_none() {
                        unresolved.insert(a.clone());
                    }
                    if y.is_none() {
                        unresolved.insert(b.clone());
                    }
                }
            }
        }
        stats.unresolved_names = unresolved.len();
        stats.unresolved_examples = unresolved.into_iter().take(10).collect();
        (g, stats)
    }
}

fn csv_rows(text: &str, file: &str) -> Result<Vec<Vec<String>>, PriorError> {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    r.records()
        .map(|rec| {
            rec.map(|r| r.iter().map(String::from).collect())
                .map_err(|e| PriorError::invalid(file, format!("malformed CSV: {e}")))
        })
        .collect()
}

/// HGNC gene groups as symbol lists, from the HGNC gene-group database export:
/// `gene_has_family.csv` (`hgnc_id, family_id`) and `gene_symbols.csv` (`HGNC ID, Approved symbol`).
/// Groups are direct memberships (the hierarchy is not propagated), sorted by group id.
pub fn hgnc_families(
    gene_has_family_csv: &str,
    gene_symbols_csv: &str,
) -> Result<Vec<(String, Vec<String>)>, PriorError> {
    let symbols: HashMap<String, String> = csv_rows(gene_symbols_csv, "gene_symbols.csv")?
        .into_iter()
        .skip(1)
        .filter(|r| r.len() >= 2)
        .map(|r| (r[0].trim_start_matches("HGNC:").to_string(), r[1].clone()))
        .collect();
    if symbols.is_empty() {
        return Err(PriorError::invalid(
            "gene_symbols.csv",
            "no `HGNC ID, Approved symbol` rows; pass the HGNC gene-group export's gene_symbols.csv(.gz)",
        ));
    }
    let rows = csv_rows(gene_has_family_csv, "gene_has_family.csv")?;
    let header = rows.first().cloned().unwrap_or_default();
    if header.len() < 2 || header[0] != "hgnc_id" || header[1] != "family_id" {
        return Err(PriorError::invalid(
            "gene_has_family.csv",
            format!("expected the header `hgnc_id,family_id`, found {header:?}"),
        ));
    }
    let mut groups: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for r in rows.into_iter().skip(1).filter(|r| r.len() >= 2) {
        if let (Some(sym), Ok(fam)) = (symbols.get(r[0].as_str()), r[1].parse::<u64>()) {
            groups.entry(fam).or_default().push(sym.clone());
        }
    }
    Ok(groups
        .into_iter()
        .map(|(id, mut v)| {
            v.sort();
            v.dedup();
            (id.to_string(), v)
        })
        .collect())
}

/// Options of the gene-family graph.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FamilyOptions {
    /// Skip groups larger than this (the official recipe uses all within-family pairs: `None`).
    pub max_family_size: Option<usize>,
}

/// All within-family pairs of human genes (by Ensembl id), and statistics.
pub fn family_graph(
    families: &[(String, Vec<String>)],
    opts: &FamilyOptions,
    resolver: &mut Resolver<'_>,
) -> (GeneGraph, ResolveStats) {
    let mut g = GeneGraph::default();
    let mut stats = ResolveStats::default();
    let mut unresolved = std::collections::BTreeSet::new();
    for (_, members) in families {
        let ids: Vec<String> = members
            .iter()
            .filter_map(|s| {
                let r = resolver.resolve(s);
                if r.is_none() {
                    unresolved.insert(s.clone());
                }
                r
            })
            .collect();
        let n = ids.len();
        if opts.max_family_size.is_some_and(|m| n > m) {
            continue;
        }
        stats.pairs_in += n * n.saturating_sub(1) / 2;
        for i in 0..n {
            for j in i + 1..n {
                g.add(&ids[i], &ids[j]);
            }
        }
    }
    stats.pairs_kept = g.pairs.len();
    stats.unresolved_names = unresolved.len();
    stats.unresolved_examples = unresolved.into_iter().take(10).collect();
    (g, stats)
}

/// Reads a 2-column (source, target) edge table: TSV, or CSV when the header has no tab.
///
/// Columns are chosen by name (`source_col`/`target_col`), else `source_symbol`/`target_symbol`
/// when present (the OmniPath export), else the first two columns. `header = false`: the first
/// line is data and columns are the first two.
pub fn read_edge_table(
    text: &str,
    file: &str,
    header: bool,
    source_col: Option<&str>,
    target_col: Option<&str>,
) -> Result<Vec<(String, String)>, PriorError> {
    let first = text.lines().next().unwrap_or("");
    let delim = if first.contains('\t') { b'\t' } else { b',' };
    let mut r = csv::ReaderBuilder::new()
        .delimiter(delim)
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut rows = r.records();
    let (si, ti) = if header {
        let h: Vec<String> = match rows.next() {
            Some(Ok(h)) => h.iter().map(String::from).collect(),
            _ => return Err(PriorError::invalid(file, "empty edge table")),
        };
        let find =
            |want: Option<&str>, default: &str, fallback: usize| -> Result<usize, PriorError> {
                match want {
                    Some(w) => h.iter().position(|c| c == w).ok_or_else(|| {
                        PriorError::invalid(file, format!("no column {w:?}; columns are {h:?}"))
                    }),
                    None => Ok(h.iter().position(|c| c == default).unwrap_or(fallback)),
                }
            };
        (
            find(source_col, "source_symbol", 0)?,
            find(target_col, "target_symbol", 1)?,
        )
    } else {
        (0, 1)
    };
    let mut out = Vec::new();
    for (line, rec) in rows.enumerate() {
        let rec = rec.map_err(|e| PriorError::invalid(file, format!("row {}: {e}", line + 2)))?;
        let (Some(s), Some(t)) = (rec.get(si), rec.get(ti)) else {
            return Err(PriorError::invalid(
                file,
                format!(
                    "row {} has fewer than 2 columns; expected source and target",
                    line + 2
                ),
            ));
        };
        if !s.is_empty() && !t.is_empty() {
            out.push((s.to_string(), t.to_string()));
        }
    }
    Ok(out)
}

/// True for the vocabulary's special tokens, which get zero rows (as in the official tables).
pub fn is_special(token: &str) -> bool {
    token == "<pad>" || token == "<mask>"
}

/// Embeds a graph with skip-gram (see [`sgns`]) and returns the rows `rows` (e.g. the vocabulary
/// tokens in id order; default: the graph's genes, sorted). Genes in no pair keep their seeded
/// random initial vector; `<pad>`/`<mask>` rows are zero.
pub fn embed_graph(
    graph: &GeneGraph,
    rows: Option<&[String]>,
    cfg: &SkipGramConfig,
    progress: SgnsProgress<'_>,
) -> GeneVectors {
    let rows: Vec<String> = match rows {
        Some(r) => r.to_vec(),
        None => {
            let mut v = graph.nodes.clone();
            v.sort();
            v
        }
    };
    // Nodes: the requested rows first (so their random initial vectors depend only on the row
    // list and the seed), then graph genes outside it (trained, not returned).
    let mut all = GeneGraph::default();
    for r in &rows {
        all.node(r);
    }
    all.extend(graph);
    let vecs = sgns::train(all.nodes.len(), &all.pairs, cfg, progress);
    let dim = cfg.dim;
    let mut data = vec![0f32; rows.len() * dim];
    for (i, r) in rows.iter().enumerate() {
        if !is_special(r) {
            data[i * dim..(i + 1) * dim].copy_from_slice(&vecs[i * dim..(i + 1) * dim]);
        }
    }
    GeneVectors {
        genes: rows,
        width: dim,
        data,
    }
}
