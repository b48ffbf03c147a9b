//! Gene identity: Ensembl ids vs symbols, species, and matching a file's genes to the vocabulary.
//!
//! The official script maps symbols with a single `name → id` pickle (`Gene_id_name_dict1.pickle`,
//! not shipped) and drops unmapped genes. Here symbols resolve through the embedded HGNC (human) /
//! MGI (mouse) tables: current symbol, then previous, then alias, then case-insensitive current
//! symbol; a previous/alias symbol shared by several genes is reported as ambiguous and dropped,
//! never guessed.

use super::gene_tables::{GeneTable, Orthologs, SymbolHit, SymbolRule};
use super::{TokenDictionary, TokenizeError};
use crate::cells::Species;
use crate::data::GeneColumns;
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;

/// Splits an Ensembl gene id into (id without version, species); `None` if it is not a human or
/// mouse Ensembl gene id. `ENSG00000141510.17` → (`ENSG00000141510`, human).
pub fn parse_ensembl(s: &str) -> Option<(&str, Species)> {
    let base = s.split('.').next().unwrap_or(s);
    let (prefix, species) = if base.starts_with("ENSMUSG") {
        ("ENSMUSG", Species::Mouse)
    } else if base.starts_with("ENSG") {
        ("ENSG", Species::Human)
    } else {
        return None;
    };
    let digits = &base[prefix.len()..];
    (digits.len() >= 11 && digits.bytes().all(|b| b.is_ascii_digit())).then_some((base, species))
}

/// What a file's genes are matched against: a model's [`TokenDictionary`], or [`EmbeddedGenes`].
pub trait GeneVocabulary: Sync {
    /// The token of an Ensembl gene id (no version suffix), if the vocabulary has it.
    fn token(&self, ensembl_id: &str) -> Option<u32>;
}

impl GeneVocabulary for TokenDictionary {
    fn token(&self, ensembl_id: &str) -> Option<u32> {
        self.get(ensembl_id)
    }
}

/// Every gene of the embedded HGNC and MGI tables as a vocabulary (token = its row; mouse rows
/// have the top bit set): what a file's genes are, without a model's dictionary
/// (`--build-vocab`, the registry's dataset summaries), with no dictionary of ~120k strings to
/// build first.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmbeddedGenes;

impl GeneVocabulary for EmbeddedGenes {
    fn token(&self, ensembl_id: &str) -> Option<u32> {
        let species = table_species(ensembl_id);
        let row = GeneTable::embedded(species).index_of_ensembl(ensembl_id)? as u32;
        Some(if species == Species::Mouse {
            row | 1 << 31
        } else {
            row
        })
    }
}

/// The embedded table that can hold an Ensembl id: the HGNC table lists only `ENSG` ids and the
/// MGI table only `ENSMUSG` ids (checked by a test), so the other table is never loaded for it.
fn table_species(ensembl_id: &str) -> Species {
    if ensembl_id.starts_with("ENSMUSG") {
        Species::Mouse
    } else {
        Species::Human
    }
}

/// Options for [`match_genes`].
#[derive(Debug, Clone, Default)]
pub struct GeneMatchOptions {
    /// Forces the species (`--species`); otherwise detected from Ensembl prefixes or symbol tables.
    pub species: Option<Species>,
    /// Not official: when a gene is not in the vocabulary (or a symbol only exists in the other
    /// species' table), use its unique one-to-one ortholog of the file's species that is. Off by default.
    pub ortholog_fallback: bool,
}

/// How the species was decided.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "how", rename_all = "snake_case")]
pub enum SpeciesEvidence {
    /// Given by the caller.
    Override,
    /// Majority of Ensembl id prefixes (`ENSG` vs `ENSMUSG`).
    EnsemblPrefix {
        /// Human ids.
        human: usize,
        /// Mouse ids.
        mouse: usize,
    },
    /// Majority of names that are current symbols in the HGNC vs MGI table.
    SymbolTables {
        /// Names that are current HGNC symbols.
        human: usize,
        /// Names that are current MGI symbols.
        mouse: usize,
    },
}

/// What matching found. The count fields are filled by the tokenizer's statistics pass.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GeneMatchReport {
    /// Number of gene columns in the file.
    pub genes_in_file: usize,
    /// Which identifiers were used: `"ensembl (names)"`, `"ensembl (ids column)"` or `"symbols"`.
    pub identifier: String,
    /// The species used.
    pub species: Species,
    /// How it was decided.
    pub species_evidence: SpeciesEvidence,
    /// Genes with an Ensembl id (the official pipeline drops the others before QC).
    pub mapped_to_ensembl: usize,
    /// How genes were mapped: `ensembl`, `current`, `previous`, `alias`, `case_insensitive`, `ortholog`.
    pub mapped_by: BTreeMap<String, usize>,
    /// Genes whose token is in the vocabulary.
    pub matched_to_vocabulary: usize,
    /// Extra columns that map to a token already used by another column (the official code keeps both).
    pub duplicate_tokens: usize,
    /// Symbols that are a previous/alias symbol of several genes: (symbol, candidate Ensembl ids).
    pub ambiguous: Vec<(String, Vec<String>)>,
    /// Total counts over all genes and cells read (statistics pass).
    pub total_counts: f64,
    /// Share of `total_counts` carried by genes matched to the vocabulary.
    pub matched_count_share: f64,
    /// The unmatched genes carrying the most counts: (name, counts), at most 20.
    pub top_unmatched: Vec<(String, f64)>,
}

/// The per-column result of matching a file's genes.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneMatch {
    /// Species of the file.
    pub species: Species,
    /// Ensembl id (no version) per column, `None` when unmapped.
    pub ensembl: Vec<Option<String>>,
    /// Symbol per column: the file's own symbol when it names genes by symbol (the official mito
    /// match uses it), else the table's.
    pub symbols: Vec<Option<String>>,
    /// Canonical biotype per column, from the tables.
    pub biotypes: Vec<Option<String>>,
    /// Vocabulary token id per column.
    pub tokens: Vec<Option<u32>>,
    /// The report.
    pub report: GeneMatchReport,
}

fn share_ensembl(v: &[String]) -> (usize, usize) {
    v.iter().fold((0, 0), |(h, m), s| match parse_ensembl(s) {
        Some((_, Species::Human)) => (h + 1, m),
        Some((_, Species::Mouse)) => (h, m + 1),
        _ => (h, m),
    })
}

/// Matches the file's genes to Ensembl ids and vocabulary tokens using the embedded tables.
pub fn match_genes(
    genes: &GeneColumns,
    vocab: &(impl GeneVocabulary + ?Sized),
    opts: &GeneMatchOptions,
) -> Result<GeneMatch, TokenizeError> {
    // Each table is parsed on first use: a human file with `--species human` never loads the
    // MGI table, and only the (non-official) ortholog fallback reads the orthology table.
    match_genes_in(
        genes,
        vocab,
        opts,
        &GeneTable::embedded,
        &Orthologs::embedded,
    )
}

/// [`match_genes`] with explicit tables.
pub fn match_genes_with(
    genes: &GeneColumns,
    vocab: &(impl GeneVocabulary + ?Sized),
    opts: &GeneMatchOptions,
    human: &GeneTable,
    mouse: &GeneTable,
    orthologs: &Orthologs,
) -> Result<GeneMatch, TokenizeError> {
    let tables = |s: Species| if s == Species::Mouse { mouse } else { human };
    match_genes_in(genes, vocab, opts, &tables, &|| orthologs)
}

/// [`match_genes`] with the tables fetched through `tables` and `orthologs` when a step needs them.
fn match_genes_in<'t>(
    genes: &GeneColumns,
    vocab: &(impl GeneVocabulary + ?Sized),
    opts: &GeneMatchOptions,
    tables: &(dyn Fn(Species) -> &'t GeneTable + Sync),
    orthologs: &(dyn Fn() -> &'t Orthologs + Sync),
) -> Result<GeneMatch, TokenizeError> {
    if let Some(species @ Species::Added(_)) = opts.species {
        return Ok(match_added_species(genes, vocab, species));
    }
    let n = genes.names.len();
    let (nh, nm) = share_ensembl(&genes.names);
    let ids_ens = genes
        .ids
        .as_ref()
        .map(|ids| share_ensembl(ids))
        .unwrap_or((0, 0));
    // Which column carries the identifiers.
    let (ens_col, identifier, counts): (Option<&Vec<String>>, &str, (usize, usize)) =
        if 2 * (ids_ens.0 + ids_ens.1) > n {
            (genes.ids.as_ref(), "ensembl (ids column)", ids_ens)
        } else if 2 * (nh + nm) > n {
            (Some(&genes.names), "ensembl (names)", (nh, nm))
        } else {
            (None, "symbols", (0, 0))
        };
    let (species, evidence) = if let Some(s) = opts.species {
        (s, SpeciesEvidence::Override)
    } else if ens_col.is_some() {
        let s = if counts.1 > counts.0 {
            Species::Mouse
        } else {
            Species::Human
        };
        (
            s,
            SpeciesEvidence::EnsemblPrefix {
                human: counts.0,
                mouse: counts.1,
            },
        )
    } else {
        let (human, mouse) = (tables(Species::Human), tables(Species::Mouse));
        let h = genes
            .names
            .par_iter()
            .filter(|g| human.has_symbol(g))
            .count();
        let m = genes
            .names
            .par_iter()
            .filter(|g| mouse.has_symbol(g))
            .count();
        if h == 0 && m == 0 {
            return Err(TokenizeError::Options(format!(
                "cannot tell the species: none of the {n} gene names is an Ensembl id or a current HGNC/MGI symbol \
                 (first names: {:?}); pass the species explicitly (--species human|mouse) and check the gene column",
                genes.names.iter().take(5).collect::<Vec<_>>()
            )));
        }
        let s = if m > h {
            Species::Mouse
        } else {
            Species::Human
        };
        (s, SpeciesEvidence::SymbolTables { human: h, mouse: m })
    };
    let table = tables(species);
    let other = || {
        tables(if species == Species::Mouse {
            Species::Human
        } else {
            Species::Mouse
        })
    };

    let rule_name = |r: SymbolRule| match r {
        SymbolRule::Current => "current",
        SymbolRule::Previous => "previous",
        SymbolRule::Alias => "alias",
        SymbolRule::CaseInsensitive => "case_insensitive",
    };
    // Columns match independently: across rayon's threads (natively; one thread in wasm).
    let columns: Vec<ColumnMatch> = (0..n)
        .into_par_iter()
        .with_min_len(256)
        .map(|j| {
            let name = &genes.names[j];
            let mut c = ColumnMatch::default();
            if let Some(col) = ens_col {
                if let Some((base, _)) = parse_ensembl(&col[j]) {
                    c.id = Some(base.to_string());
                    c.how = "ensembl";
                }
                if ens_col != Some(&genes.names) {
                    c.symbol = Some(name.clone());
                }
            } else {
                c.symbol = Some(name.clone());
                match table.resolve_symbol(name) {
                    SymbolHit::Found(i, rule) => {
                        c.id = Some(table.record(i).ensembl_id.to_string());
                        c.how = rule_name(rule);
                    }
                    SymbolHit::Ambiguous(a) => c.ambiguous = Some(a),
                    SymbolHit::Missing if opts.ortholog_fallback => {
                        if let SymbolHit::Found(i, _) = other().resolve_symbol(name)
                            && let Some(o) = orthologs().counterpart(other().record(i).ensembl_id)
                        {
                            c.id = Some(o.to_string());
                            c.how = "ortholog";
                        }
                    }
                    SymbolHit::Missing => {}
                }
            }
            if let Some(e) = &c.id
                && vocab.token(e).is_none()
                && opts.ortholog_fallback
                && let Some(o) = orthologs().counterpart(e)
                && vocab.token(o).is_some()
            {
                c.id = Some(o.to_string());
                c.how = "ortholog";
            }
            if let Some(e) = &c.id {
                let rec = tables(table_species(e)).by_ensembl(e);
                if c.symbol.is_none() {
                    c.symbol = rec.map(|r| r.symbol.to_string());
                }
                c.biotype = rec.map(|r| r.biotype.to_string());
                c.token = vocab.token(e);
            }
            c
        })
        .collect();
    let mut ensembl = Vec::with_capacity(n);
    let mut symbols = Vec::with_capacity(n);
    let mut biotypes = Vec::with_capacity(n);
    let mut tokens = Vec::with_capacity(n);
    let mut mapped_by: BTreeMap<String, usize> = BTreeMap::new();
    let mut ambiguous = Vec::new();
    for (c, name) in columns.into_iter().zip(&genes.names) {
        if c.id.is_some() {
            *mapped_by.entry(c.how.to_string()).or_default() += 1;
        }
        if let Some(a) = c.ambiguous {
            ambiguous.push((name.clone(), a));
        }
        ensembl.push(c.id);
        symbols.push(c.symbol);
        biotypes.push(c.biotype);
        tokens.push(c.token);
    }
    let duplicate_tokens = duplicate_tokens(&tokens);
    let report = GeneMatchReport {
        genes_in_file: n,
        identifier: identifier.to_string(),
        species,
        species_evidence: evidence,
        mapped_to_ensembl: ensembl.iter().filter(|e| e.is_some()).count(),
        mapped_by,
        matched_to_vocabulary: tokens.iter().filter(|t| t.is_some()).count(),
        duplicate_tokens,
        ambiguous,
        total_counts: 0.0,
        matched_count_share: 0.0,
        top_unmatched: Vec::new(),
    };
    Ok(GeneMatch {
        species,
        ensembl,
        symbols,
        biotypes,
        tokens,
        report,
    })
}

/// Columns whose token an earlier column already has (the report's `duplicate_tokens`).
fn duplicate_tokens(tokens: &[Option<u32>]) -> usize {
    let mut seen = std::collections::HashSet::new();
    tokens
        .iter()
        .flatten()
        .filter(|t| !seen.insert(**t))
        .count()
}

/// One column's match, found on its own (see [`match_genes_in`]).
#[derive(Default)]
struct ColumnMatch {
    id: Option<String>,
    /// How `id` was found (the report's `mapped_by`).
    how: &'static str,
    symbol: Option<String>,
    biotype: Option<String>,
    token: Option<u32>,
    /// The candidates of an ambiguous symbol.
    ambiguous: Option<Vec<String>>,
}

/// Genes of a species added to a checkpoint (`extend-vocab --add-species`): no nomenclature
/// table ships for it, so its genes are matched to the vocabulary by their own identifiers
/// (the ids column when the file has one, else the names; an Ensembl-style `.N` version suffix
/// is dropped), exactly as extend-vocab added them.
fn match_added_species(
    genes: &GeneColumns,
    vocab: &(impl GeneVocabulary + ?Sized),
    species: Species,
) -> GeneMatch {
    let strip = |s: &str| -> String {
        match s.rsplit_once('.') {
            Some((base, v)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                base.into()
            }
            _ => s.into(),
        }
    };
    let lookup = |col: &[String]| -> Vec<Option<u32>> {
        col.iter().map(|g| vocab.token(&strip(g))).collect()
    };
    let by_names = lookup(&genes.names);
    let by_ids = genes.ids.as_deref().map(lookup);
    let hits = |v: &[Option<u32>]| v.iter().filter(|t| t.is_some()).count();
    let (tokens, col, identifier) = match by_ids {
        Some(ids) if hits(&ids) > hits(&by_names) => (
            ids,
            genes.ids.as_ref().expect("ids"),
            "vocabulary tokens (ids column)",
        ),
        _ => (by_names, &genes.names, "vocabulary tokens (names)"),
    };
    let n = genes.names.len();
    let ensembl: Vec<Option<String>> = tokens
        .iter()
        .zip(col)
        .map(|(t, g)| t.map(|_| strip(g)))
        .collect();
    let duplicate_tokens = duplicate_tokens(&tokens);
    let matched = hits(&tokens);
    let report = GeneMatchReport {
        genes_in_file: n,
        identifier: identifier.to_string(),
        species,
        species_evidence: SpeciesEvidence::Override,
        mapped_to_ensembl: matched,
        mapped_by: BTreeMap::from([("vocabulary".to_string(), matched)]),
        matched_to_vocabulary: matched,
        duplicate_tokens,
        ambiguous: Vec::new(),
        total_counts: 0.0,
        matched_count_share: 0.0,
        top_unmatched: Vec::new(),
    };
    GeneMatch {
        species,
        ensembl,
        symbols: genes.names.iter().cloned().map(Some).collect(),
        biotypes: vec![None; n],
        tokens,
        report,
    }
}

impl GeneMatch {
    /// This match against `vocab`, a dictionary made of this match's own genes (those with a
    /// token; `--build-vocab`): what [`match_genes`] with `vocab` gives, without resolving
    /// every name again (a fifth of tokenizing a small file). A gene with a token here keeps
    /// one exactly when `vocab` has it: no other gene can enter, since the ortholog fallback
    /// only replaces genes a vocabulary lacks, and those had no token here either.
    pub fn renumbered(mut self, vocab: &(impl GeneVocabulary + ?Sized)) -> Self {
        for (t, e) in self.tokens.iter_mut().zip(&self.ensembl) {
            *t = t.and(e.as_deref().and_then(|e| vocab.token(e)));
        }
        self.report.duplicate_tokens = duplicate_tokens(&self.tokens);
        self.report.matched_to_vocabulary = self.tokens.iter().flatten().count();
        self
    }

    /// Fills the count-based report fields: `total` counts, `matched` of them on columns with
    /// a token, and per-column totals read for the columns without one (`names` are the file's
    /// gene names; an empty `unmatched` means none had a count).
    pub fn record_counts(&mut self, total: f64, matched: f64, unmatched: &[f64], names: &[String]) {
        let mut un: Vec<(String, f64)> = unmatched
            .iter()
            .zip(&self.tokens)
            .zip(names)
            .filter(|((c, t), _)| t.is_none() && **c > 0.0)
            .map(|((c, _), n)| (n.clone(), *c))
            .collect();
        un.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        un.truncate(20);
        self.report.total_counts = total;
        self.report.matched_count_share = if total > 0.0 { matched / total } else { 0.0 };
        self.report.top_unmatched = un;
    }
}
