//! The token dictionary (`human_mouse_tokens.pickle`) and the human↔mouse homolog token map
//! (`homologous_hm_token.pickle`).

use super::TokenizeError;
use crate::cells::Species;
use crate::pickle;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Gene token string → id. Ids are contiguous `0..len()`, `<pad>` is 0 (spec §2).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenDictionary {
    tokens: Vec<String>,
    index: super::fast_hash::FastMap<String, u32>,
    mask_id: Option<u32>,
    sha256: String,
}

/// The padding token (always id 0).
pub const PAD_TOKEN: &str = "<pad>";
/// The mask token (its id is read from the dictionary).
pub const MASK_TOKEN: &str = "<mask>";

impl TokenDictionary {
    /// Builds and validates a dictionary from `token → id` pairs. `source` names the origin in errors.
    ///
    /// Requires ids to be exactly `0..n` (each once) and `<pad>` = 0, as the official loader assumes.
    pub fn from_pairs(
        pairs: impl IntoIterator<Item = (String, i64)>,
        source: &str,
    ) -> Result<Self, TokenizeError> {
        let pairs: Vec<(String, i64)> = pairs.into_iter().collect();
        let n = pairs.len();
        let mut tokens: Vec<Option<String>> = vec![None; n];
        for (tok, id) in pairs {
            let slot = usize::try_from(id).ok().filter(|&i| i < n).ok_or_else(|| TokenizeError::Invalid {
                file: source.into(),
                message: format!(
                    "token {tok:?} has id {id}, outside 0..{n}; token ids must be contiguous 0..V-1 (the official loader \
                     stacks prior-knowledge rows in id order)"
                ),
            })?;
            if let Some(prev) = &tokens[slot] {
                return Err(TokenizeError::Invalid {
                    file: source.into(),
                    message: format!("id {id} is used by both {prev:?} and {tok:?}"),
                });
            }
            tokens[slot] = Some(tok);
        }
        // n distinct slots in 0..n filled by n entries: every slot is Some.
        let tokens: Vec<String> = tokens.into_iter().map(|t| t.unwrap_or_default()).collect();
        Self::from_tokens(tokens, source)
    }

    /// Builds a dictionary whose id `i` is `tokens[i]`.
    pub fn from_tokens(tokens: Vec<String>, source: &str) -> Result<Self, TokenizeError> {
        if tokens.first().map(String::as_str) != Some(PAD_TOKEN) {
            return Err(TokenizeError::Invalid {
                file: source.into(),
                message: format!(
                    "\"{PAD_TOKEN}\" must have id 0 (the model and collators treat id 0 as padding)"
                ),
            });
        }
        let mut index = super::fast_hash::fast_map(tokens.len());
        let mut hasher = Sha256::new();
        let mut line = String::new();
        for (i, t) in tokens.iter().enumerate() {
            if index.insert(t.clone(), i as u32).is_some() {
                return Err(TokenizeError::Invalid {
                    file: source.into(),
                    message: format!("token {t:?} appears twice"),
                });
            }
            line.clear();
            // Writing to a String cannot fail.
            let _ = writeln!(line, "{t}\t{i}");
            hasher.update(line.as_bytes());
        }
        let sha256 = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mask_id = index.get(MASK_TOKEN).copied();
        Ok(Self {
            tokens,
            index,
            mask_id,
            sha256,
        })
    }

    /// A new vocabulary: `<pad>` = 0, `<mask>` = 1, then `genes` in the given order (duplicates skipped).
    pub fn build(genes: impl IntoIterator<Item = String>) -> Self {
        // Sized up front: growing the set rehashed every id already in it.
        let genes: Vec<String> = genes.into_iter().collect();
        let mut tokens = Vec::with_capacity(2 + genes.len());
        tokens.extend([PAD_TOKEN.to_string(), MASK_TOKEN.to_string()]);
        let mut seen = super::fast_hash::fast_map::<String, ()>(genes.len());
        for g in genes {
            if g != PAD_TOKEN && g != MASK_TOKEN && seen.insert(g.clone(), ()).is_none() {
                tokens.push(g);
            }
        }
        Self::from_tokens(tokens, "<built>").expect("built vocabulary is valid")
    }

    /// Reads a pickled `dict[str,int]` (the official `human_mouse_tokens.pickle`).
    pub fn from_pickle(bytes: &[u8], source: &str) -> Result<Self, TokenizeError> {
        let v = pickle::unpickle(bytes, source)?;
        Self::from_pairs(pickle::str_int_dict(&v, source)?, source)
    }

    /// Reads a JSON object `{token: id}`.
    pub fn from_json(bytes: &[u8], source: &str) -> Result<Self, TokenizeError> {
        let map: BTreeMap<String, i64> =
            serde_json::from_slice(bytes).map_err(|e| TokenizeError::Json {
                file: source.into(),
                message: e.to_string(),
            })?;
        Self::from_pairs(map, source)
    }

    /// Reads either format, deciding by content (a pickle starts with byte 0x80).
    pub fn from_bytes(bytes: &[u8], source: &str) -> Result<Self, TokenizeError> {
        if bytes.first() == Some(&0x80) || bytes.starts_with(b"version https://git-lfs") {
            Self::from_pickle(bytes, source)
        } else {
            Self::from_json(bytes, source)
        }
    }

    /// Loads a `.pickle` or `.json` file (native only).
    pub fn load(path: &std::path::Path) -> Result<Self, TokenizeError> {
        Self::from_bytes(&super::read_path(path)?, &path.display().to_string())
    }

    /// The dictionary as pretty JSON `{token: id}` in id order (the format of `token_dict.json`).
    pub fn to_json(&self) -> String {
        let mut s = String::from("{\n");
        for (i, t) in self.tokens.iter().enumerate() {
            let sep = if i + 1 < self.tokens.len() { "," } else { "" };
            s.push_str(&format!(
                " {}: {i}{sep}\n",
                serde_json::Value::String(t.clone())
            ));
        }
        s.push('}');
        s
    }

    /// Writes [`Self::to_json`] to a file (native only).
    pub fn save_json(&self, path: &std::path::Path) -> Result<(), TokenizeError> {
        std::fs::write(path, self.to_json()).map_err(|error| TokenizeError::Io {
            path: path.display().to_string(),
            error,
        })
    }

    /// The id of a token.
    pub fn get(&self, token: &str) -> Option<u32> {
        self.index.get(token).copied()
    }

    /// The token string of an id.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// Vocabulary size V.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// True when only... never: a valid dictionary holds at least `<pad>`.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The `<mask>` id, when the dictionary has one (1 in the released vocabulary, by convention).
    pub fn mask_id(&self) -> Option<u32> {
        self.mask_id
    }

    /// Tokens in id order.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// SHA-256 (hex) of the lines `"{token}\t{id}\n"` in id order: identical for the pickle and
    /// its JSON export; record it next to tokenized outputs.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The species of a gene token from its Ensembl prefix (`ENSMUSG` mouse, `ENSG` human).
    pub fn species_of(&self, id: u32) -> Option<Species> {
        let t = self.token(id)?;
        if t.starts_with("ENSMUSG") {
            Some(Species::Mouse)
        } else if t.starts_with("ENSG") {
            Some(Species::Human)
        } else {
            None
        }
    }
}

/// Human token id ↔ mouse token id pairs (`homologous_hm_token.pickle` holds `{human_id: mouse_id}`;
/// the official loader inverts it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HomologMap {
    /// `(human_id, mouse_id)` pairs, sorted by human id.
    pub pairs: Vec<(u32, u32)>,
}

impl HomologMap {
    fn from_map(
        map: impl IntoIterator<Item = (i64, i64)>,
        source: &str,
    ) -> Result<Self, TokenizeError> {
        let mut pairs = Vec::new();
        for (h, m) in map {
            let (Ok(h), Ok(m)) = (u32::try_from(h), u32::try_from(m)) else {
                return Err(TokenizeError::Invalid {
                    file: source.into(),
                    message: format!(
                        "homolog pair ({h}, {m}) has a negative or too large token id"
                    ),
                });
            };
            pairs.push((h, m));
        }
        pairs.sort_unstable();
        Ok(Self { pairs })
    }

    /// Reads the official pickled `dict[int,int]` `{human_token_id: mouse_token_id}`.
    pub fn from_pickle(bytes: &[u8], source: &str) -> Result<Self, TokenizeError> {
        let v = pickle::unpickle(bytes, source)?;
        Self::from_map(pickle::int_int_dict(&v, source)?, source)
    }

    /// Reads JSON: either `{"human_id": mouse_id}` or an object with a `human_to_mouse_token_id` field
    /// (the fixture `homologs.json`).
    pub fn from_json(bytes: &[u8], source: &str) -> Result<Self, TokenizeError> {
        let v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| TokenizeError::Json {
                file: source.into(),
                message: e.to_string(),
            })?;
        let obj = v.get("human_to_mouse_token_id").unwrap_or(&v);
        let bad = || TokenizeError::Invalid {
            file: source.into(),
            message: "expected an object {\"human_token_id\": mouse_token_id}".into(),
        };
        let map = obj.as_object().ok_or_else(bad)?;
        let mut pairs = Vec::new();
        for (k, v) in map {
            let h: i64 = k.parse().map_err(|_| bad())?;
            pairs.push((h, v.as_i64().ok_or_else(bad)?));
        }
        Self::from_map(pairs, source)
    }

    /// Derives the map from a vocabulary and ortholog pairs: every one-to-one human/mouse pair
    /// whose genes are both in the vocabulary.
    pub fn from_orthologs(vocab: &TokenDictionary, orthologs: &super::Orthologs) -> Self {
        let mut pairs: Vec<(u32, u32)> = orthologs
            .one_to_one()
            .filter_map(|(h, m)| Some((vocab.get(h)?, vocab.get(m)?)))
            .collect();
        pairs.sort_unstable();
        Self { pairs }
    }

    /// The official `homologous_index` buffer: `index[mouse_id] = human_id`, identity elsewhere.
    pub fn homologous_index(&self, vocab_size: usize) -> Vec<u32> {
        let mut idx: Vec<u32> = (0..vocab_size as u32).collect();
        for &(h, m) in &self.pairs {
            if let Some(slot) = idx.get_mut(m as usize) {
                *slot = h;
            }
        }
        idx
    }

    /// The human token homologous to a mouse token.
    pub fn human_of(&self, mouse_id: u32) -> Option<u32> {
        self.pairs.iter().find(|p| p.1 == mouse_id).map(|p| p.0)
    }
}
