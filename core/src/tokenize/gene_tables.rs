//! Gene nomenclature and orthology tables, embedded in the crate so that native and wasm builds
//! work without the developer data bundle.
//!
//! The assets in `core/assets/` are derived from `shared/data/genes/` by
//! [`super::assets_build::build_assets`]
//! (run `cargo run -p genecompass-core --example build_gene_assets -- <shared/data/genes> core/assets`);
//! see `core/assets/README.md` for provenance and licences.

use super::TokenizeError;
use super::fast_hash::{FastMap, fast_map};
use crate::cells::Species;
use std::io::Read;
use std::sync::OnceLock;

static HUMAN_GZ: &[u8] = include_bytes!("../../assets/human_genes.tsv.gz");
static MOUSE_GZ: &[u8] = include_bytes!("../../assets/mouse_genes.tsv.gz");
static ORTHO_GZ: &[u8] = include_bytes!("../../assets/human_mouse_orthologs.tsv.gz");

/// One gene of a nomenclature table.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneRecord {
    /// Ensembl gene id without version (`ENSG…` / `ENSMUSG…`).
    pub ensembl_id: String,
    /// Current approved symbol (HGNC / MGI).
    pub symbol: String,
    /// Previous symbols.
    pub previous: Vec<String>,
    /// Alias symbols.
    pub aliases: Vec<String>,
    /// Canonical biotype (`protein_coding`, `miRNA`, `lncRNA`, …).
    pub biotype: String,
}

/// How a symbol was resolved by [`GeneTable::resolve_symbol`].
#[derive(Debug, Clone, PartialEq)]
pub enum SymbolHit {
    /// Found, with the rule that matched.
    Found(usize, SymbolRule),
    /// Several genes carry this previous/alias symbol (never guessed); their Ensembl ids.
    Ambiguous(Vec<String>),
    /// Not in the table.
    Missing,
}

/// The rule that resolved a symbol, in the order they are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SymbolRule {
    /// Current approved symbol.
    Current,
    /// A previous symbol of exactly one gene.
    Previous,
    /// An alias of exactly one gene.
    Alias,
    /// Current symbol, compared case-insensitively (unique).
    CaseInsensitive,
}

/// A species' nomenclature table with symbol and Ensembl lookups.
#[derive(Debug, Clone, Default)]
pub struct GeneTable {
    /// The genes.
    pub records: Vec<GeneRecord>,
    by_ensembl: FastMap<String, usize>,
    by_symbol: FastMap<String, Vec<usize>>,
    /// The fallback lookups, built on first use: most files resolve by Ensembl id or current
    /// symbol, and building these for ~100k genes was most of a small file's start-up.
    fallback: OnceLock<Fallback>,
}

/// Previous-symbol, alias and upper-cased-symbol lookups.
#[derive(Debug, Clone, Default)]
struct Fallback {
    by_previous: FastMap<String, Vec<usize>>,
    by_alias: FastMap<String, Vec<usize>>,
    by_upper: FastMap<String, Vec<usize>>,
}

pub(crate) fn gunzip(bytes: &[u8], source: &str) -> Result<String, TokenizeError> {
    if bytes.is_empty() {
        return Ok(String::new());
    }
    let mut s = String::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_string(&mut s)
        .map_err(|e| TokenizeError::Invalid {
            file: source.into(),
            message: format!("cannot decompress gzip text: {e}"),
        })?;
    Ok(s)
}

fn split_list(s: &str) -> Vec<String> {
    s.split('|')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

impl GeneTable {
    /// Builds the lookups over `records`.
    pub fn new(records: Vec<GeneRecord>) -> Self {
        let n = records.len();
        let mut t = GeneTable {
            records,
            by_ensembl: fast_map(n),
            by_symbol: fast_map(n),
            fallback: OnceLock::new(),
        };
        for (i, r) in t.records.iter().enumerate() {
            t.by_ensembl.entry(r.ensembl_id.clone()).or_insert(i);
            t.by_symbol.entry(r.symbol.clone()).or_default().push(i);
        }
        t
    }

    fn fallback(&self) -> &Fallback {
        self.fallback.get_or_init(|| {
            let n = self.records.len();
            let mut f = Fallback {
                by_previous: fast_map(n),
                by_alias: fast_map(2 * n),
                by_upper: fast_map(n),
            };
            for (i, r) in self.records.iter().enumerate() {
                f.by_upper
                    .entry(r.symbol.to_uppercase())
                    .or_default()
                    .push(i);
                for p in &r.previous {
                    f.by_previous.entry(p.clone()).or_default().push(i);
                }
                for a in &r.aliases {
                    f.by_alias.entry(a.clone()).or_default().push(i);
                }
            }
            f
        })
    }

    /// Parses the asset format: gzip'd TSV with header `ensembl_id symbol prev_symbols alias_symbols biotype`.
    pub fn from_asset_gz(bytes: &[u8], source: &str) -> Result<Self, TokenizeError> {
        let text = gunzip(bytes, source)?;
        let mut records = Vec::new();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() < 5 {
                return Err(TokenizeError::Invalid {
                    file: source.into(),
                    message: format!("row {line:?} has {} columns, expected 5", f.len()),
                });
            }
            records.push(GeneRecord {
                ensembl_id: f[0].into(),
                symbol: f[1].into(),
                previous: split_list(f[2]),
                aliases: split_list(f[3]),
                biotype: f[4].into(),
            });
        }
        Ok(Self::new(records))
    }

    /// Starts parsing the embedded human and mouse tables and the orthologs on their own
    /// threads (about a third of a second of work), so that a command can open its input
    /// meanwhile; a first use that comes too early waits for the parse instead of repeating it.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn warm_embedded() {
        std::thread::spawn(|| {
            GeneTable::embedded(Species::Human);
        });
        std::thread::spawn(|| {
            GeneTable::embedded(Species::Mouse);
        });
        std::thread::spawn(|| {
            Orthologs::embedded();
        });
    }

    /// The embedded table of a species (parsed once, on first use).
    pub fn embedded(species: Species) -> &'static GeneTable {
        static HUMAN: OnceLock<GeneTable> = OnceLock::new();
        static MOUSE: OnceLock<GeneTable> = OnceLock::new();
        match species {
            Species::Human => HUMAN.get_or_init(|| {
                Self::from_asset_gz(HUMAN_GZ, "assets/human_genes.tsv.gz")
                    .expect("embedded human table is valid")
            }),
            Species::Added(_) => {
                static EMPTY: OnceLock<GeneTable> = OnceLock::new();
                EMPTY.get_or_init(GeneTable::default)
            }
            Species::Mouse => MOUSE.get_or_init(|| {
                Self::from_asset_gz(MOUSE_GZ, "assets/mouse_genes.tsv.gz")
                    .expect("embedded mouse table is valid")
            }),
        }
    }

    /// The record of an Ensembl id (version suffix must already be stripped).
    pub fn by_ensembl(&self, id: &str) -> Option<&GeneRecord> {
        self.by_ensembl.get(id).map(|&i| &self.records[i])
    }

    /// True when `symbol` is a current symbol of this table.
    pub fn has_symbol(&self, symbol: &str) -> bool {
        self.by_symbol.contains_key(symbol)
    }

    /// Resolves a symbol: current symbol, then previous, then alias, then case-insensitive current.
    /// A previous/alias symbol shared by several genes is [`SymbolHit::Ambiguous`] (never guessed).
    pub fn resolve_symbol(&self, symbol: &str) -> SymbolHit {
        let ids = |v: &Vec<usize>| -> Vec<String> {
            let mut ids: Vec<String> = v
                .iter()
                .map(|&i| self.records[i].ensembl_id.clone())
                .collect();
            ids.sort();
            ids.dedup();
            ids
        };
        let hit = |v: &Vec<usize>, rule: SymbolRule| {
            let distinct = ids(v);
            if distinct.len() == 1 {
                SymbolHit::Found(v[0], rule)
            } else {
                SymbolHit::Ambiguous(distinct)
            }
        };
        if let Some(v) = self.by_symbol.get(symbol) {
            return hit(v, SymbolRule::Current);
        }
        let f = self.fallback();
        if let Some(v) = f.by_previous.get(symbol) {
            return hit(v, SymbolRule::Previous);
        }
        if let Some(v) = f.by_alias.get(symbol) {
            return hit(v, SymbolRule::Alias);
        }
        if let Some(v) = f.by_upper.get(&symbol.to_uppercase()) {
            return hit(v, SymbolRule::CaseInsensitive);
        }
        SymbolHit::Missing
    }
}

/// Human↔mouse ortholog pairs (HGNC HCOP ∪ Ensembl BioMart).
#[derive(Debug, Clone, Default)]
pub struct Orthologs {
    /// `(human ENSG, mouse ENSMUSG, n HCOP sources (0 = BioMart only), BioMart homology type or "")`.
    pub pairs: Vec<(String, String, u8, String)>,
    human_to_mouse: FastMap<String, Vec<usize>>,
    mouse_to_human: FastMap<String, Vec<usize>>,
}

impl Orthologs {
    /// Builds the lookups over pairs.
    pub fn new(pairs: Vec<(String, String, u8, String)>) -> Self {
        let n = pairs.len();
        let mut o = Orthologs {
            pairs,
            human_to_mouse: fast_map(n),
            mouse_to_human: fast_map(n),
        };
        for (i, p) in o.pairs.iter().enumerate() {
            o.human_to_mouse.entry(p.0.clone()).or_default().push(i);
            o.mouse_to_human.entry(p.1.clone()).or_default().push(i);
        }
        o
    }

    /// Parses the asset format (gzip'd TSV `human mouse hcop_sources biomart_type`).
    pub fn from_asset_gz(bytes: &[u8], source: &str) -> Result<Self, TokenizeError> {
        let text = gunzip(bytes, source)?;
        let mut pairs = Vec::new();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() < 4 {
                return Err(TokenizeError::Invalid {
                    file: source.into(),
                    message: format!("row {line:?} has {} columns, expected 4", f.len()),
                });
            }
            pairs.push((
                f[0].into(),
                f[1].into(),
                f[2].parse().unwrap_or(0),
                f[3].into(),
            ));
        }
        Ok(Self::new(pairs))
    }

    /// The embedded table (parsed once).
    pub fn embedded() -> &'static Orthologs {
        static O: OnceLock<Orthologs> = OnceLock::new();
        O.get_or_init(|| {
            Self::from_asset_gz(ORTHO_GZ, "assets/human_mouse_orthologs.tsv.gz")
                .expect("embedded orthologs are valid")
        })
    }

    /// Pairs that are one-to-one: BioMart `ortholog_one2one`, or each id in exactly one pair of the table.
    pub fn one_to_one(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().filter_map(move |p| {
            let unique =
                self.human_to_mouse[&p.0].len() == 1 && self.mouse_to_human[&p.1].len() == 1;
            (unique || p.3 == "ortholog_one2one").then_some((p.0.as_str(), p.1.as_str()))
        })
    }

    /// The unique one-to-one ortholog of a gene in the other species, if any.
    pub fn counterpart(&self, ensembl_id: &str) -> Option<&str> {
        let (map, human) = if ensembl_id.starts_with("ENSMUSG") {
            (&self.mouse_to_human, false)
        } else {
            (&self.human_to_mouse, true)
        };
        let idx = map.get(ensembl_id)?;
        let pick = |i: usize| {
            if human {
                self.pairs[i].1.as_str()
            } else {
                self.pairs[i].0.as_str()
            }
        };
        if idx.len() == 1 {
            let other = pick(idx[0]);
            let back = if human {
                &self.mouse_to_human
            } else {
                &self.human_to_mouse
            };
            if back.get(other).map(Vec::len) == Some(1)
                || self.pairs[idx[0]].3 == "ortholog_one2one"
            {
                return Some(other);
            }
        }
        let o2o: Vec<usize> = idx
            .iter()
            .copied()
            .filter(|&i| self.pairs[i].3 == "ortholog_one2one")
            .collect();
        (o2o.len() == 1).then(|| pick(o2o[0]))
    }
}

pub use super::assets_build::build_assets;

/// How a user-typed gene name resolved ([`resolve_gene_name`]).
#[derive(Debug, Clone, PartialEq)]
pub enum NameHit {
    /// An Ensembl gene id (version suffix dropped).
    Ensembl(String),
    /// A symbol of `species`' table, resolved by `rule`.
    Symbol {
        /// Its Ensembl id.
        ensembl: String,
        /// The table it was found in.
        species: Species,
        /// Current, previous or alias symbol.
        rule: SymbolRule,
    },
    /// A previous or alias symbol of several genes (never guessed): their Ensembl ids.
    Ambiguous(Vec<String>),
    /// Neither an Ensembl id nor a known symbol.
    Unknown,
}

/// Resolves a gene name as users type it, with the embedded HGNC/MGI tables: an Ensembl id, else
/// a current symbol of either species (`prefer`'s table first), else a previous or alias symbol,
/// else an ambiguity. The one rule shared by the CLI, the browser and `extend-vocab`.
pub fn resolve_gene_name(name: &str, prefer: Option<Species>) -> NameHit {
    if let Some((base, _)) = super::genes::parse_ensembl(name) {
        return NameHit::Ensembl(base.to_string());
    }
    let mut order = vec![Species::Human, Species::Mouse];
    if let Some(p) = prefer {
        order.retain(|&o| o != p);
        order.insert(0, p);
    }
    let hits: Vec<(Species, SymbolHit)> = order
        .into_iter()
        .map(|s| (s, GeneTable::embedded(s).resolve_symbol(name)))
        .collect();
    let found = hits
        .iter()
        .find(|(_, h)| matches!(h, SymbolHit::Found(_, SymbolRule::Current)))
        .or_else(|| hits.iter().find(|(_, h)| matches!(h, SymbolHit::Found(..))));
    if let Some((species, SymbolHit::Found(i, rule))) = found {
        return NameHit::Symbol {
            ensembl: GeneTable::embedded(*species).records[*i].ensembl_id.clone(),
            species: *species,
            rule: *rule,
        };
    }
    match hits
        .into_iter()
        .find(|(_, h)| matches!(h, SymbolHit::Ambiguous(_)))
    {
        Some((_, SymbolHit::Ambiguous(ids))) => NameHit::Ambiguous(ids),
        _ => NameHit::Unknown,
    }
}
