//! The new objects of [`super::add_obs_columns`], appended to the output image: each column's
//! datasets (and, for a categorical, its group) with anndata's encoding attributes.

use super::read::Link;
use super::write::{self, Heap, Message};
use super::{NewObsColumn, ObsValues};

/// The output image: the input, then appended objects.
pub(super) struct Output {
    pub b: Vec<u8>,
}

impl Output {
    pub fn new(input: &[u8], eof: u64) -> Self {
        let mut b = input.to_vec();
        let end = usize::try_from(eof).unwrap_or(usize::MAX).max(b.len());
        b.resize(end, 0);
        Self { b }
    }

    /// Appends `bytes` at the next 8-byte boundary; returns their address.
    pub fn append(&mut self, bytes: &[u8]) -> u64 {
        self.b.resize(self.b.len().div_ceil(8) * 8, 0);
        let at = self.b.len() as u64;
        self.b.extend_from_slice(bytes);
        at
    }

    fn put(&mut self, at: usize, bytes: &[u8]) {
        self.b[at..at + bytes.len()].copy_from_slice(bytes);
    }

    /// Points `link` at `target`. A symbol-table entry also loses its cached B-tree/heap
    /// addresses (cache type 0), since the new `obs` is a compact group without a symbol table.
    pub fn repoint(&mut self, link: &Link, target: u64) {
        self.put(link.addr_field, &target.to_le_bytes());
        if link.in_symbol_table {
            self.put(link.addr_field + 8, &[0; 24]);
        }
    }

    /// Appends a contiguous 1-D dataset (data, then header); returns its header's address.
    pub fn dataset(
        &mut self,
        dtype: &[u8],
        n: usize,
        data: &[u8],
        attrs: Vec<Message>,
    ) -> Option<u64> {
        let addr = self.append(data);
        let mut m = write::dataset_messages(dtype, n as u64, addr, data.len() as u64);
        m.extend(attrs);
        Some(self.append(&write::object_header(&m)?))
    }

    pub fn set_eof(&mut self, field: usize) {
        let eof = (self.b.len() as u64).to_le_bytes();
        self.put(field, &eof);
    }
}

/// A column's heap strings, gathered before the heap is placed so that every reference can
/// name its collection's address.
pub(super) struct Plan {
    /// Heap handles of the categories (categorical columns).
    categories: Vec<usize>,
    /// Heap handles of its attribute strings, in [`Plan::write`]'s order.
    attrs: Vec<usize>,
    kind: PlanKind,
}

enum PlanKind {
    Categorical {
        codes: Vec<u32>,
        n_categories: usize,
    },
    Float32(Vec<u8>),
}

impl Plan {
    pub fn new(c: &NewObsColumn, heap: &mut Heap) -> Plan {
        let (kind, categories, strings): (PlanKind, Vec<usize>, &[&str]) = match &c.values {
            ObsValues::Float32(v) => (
                PlanKind::Float32(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
                Vec::new(),
                &["array", "0.2.0"],
            ),
            ObsValues::Categorical(v) => {
                let mut cats: Vec<&str> = v.iter().map(String::as_str).collect();
                cats.sort_unstable();
                cats.dedup();
                let codes = v
                    .iter()
                    .map(|s| cats.binary_search(&s.as_str()).unwrap_or_default() as u32)
                    .collect();
                let handles = cats.iter().map(|s| heap.add(s)).collect();
                let kind = PlanKind::Categorical {
                    codes,
                    n_categories: cats.len(),
                };
                let strings: &[&str] = &[
                    "categorical",
                    "0.2.0",
                    "string-array",
                    "0.2.0",
                    "array",
                    "0.2.0",
                ];
                (kind, handles, strings)
            }
        };
        Plan {
            categories,
            attrs: strings.iter().map(|s| heap.add(s)).collect(),
            kind,
        }
    }

    /// `encoding-type` and `encoding-version` attributes from the strings at `i`, `i + 1`.
    fn encoding(&self, heap: &Heap, i: usize) -> Vec<Message> {
        let scalar = write::dataspace(None);
        [("encoding-type", i), ("encoding-version", i + 1)]
            .into_iter()
            .map(|(key, h)| {
                let r = heap.reference(self.attrs[h]);
                write::attribute(key, &write::VLEN_UTF8, &scalar, &r)
            })
            .collect()
    }

    /// Appends the column's objects; returns the address of its object header.
    pub fn write(&self, out: &mut Output, heap: &Heap) -> Option<u64> {
        Some(match &self.kind {
            PlanKind::Float32(data) => {
                out.dataset(&write::F32, data.len() / 4, data, self.encoding(heap, 0))?
            }
            PlanKind::Categorical {
                codes,
                n_categories,
            } => {
                // pandas' code width: int8 below 127 categories, int16 below 32767.
                let width: u8 = match n_categories {
                    0..127 => 1,
                    127..32767 => 2,
                    _ => 4,
                };
                let code_bytes: Vec<u8> = codes
                    .iter()
                    .flat_map(|&c| c.to_le_bytes().into_iter().take(usize::from(width)))
                    .collect();
                let codes_type = write::int_type(width);
                let codes_at = out.dataset(
                    &codes_type,
                    codes.len(),
                    &code_bytes,
                    self.encoding(heap, 4),
                )?;
                let refs: Vec<u8> = (self.categories.iter())
                    .flat_map(|&h| heap.reference(h))
                    .collect();
                let n = self.categories.len();
                let cats_at = out.dataset(&write::VLEN_UTF8, n, &refs, self.encoding(heap, 2))?;
                let mut m = write::compact_group_messages(2);
                m.push(write::link("categories", cats_at));
                m.push(write::link("codes", codes_at));
                m.extend(self.encoding(heap, 0));
                let scalar = write::dataspace(None);
                m.push(write::attribute("ordered", &write::BOOL, &scalar, &[0]));
                out.append(&write::object_header(&m)?)
            }
        })
    }
}
