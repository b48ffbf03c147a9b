//! The model configuration, read from the official `config.json`.
//!
//! Field names are the JSON keys of the HF `BertConfig` that GeneCompass saves
//! (`pretraining/pretrain_genecompass_w_human_mouse_base.py` at commit 8323757), plus the
//! GeneCompass `use_*` flags. Keys we do not model are kept in `extra` and written back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Activation named by `hidden_act`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HiddenAct {
    /// Exact erf GELU (HF `"gelu"`), the GeneCompass default.
    Gelu,
    /// ReLU.
    Relu,
    /// `x * sigmoid(1.702 x)`.
    QuickGelu,
}

/// GeneCompass configuration (`config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneCompassConfig {
    /// Hidden width H.
    pub hidden_size: usize,
    /// Number of encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads (H must be divisible by it).
    pub num_attention_heads: usize,
    /// FFN width.
    pub intermediate_size: usize,
    /// Activation of the FFN and the MLM transform. Default: gelu.
    #[serde(default = "default_act")]
    pub hidden_act: HiddenAct,
    /// LayerNorm epsilon everywhere except the concat LayerNorm (fixed at 1e-5). Default 1e-12.
    #[serde(default = "default_ln_eps")]
    pub layer_norm_eps: f64,
    /// Dropout on hidden states. Default 0.02 (GeneCompass).
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    /// Dropout on attention probabilities. Default 0.02.
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    /// Classifier dropout; `None` means `hidden_dropout_prob` (HF convention).
    #[serde(default)]
    pub classifier_dropout: Option<f64>,
    /// Size of the position table: the longest cell (in genes) the model accepts.
    pub max_position_embeddings: usize,
    /// Token-type rows (only row 0 is used). Default 2.
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// Vocabulary size V (gene tokens plus `<pad>` and `<mask>`).
    pub vocab_size: usize,
    /// Id of `<pad>`. Default 0.
    #[serde(default)]
    pub pad_token_id: usize,
    /// Std of the normal init. Default 0.02.
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    /// Feed the scalar expression value into the embedding. Default true.
    #[serde(default = "yes")]
    pub use_values: bool,
    /// Promoter prior. Default true.
    #[serde(default = "yes")]
    pub use_promoter: bool,
    /// Co-expression prior. Default true.
    #[serde(default = "yes")]
    pub use_co_exp: bool,
    /// Gene-family prior. Default true.
    #[serde(default = "yes")]
    pub use_gene_family: bool,
    /// GRN (PECA2vec) prior. Default true.
    #[serde(default = "yes")]
    pub use_peca_grn: bool,
    /// Prepend the species CLS embedding. Default true.
    #[serde(default = "yes")]
    pub use_cls_token: bool,
    /// Steps of the (inactive) embedding warm-up; kept for round-trips.
    #[serde(default)]
    pub emb_warmup_steps: Option<u64>,
    /// Width K of the prior-knowledge tables. Not in official configs: taken from the
    /// checkpoint's buffer shapes on import, then written to native configs.
    #[serde(default)]
    pub knowledge_size: Option<usize>,
    /// Class names by index, for classifiers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id2label: Option<BTreeMap<String, String>>,
    /// Number of classes when `id2label` is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_labels: Option<usize>,
    /// Whether a classifier was trained with species (CLS row and homolog remap). The
    /// official classifier forward takes no species, so absent means false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub genecompass_trained_with_species: Option<bool>,
    /// Species names by code, one per row of the CLS table; absent means the official two,
    /// `["human", "mouse"]`. `extend-vocab --add-species` appends to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub genecompass_species: Option<Vec<String>>,
    /// Whether a classifier was trained on integer-truncated values (the official collator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub genecompass_truncate_values: Option<bool>,
    /// Every other key of the file, preserved.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

fn default_act() -> HiddenAct {
    HiddenAct::Gelu
}
fn default_ln_eps() -> f64 {
    1e-12
}
fn default_dropout() -> f64 {
    0.02
}
fn default_type_vocab() -> usize {
    2
}
fn default_init_range() -> f64 {
    0.02
}
fn yes() -> bool {
    true
}

/// The four prior-knowledge kinds, in the order the official embedding concatenates them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriorKind {
    /// Promoter sequence embedding.
    Promoter,
    /// Gene co-expression embedding.
    CoExp,
    /// Gene-family embedding.
    GeneFamily,
    /// Gene regulatory network (PECA2vec) embedding.
    PecaGrn,
}

impl PriorKind {
    /// All kinds in concatenation order.
    pub const ALL: [PriorKind; 4] = [
        PriorKind::Promoter,
        PriorKind::CoExp,
        PriorKind::GeneFamily,
        PriorKind::PecaGrn,
    ];

    /// The checkpoint name stem: `bert.embeddings.{stem}_knowledge` and `{stem}_embeddings`.
    pub fn stem(self) -> &'static str {
        match self {
            PriorKind::Promoter => "promoter",
            PriorKind::CoExp => "co_exp",
            PriorKind::GeneFamily => "gene_family",
            PriorKind::PecaGrn => "peca_grn",
        }
    }
}

impl GeneCompassConfig {
    /// Parses `config.json` text.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Serialises to pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("config serialises")
    }

    /// The priors switched on, in concatenation order.
    pub fn priors(&self) -> Vec<PriorKind> {
        PriorKind::ALL
            .into_iter()
            .filter(|k| match k {
                PriorKind::Promoter => self.use_promoter,
                PriorKind::CoExp => self.use_co_exp,
                PriorKind::GeneFamily => self.use_gene_family,
                PriorKind::PecaGrn => self.use_peca_grn,
            })
            .collect()
    }

    /// Input width of `cat_fc`: word + value + one H block per prior.
    pub fn concat_width(&self) -> usize {
        self.hidden_size * (1 + self.priors().len()) + usize::from(self.use_values)
    }

    /// Species names by code (the CLS table's rows).
    pub fn species_names(&self) -> Vec<String> {
        self.genecompass_species
            .clone()
            .unwrap_or_else(|| vec!["human".into(), "mouse".into()])
    }

    /// Rows of the species CLS table.
    pub fn species_count(&self) -> usize {
        self.genecompass_species.as_ref().map_or(2, Vec::len)
    }

    /// Knowledge width K (768 in official checkpoints).
    pub fn knowledge_width(&self) -> usize {
        self.knowledge_size.unwrap_or(768)
    }

    /// Head width H / heads.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Class names ordered by index, when the config names them.
    pub fn label_names(&self) -> Option<Vec<String>> {
        let map = self.id2label.as_ref()?;
        let mut pairs: Vec<(usize, String)> = map
            .iter()
            .filter_map(|(k, v)| k.parse::<usize>().ok().map(|i| (i, v.clone())))
            .collect();
        pairs.sort();
        Some(pairs.into_iter().map(|(_, v)| v).collect())
    }

    /// Sets `id2label` (and `label2id` in `extra`) from class names.
    pub fn set_labels(&mut self, names: &[String]) {
        self.id2label = Some(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (i.to_string(), n.clone()))
                .collect(),
        );
        let label2id: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), serde_json::Value::from(i)))
            .collect();
        self.extra
            .insert("label2id".into(), serde_json::Value::Object(label2id));
        self.num_labels = Some(names.len());
    }

    /// Checks the invariants the model relies on; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.hidden_size == 0 || self.num_attention_heads == 0 {
            return Err("hidden_size and num_attention_heads must be positive".into());
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.vocab_size < 2 {
            return Err(format!("vocab_size {} is too small", self.vocab_size));
        }
        if self.pad_token_id >= self.vocab_size {
            return Err(format!(
                "pad_token_id {} is outside vocab_size {}",
                self.pad_token_id, self.vocab_size
            ));
        }
        if self.max_position_embeddings == 0 || self.type_vocab_size == 0 {
            return Err("max_position_embeddings and type_vocab_size must be positive".into());
        }
        Ok(())
    }

    /// A GeneCompass_Small-shaped config: 6 layers, H 256, 4 heads, FFN 512 (spec §6.1).
    pub fn small(vocab_size: usize) -> Self {
        Self::shaped(vocab_size, 256, 6, 4, 512)
    }

    /// A GeneCompass_Base-shaped config: 12 layers, H 768, 12 heads, FFN 3072 (spec §6.1).
    pub fn base(vocab_size: usize) -> Self {
        Self::shaped(vocab_size, 768, 12, 12, 3072)
    }

    /// A config with the official defaults and the given shape.
    pub fn shaped(
        vocab_size: usize,
        hidden: usize,
        layers: usize,
        heads: usize,
        ffn: usize,
    ) -> Self {
        Self {
            hidden_size: hidden,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            intermediate_size: ffn,
            hidden_act: HiddenAct::Gelu,
            layer_norm_eps: 1e-12,
            hidden_dropout_prob: 0.02,
            attention_probs_dropout_prob: 0.02,
            classifier_dropout: None,
            max_position_embeddings: 2048,
            type_vocab_size: 2,
            vocab_size,
            pad_token_id: 0,
            initializer_range: 0.02,
            use_values: true,
            use_promoter: true,
            use_co_exp: true,
            use_gene_family: true,
            use_peca_grn: true,
            use_cls_token: true,
            emb_warmup_steps: Some(10_000),
            knowledge_size: Some(768),
            id2label: None,
            num_labels: None,
            genecompass_trained_with_species: None,
            genecompass_species: None,
            genecompass_truncate_values: None,
            extra: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fixture_config_and_keeps_unknown_keys() {
        let text = r#"{"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
            "intermediate_size": 64, "max_position_embeddings": 64, "vocab_size": 40,
            "use_promoter": true, "use_co_exp": false, "model_type": "bert"}"#;
        let c = GeneCompassConfig::from_json(text).unwrap();
        assert_eq!(c.priors().len(), 3);
        assert_eq!(c.concat_width(), 32 * 4 + 1);
        assert_eq!(c.extra["model_type"], "bert");
        let back = GeneCompassConfig::from_json(&c.to_json()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn rejects_indivisible_heads() {
        let mut c = GeneCompassConfig::small(100);
        c.num_attention_heads = 3;
        assert!(c.validate().unwrap_err().contains("num_attention_heads"));
    }

    #[test]
    fn label_names_are_ordered_by_index() {
        let mut c = GeneCompassConfig::small(10);
        let names: Vec<String> = (0..12).map(|i| format!("t{i}")).collect();
        c.set_labels(&names);
        assert_eq!(c.label_names().unwrap(), names);
    }
}
