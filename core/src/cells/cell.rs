use serde::{Deserialize, Serialize};

/// Species code as the official tokenizer writes it (`species` column, CLS row index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Species {
    /// Code 0. Also what the official classifier forward assumes for every cell.
    #[default]
    Human,
    /// Code 1. Prior-knowledge lookups go through the homolog index.
    Mouse,
}

impl Species {
    /// The integer code used in tokenized datasets and as the CLS embedding row.
    pub fn code(self) -> u8 {
        match self {
            Species::Human => 0,
            Species::Mouse => 1,
        }
    }

    /// Parses the integer code; `None` for anything but 0 or 1.
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(Species::Human),
            1 => Some(Species::Mouse),
            _ => None,
        }
    }

    /// Lower-case name, as used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Species::Human => "human",
            Species::Mouse => "mouse",
        }
    }
}

/// One tokenized cell: gene token ids ranked by value (descending), with their values.
///
/// No padding is stored: `input_ids.len()` is the number of real genes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenizedCell {
    /// Token ids in rank order. Never contains the pad id 0.
    pub input_ids: Vec<u32>,
    /// The model input value of each gene, `log2(1 + count / median)` in the official pipeline.
    pub values: Vec<f32>,
    /// The cell's species.
    pub species: Species,
    /// An optional label (cell type), kept from the source when asked.
    pub label: Option<String>,
}

impl TokenizedCell {
    /// Number of real (non-padding) genes.
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    /// True when the cell has no genes.
    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }
}

/// A set of tokenized cells, with what is known of how they were stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CellSet {
    /// The cells, in file order.
    pub cells: Vec<TokenizedCell>,
    /// The fixed row length the source stored (2048 in official datasets), if any.
    ///
    /// Needed to reproduce the official no-attention-mask inference, whose outputs depend on
    /// how many padding positions are attended.
    pub padded_len: Option<usize>,
}

impl CellSet {
    /// Number of cells.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// True when there are no cells.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// Sorted, de-duplicated label names, if every cell has a label.
    pub fn label_names(&self) -> Option<Vec<String>> {
        let mut names: Vec<String> = self
            .cells
            .iter()
            .map(|c| c.label.clone())
            .collect::<Option<Vec<_>>>()?;
        names.sort();
        names.dedup();
        Some(names)
    }
}
