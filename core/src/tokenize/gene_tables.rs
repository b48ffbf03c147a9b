//! Gene nomenclature tables (and the orthology asset that [`super::orthologs`] reads), embedded
//! in the crate so that native and wasm builds work without the developer data bundle.
//!
//! The assets in `core/assets/` are derived from `shared/data/genes/` by
//! [`super::assets_build::build_assets`]
//! (run `cargo run -p genecompass-core --example build_gene_assets -- <shared/data/genes> core/assets`);
//! see `core/assets/README.md` for provenance and licences.

use super::TokenizeError;
use super::key_index::{KeyIndex, key_hash};
pub use super::orthologs::{OrthologPair, Orthologs};
use crate::cells::Species;
use std::borrow::Cow;
use std::io::Read;
use std::sync::OnceLock;

/// An embedded table: its text, inflated by `build.rs` for native builds, gzip'd in the
/// browser's bundle (a smaller download; inflated once, on first use).
pub(super) struct Embedded {
    #[cfg(not(target_arch = "wasm32"))]
    text: &'static str,
    #[cfg(target_arch = "wasm32")]
    gz: &'static [u8],
    pub(super) source: &'static str,
}

macro_rules! embedded {
    ($file:literal) => {
        Embedded {
            #[cfg(not(target_arch = "wasm32"))]
            text: include_str!(concat!(env!("OUT_DIR"), "/", $file)),
            #[cfg(target_arch = "wasm32")]
            gz: include_bytes!(concat!("../../assets/", $file, ".gz")),
            source: concat!("assets/", $file, ".gz"),
        }
    };
}

static HUMAN: Embedded = embedded!("human_genes.tsv");
static MOUSE: Embedded = embedded!("mouse_genes.tsv");
pub(super) static ORTHO: Embedded = embedded!("human_mouse_orthologs.tsv");

impl Embedded {
    pub(super) fn text(&self) -> Cow<'static, str> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            Cow::Borrowed(self.text)
        }
        #[cfg(target_arch = "wasm32")]
        {
            Cow::Owned(gunzip(self.gz, self.source).expect("embedded tables are valid gzip"))
        }
    }
}

/// One gene of a nomenclature table, borrowed from the table's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeneRecord<'a> {
    /// Ensembl gene id without version (`ENSG…` / `ENSMUSG…`).
    pub ensembl_id: &'a str,
    /// Current approved symbol (HGNC / MGI).
    pub symbol: &'a str,
    /// Canonical biotype (`protein_coding`, `miRNA`, `lncRNA`, …).
    pub biotype: &'a str,
    previous: &'a str,
    aliases: &'a str,
}

impl<'a> GeneRecord<'a> {
    /// Previous symbols.
    pub fn previous(self) -> impl Iterator<Item = &'a str> + 'a {
        split_list(self.previous)
    }

    /// Alias symbols.
    pub fn aliases(self) -> impl Iterator<Item = &'a str> + 'a {
        split_list(self.aliases)
    }
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

/// A byte range of a table's text.
pub(super) type Span = (u32, u32);

/// The fields of one record, as ranges of the table's text.
#[derive(Debug, Clone, Copy)]
struct RecordSpans {
    ensembl_id: Span,
    symbol: Span,
    previous: Span,
    aliases: Span,
    biotype: Span,
}

/// A species' nomenclature table with symbol and Ensembl lookups.
///
/// The decompressed TSV is kept as one string and records are ranges of it; the lookups are
/// [`KeyIndex`]es over those ranges, so loading a table allocates no per-gene strings.
#[derive(Debug, Clone, Default)]
pub struct GeneTable {
    text: Cow<'static, str>,
    records: Vec<RecordSpans>,
    by_ensembl: KeyIndex,
    by_symbol: KeyIndex,
    /// The fallback lookups, built on first use: most files resolve by Ensembl id or current
    /// symbol.
    fallback: OnceLock<Fallback>,
}

/// Previous-symbol, alias and upper-cased-symbol lookups.
#[derive(Debug, Clone, Default)]
struct Fallback {
    /// (previous symbol, record) pairs and their index.
    previous: Vec<(Span, u32)>,
    by_previous: KeyIndex,
    /// (alias, record) pairs and their index.
    aliases: Vec<(Span, u32)>,
    by_alias: KeyIndex,
    /// Records by their upper-cased current symbol.
    by_upper: KeyIndex,
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

fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split('|').map(str::trim).filter(|x| !x.is_empty())
}

/// The range `part` occupies in `text` (`part` must be a sub-slice of it).
fn span_in(text: &str, part: &str) -> Span {
    let start = part.as_ptr() as usize - text.as_ptr() as usize;
    debug_assert!(start + part.len() <= text.len());
    (start as u32, (start + part.len()) as u32)
}

/// Splits the data rows of a TSV asset (header skipped) into `N`-field spans; extra fields are
/// ignored, missing ones are an error naming the row.
pub(super) fn tsv_rows<const N: usize>(
    text: &str,
    source: &str,
) -> Result<Vec<[Span; N]>, TokenizeError> {
    if text.len() >= u32::MAX as usize {
        return Err(TokenizeError::Invalid {
            file: source.into(),
            message: "table is larger than 4 GiB".into(),
        });
    }
    let mut rows = Vec::with_capacity(text.len() / 48);
    for line in text.lines().skip(1) {
        let mut row = [(0u32, 0u32); N];
        let mut fields = line.split('\t');
        for (k, slot) in row.iter_mut().enumerate() {
            let f = fields.next().ok_or_else(|| TokenizeError::Invalid {
                file: source.into(),
                message: format!("row {line:?} has {k} columns, expected {N}"),
            })?;
            *slot = span_in(text, f);
        }
        rows.push(row);
    }
    Ok(rows)
}

impl GeneTable {
    fn str(&self, (a, b): Span) -> &str {
        &self.text[a as usize..b as usize]
    }

    /// Parses the asset format: gzip'd TSV with header `ensembl_id symbol prev_symbols alias_symbols biotype`.
    pub fn from_asset_gz(bytes: &[u8], source: &str) -> Result<Self, TokenizeError> {
        Self::from_tsv(gunzip(bytes, source)?.into(), source)
    }

    /// Parses the asset format's text (see [`Self::from_asset_gz`]).
    pub fn from_tsv(text: Cow<'static, str>, source: &str) -> Result<Self, TokenizeError> {
        let records: Vec<RecordSpans> = tsv_rows::<5>(&text, source)?
            .into_iter()
            .map(|[e, s, p, a, b]| RecordSpans {
                ensembl_id: e,
                symbol: s,
                previous: p,
                aliases: a,
                biotype: b,
            })
            .collect();
        let mut t = GeneTable {
            text,
            records,
            ..Default::default()
        };
        t.by_ensembl = KeyIndex::build(t.records.iter().map(|r| key_hash(t.str(r.ensembl_id))));
        t.by_symbol = KeyIndex::build(t.records.iter().map(|r| key_hash(t.str(r.symbol))));
        Ok(t)
    }

    fn fallback(&self) -> &Fallback {
        self.fallback.get_or_init(|| {
            let mut f = Fallback::default();
            let mut upper = String::new();
            let mut upper_hashes = Vec::with_capacity(self.records.len());
            for (i, r) in self.records.iter().enumerate() {
                let i = i as u32;
                for p in split_list(self.str(r.previous)) {
                    f.previous.push((span_in(&self.text, p), i));
                }
                for a in split_list(self.str(r.aliases)) {
                    f.aliases.push((span_in(&self.text, a), i));
                }
                upper.clear();
                upper.extend(self.str(r.symbol).chars().flat_map(char::to_uppercase));
                upper_hashes.push(key_hash(&upper));
            }
            f.by_previous = KeyIndex::build(f.previous.iter().map(|&(s, _)| key_hash(self.str(s))));
            f.by_alias = KeyIndex::build(f.aliases.iter().map(|&(s, _)| key_hash(self.str(s))));
            f.by_upper = KeyIndex::build(upper_hashes.into_iter());
            f
        })
    }

    /// Starts parsing the embedded table of `species` (both when `None`) and building its
    /// fallback lookups on its own thread (tens of milliseconds), so that a command can open
    /// its input meanwhile; a first use that comes too early waits for the parse instead of
    /// repeating it.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn warm_embedded(species: Option<Species>) {
        for s in [Species::Human, Species::Mouse] {
            if species.is_none_or(|x| x == s) {
                std::thread::spawn(move || {
                    // The symbol fallbacks too: a file with an outdated symbol or an alias
                    // would build them on the matching thread (a twentieth of a small file).
                    let _ = GeneTable::embedded(s).fallback();
                });
            }
        }
    }

    /// The embedded table of a species (parsed once, on first use).
    pub fn embedded(species: Species) -> &'static GeneTable {
        static HUMAN_TABLE: OnceLock<GeneTable> = OnceLock::new();
        static MOUSE_TABLE: OnceLock<GeneTable> = OnceLock::new();
        match species {
            Species::Human => HUMAN_TABLE.get_or_init(|| {
                Self::from_tsv(HUMAN.text(), HUMAN.source).expect("embedded human table is valid")
            }),
            Species::Added(_) => {
                static EMPTY: OnceLock<GeneTable> = OnceLock::new();
                EMPTY.get_or_init(GeneTable::default)
            }
            Species::Mouse => MOUSE_TABLE.get_or_init(|| {
                Self::from_tsv(MOUSE.text(), MOUSE.source).expect("embedded mouse table is valid")
            }),
        }
    }

    /// Number of genes.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when the table has no genes (species added to a checkpoint have none).
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The gene at `index` (as returned by [`Self::resolve_symbol`]).
    pub fn record(&self, index: usize) -> GeneRecord<'_> {
        let r = &self.records[index];
        GeneRecord {
            ensembl_id: self.str(r.ensembl_id),
            symbol: self.str(r.symbol),
            biotype: self.str(r.biotype),
            previous: self.str(r.previous),
            aliases: self.str(r.aliases),
        }
    }

    /// The genes, in table order.
    pub fn records(&self) -> impl ExactSizeIterator<Item = GeneRecord<'_>> + '_ {
        (0..self.records.len()).map(|i| self.record(i))
    }

    /// The record of an Ensembl id (version suffix must already be stripped).
    pub fn by_ensembl(&self, id: &str) -> Option<GeneRecord<'_>> {
        self.index_of_ensembl(id).map(|i| self.record(i))
    }

    /// The row of an Ensembl id (its first, if the table lists it twice).
    pub fn index_of_ensembl(&self, id: &str) -> Option<usize> {
        self.by_ensembl
            .find(key_hash(id), |e| {
                self.str(self.records[e as usize].ensembl_id) == id
            })
            .next()
            .map(|e| e as usize)
    }

    /// True when `symbol` is a current symbol of this table.
    pub fn has_symbol(&self, symbol: &str) -> bool {
        self.current(symbol).next().is_some()
    }

    fn current<'a>(&'a self, symbol: &'a str) -> impl Iterator<Item = u32> + 'a {
        self.by_symbol.find(key_hash(symbol), move |e| {
            self.str(self.records[e as usize].symbol) == symbol
        })
    }

    /// The hit for the records `found` (in table order): the first when they all name one
    /// Ensembl id, else the distinct ids; `None` when there are none.
    fn hit(&self, mut found: impl Iterator<Item = u32>, rule: SymbolRule) -> Option<SymbolHit> {
        let first = found.next()? as usize;
        let id = self.record(first).ensembl_id;
        let mut others: Vec<&str> = found
            .map(|r| self.record(r as usize).ensembl_id)
            .filter(|e| *e != id)
            .collect();
        if others.is_empty() {
            return Some(SymbolHit::Found(first, rule));
        }
        others.push(id);
        others.sort_unstable();
        others.dedup();
        Some(SymbolHit::Ambiguous(
            others.into_iter().map(String::from).collect(),
        ))
    }

    /// Resolves a symbol: current symbol, then previous, then alias, then case-insensitive current.
    /// A previous/alias symbol shared by several genes is [`SymbolHit::Ambiguous`] (never guessed).
    pub fn resolve_symbol(&self, symbol: &str) -> SymbolHit {
        if let Some(h) = self.hit(self.current(symbol), SymbolRule::Current) {
            return h;
        }
        let f = self.fallback();
        let h = key_hash(symbol);
        let listed = |list: &'_ [(Span, u32)], index: &'_ KeyIndex| -> Vec<u32> {
            index
                .find(h, |e| self.str(list[e as usize].0) == symbol)
                .map(|e| list[e as usize].1)
                .collect()
        };
        if let Some(h) = self.hit(
            listed(&f.previous, &f.by_previous).into_iter(),
            SymbolRule::Previous,
        ) {
            return h;
        }
        if let Some(h) = self.hit(
            listed(&f.aliases, &f.by_alias).into_iter(),
            SymbolRule::Alias,
        ) {
            return h;
        }
        let upper = symbol.to_uppercase();
        let same_upper = |e: u32| {
            self.str(self.records[e as usize].symbol)
                .chars()
                .flat_map(char::to_uppercase)
                .eq(upper.chars())
        };
        self.hit(
            f.by_upper.find(key_hash(&upper), same_upper),
            SymbolRule::CaseInsensitive,
        )
        .unwrap_or(SymbolHit::Missing)
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
            ensembl: GeneTable::embedded(*species)
                .record(*i)
                .ensembl_id
                .to_string(),
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
