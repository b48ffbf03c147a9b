//! Human↔mouse orthologs (HGNC HCOP ∪ Ensembl BioMart), embedded beside the gene tables: the
//! homolog map of a vocabulary, the (non-official) ortholog fallback of gene matching, and
//! mouse GRN targets read through them.

use super::TokenizeError;
use super::gene_tables::{ORTHO, Span, gunzip, tsv_rows};
use super::key_index::{KeyIndex, key_hash};
use std::borrow::Cow;
use std::sync::OnceLock;

/// One human↔mouse ortholog pair of [`Orthologs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrthologPair<'a> {
    /// Human Ensembl gene id.
    pub human: &'a str,
    /// Mouse Ensembl gene id.
    pub mouse: &'a str,
    /// Number of HCOP sources supporting the pair (0 = BioMart only).
    pub hcop_sources: u8,
    /// BioMart homology type (`ortholog_one2one`, …) or "".
    pub biomart_type: &'a str,
}

#[derive(Debug, Clone, Copy)]
struct PairSpans {
    human: Span,
    mouse: Span,
    hcop_sources: u8,
    biomart_type: Span,
}

/// Human↔mouse ortholog pairs (HGNC HCOP ∪ Ensembl BioMart).
#[derive(Debug, Clone, Default)]
pub struct Orthologs {
    text: Cow<'static, str>,
    pairs: Vec<PairSpans>,
    human_to_mouse: KeyIndex,
    mouse_to_human: KeyIndex,
}

const ONE_TO_ONE: &str = "ortholog_one2one";

impl Orthologs {
    fn str(&self, (a, b): Span) -> &str {
        &self.text[a as usize..b as usize]
    }

    /// Parses the asset format (gzip'd TSV `human mouse hcop_sources biomart_type`).
    pub fn from_asset_gz(bytes: &[u8], source: &str) -> Result<Self, TokenizeError> {
        Self::from_tsv(gunzip(bytes, source)?.into(), source)
    }

    /// Parses the asset format's text (see [`Self::from_asset_gz`]).
    pub fn from_tsv(text: Cow<'static, str>, source: &str) -> Result<Self, TokenizeError> {
        let pairs: Vec<PairSpans> = tsv_rows::<4>(&text, source)?
            .into_iter()
            .map(|[h, m, n, t]| PairSpans {
                human: h,
                mouse: m,
                hcop_sources: text[n.0 as usize..n.1 as usize].parse().unwrap_or(0),
                biomart_type: t,
            })
            .collect();
        let mut o = Orthologs {
            text,
            pairs,
            ..Default::default()
        };
        o.human_to_mouse = KeyIndex::build(o.pairs.iter().map(|p| key_hash(o.str(p.human))));
        o.mouse_to_human = KeyIndex::build(o.pairs.iter().map(|p| key_hash(o.str(p.mouse))));
        Ok(o)
    }

    /// The embedded table (parsed once).
    pub fn embedded() -> &'static Orthologs {
        static O: OnceLock<Orthologs> = OnceLock::new();
        O.get_or_init(|| {
            Self::from_tsv(ORTHO.text(), ORTHO.source).expect("embedded orthologs are valid")
        })
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    fn pair(&self, i: u32) -> OrthologPair<'_> {
        let p = &self.pairs[i as usize];
        OrthologPair {
            human: self.str(p.human),
            mouse: self.str(p.mouse),
            hcop_sources: p.hcop_sources,
            biomart_type: self.str(p.biomart_type),
        }
    }

    /// Every pair, in table order.
    pub fn pairs(&self) -> impl ExactSizeIterator<Item = OrthologPair<'_>> + '_ {
        (0..self.pairs.len() as u32).map(|i| self.pair(i))
    }

    /// The pairs a gene takes part in: as the human side when `human`, else as the mouse side.
    fn of<'a>(&'a self, id: &'a str, human: bool) -> impl Iterator<Item = u32> + 'a {
        let index = if human {
            &self.human_to_mouse
        } else {
            &self.mouse_to_human
        };
        index.find(key_hash(id), move |e| {
            let p = &self.pairs[e as usize];
            self.str(if human { p.human } else { p.mouse }) == id
        })
    }

    fn in_one_pair(&self, id: &str, human: bool) -> bool {
        let mut it = self.of(id, human);
        it.next().is_some() && it.next().is_none()
    }

    /// Pairs that are one-to-one: BioMart `ortholog_one2one`, or each id in exactly one pair of the table.
    pub fn one_to_one(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs().filter_map(move |p| {
            let unique = self.in_one_pair(p.human, true) && self.in_one_pair(p.mouse, false);
            (unique || p.biomart_type == ONE_TO_ONE).then_some((p.human, p.mouse))
        })
    }

    /// The unique one-to-one ortholog of a gene in the other species, if any.
    pub fn counterpart(&self, ensembl_id: &str) -> Option<&str> {
        let human = !ensembl_id.starts_with("ENSMUSG");
        let pick = |i: u32| {
            let p = self.pair(i);
            if human { p.mouse } else { p.human }
        };
        let mut pairs = self.of(ensembl_id, human);
        let first = pairs.next()?;
        if pairs.next().is_none() {
            let other = pick(first);
            if self.in_one_pair(other, !human) || self.pair(first).biomart_type == ONE_TO_ONE {
                return Some(other);
            }
        }
        let mut o2o = self
            .of(ensembl_id, human)
            .filter(|&i| self.pair(i).biomart_type == ONE_TO_ONE);
        match (o2o.next(), o2o.next()) {
            (Some(i), None) => Some(pick(i)),
            _ => None,
        }
    }
}
