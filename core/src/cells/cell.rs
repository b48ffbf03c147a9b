use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Species code as the official tokenizer writes it (`species` column, CLS row index).
///
/// Human (0) and mouse (1) are the official ones. A checkpoint extended with
/// `genecompass-train extend-vocab --add-species` knows more: codes 2 to [`Species::MAX_CODE`],
/// whose names live in the checkpoint's config (`genecompass_species`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Species {
    /// Code 0. Also what the official classifier forward assumes for every cell.
    #[default]
    Human,
    /// Code 1. Prior-knowledge lookups go through the homolog index.
    Mouse,
    /// A species added to a checkpoint (code 2..=[`Species::MAX_CODE`]). Like mouse, its
    /// prior-knowledge lookups go through the homolog index.
    Added(u8),
}

/// Names of the added species codes when no checkpoint names them.
const ADDED_NAMES: [&str; 14] = [
    "species2",
    "species3",
    "species4",
    "species5",
    "species6",
    "species7",
    "species8",
    "species9",
    "species10",
    "species11",
    "species12",
    "species13",
    "species14",
    "species15",
];

impl Species {
    /// Largest species code (a CLS table holds at most 16 species).
    pub const MAX_CODE: u8 = 15;

    /// The integer code used in tokenized datasets and as the CLS embedding row.
    pub fn code(self) -> u8 {
        match self {
            Species::Human => 0,
            Species::Mouse => 1,
            Species::Added(c) => c,
        }
    }

    /// Parses the integer code; `None` outside 0..=[`Species::MAX_CODE`].
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(Species::Human),
            1 => Some(Species::Mouse),
            2..=15 => Some(Species::Added(code as u8)),
            _ => None,
        }
    }

    /// Lower-case name, as used on the command line and in reports (`speciesN` for an added
    /// species; its real name is in the checkpoint's config).
    pub fn name(self) -> &'static str {
        match self {
            Species::Human => "human",
            Species::Mouse => "mouse",
            Species::Added(c) => ADDED_NAMES[(c as usize).clamp(2, 15) - 2],
        }
    }

    /// Parses `human`, `mouse`, `speciesN` or a code.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "human" => Some(Species::Human),
            "mouse" => Some(Species::Mouse),
            _ => s
                .strip_prefix("species")
                .unwrap_or(&s)
                .parse::<i64>()
                .ok()
                .and_then(Self::from_code),
        }
    }
}

impl Serialize for Species {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Species {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let parsed = match &v {
            serde_json::Value::String(s) => Species::parse(s),
            serde_json::Value::Number(n) => n.as_i64().and_then(Species::from_code),
            _ => None,
        };
        parsed.ok_or_else(|| {
            serde::de::Error::custom(format!(
                "species {v}: expected human, mouse, speciesN or a code 0-15"
            ))
        })
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

#[cfg(test)]
mod species_tests {
    use super::Species;

    #[test]
    fn codes_names_and_json_round_trip() {
        for code in 0..=15 {
            let s = Species::from_code(code).unwrap();
            assert_eq!(i64::from(s.code()), code);
            assert_eq!(Species::parse(s.name()), Some(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(serde_json::from_str::<Species>(&json).unwrap(), s);
        }
        assert_eq!(Species::from_code(16), None);
        assert_eq!(Species::from_code(-1), None);
        assert_eq!(Species::parse("3"), Some(Species::Added(3)));
        assert_eq!(Species::parse("Mouse"), Some(Species::Mouse));
        assert_eq!(Species::parse("rat"), None);
        assert_eq!(serde_json::to_string(&Species::Human).unwrap(), "\"human\"");
        assert_eq!(
            serde_json::from_str::<Species>("1").unwrap(),
            Species::Mouse
        );
        assert!(serde_json::from_str::<Species>("\"dog\"").is_err());
    }
}
