//! The `--species` argument shared by `tokenize` and `medians`.

use genecompass_core::cells::Species;

/// `--species` on the command line: `auto` (detect from Ensembl id prefixes, else from which
/// symbol table, HGNC or MGI, names more genes), `human`, `mouse`, or the code of a species
/// added with `extend-vocab --add-species` (2-15; its genes are matched to the vocabulary by
/// their own ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpeciesArg(pub Option<Species>);

impl SpeciesArg {
    /// Auto-detection.
    pub const AUTO: SpeciesArg = SpeciesArg(None);

    /// The forced species, `None` for auto-detection.
    pub fn species(self) -> Option<Species> {
        self.0
    }
}

impl std::str::FromStr for SpeciesArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(Self::AUTO);
        }
        Species::parse(s)
            .map(|sp| SpeciesArg(Some(sp)))
            .ok_or_else(|| {
                format!("`{s}`: use auto, human, mouse, or the code (2-15) of an added species")
            })
    }
}

impl std::fmt::Display for SpeciesArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            None => f.write_str("auto"),
            Some(s @ Species::Added(_)) => write!(f, "{}", s.code()),
            Some(s) => f.write_str(s.name()),
        }
    }
}
