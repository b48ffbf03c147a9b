//! The official key layout (spec §8) → model modules.

use burn::module::{Param, ParamId};
use burn::nn::{DropoutConfig, LayerNormConfig};
use burn::prelude::*;

use super::loader::Loader;
use crate::error::CheckpointError;
use crate::model::bert::{BertModel, BertPooler};
use crate::model::embeddings::{
    CAT_LN_EPS, ConcatEmbeddings, KnowledgeBertEmbeddings, PriorEmbedding,
};
use crate::model::encoder::{
    BertAttention, BertEncoder, BertLayer, BertResidualOutput, BertSelfAttention,
};
use crate::model::heads::{MlmIdHead, MlmValueHead, PredictionHeadTransform};
use crate::model::{
    GeneCompassConfig, GeneCompassForMaskedLm, GeneCompassForSequenceClassification,
};

/// Values of the `emb_warmup` buffers of an MLM checkpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmbWarmup {
    /// `emb_warmup.alpha` (1.0 in every released checkpoint).
    pub alpha: f32,
    /// `emb_warmup.steps`.
    pub steps: i64,
}

/// Knowledge width K read from the first prior table present (spec §18.2: never assumed).
pub fn knowledge_width(
    loader: &Loader<'_>,
    prefix: &str,
    config: &GeneCompassConfig,
) -> Option<usize> {
    config.priors().first().and_then(|kind| {
        let key = format!("{prefix}embeddings.{}_knowledge", kind.stem());
        loader.map_shape(&key).and_then(|s| s.get(1).copied())
    })
}

fn residual(
    l: &mut Loader<'_>,
    p: &str,
    d_in: usize,
    c: &GeneCompassConfig,
) -> Result<BertResidualOutput, CheckpointError> {
    let h = c.hidden_size;
    Ok(BertResidualOutput {
        dense: l.linear(
            &format!("{p}.dense"),
            d_in,
            h,
            "hidden_size / intermediate_size",
        )?,
        layer_norm: l.layer_norm(
            &format!("{p}.LayerNorm"),
            h,
            c.layer_norm_eps,
            "hidden_size",
        )?,
        dropout: DropoutConfig::new(c.hidden_dropout_prob).init(),
    })
}

fn embeddings(
    l: &mut Loader<'_>,
    p: &str,
    c: &GeneCompassConfig,
) -> Result<KnowledgeBertEmbeddings, CheckpointError> {
    let (h, v) = (c.hidden_size, c.vocab_size);
    let k = c.knowledge_width();
    let e = format!("{p}embeddings");
    let mut priors = Vec::new();
    for kind in c.priors() {
        let s = kind.stem();
        priors.push(PriorEmbedding {
            linear1: l.linear(
                &format!("{e}.{s}_embeddings.linear1"),
                k,
                h,
                "hidden_size and the knowledge width",
            )?,
            knowledge: Param::from_tensor(l.tensor(
                &format!("{e}.{s}_knowledge"),
                [v, k],
                "vocab_size",
            )?)
            .set_require_grad(false),
        });
    }
    let hom_key = format!("{e}.homologous_index");
    let hom = if l.has(&hom_key) {
        let idx = l.ints(&hom_key, &[v], "vocab_size")?;
        if let Some(bad) = idx.iter().find(|&&i| i < 0 || i as usize >= v) {
            return Err(CheckpointError::BadValue {
                path: l.path().to_string(),
                key: hom_key,
                message: format!("index {bad} is outside the vocabulary of {v} tokens"),
            });
        }
        idx
    } else {
        (0..v as i64).collect()
    };
    let pos_key = format!("{e}.position_ids");
    if l.has(&pos_key) {
        l.ints(
            &pos_key,
            &[1, c.max_position_embeddings],
            "max_position_embeddings",
        )?;
    }
    l.mark_used(&format!("{e}.token_type_ids"));
    let device = l.device().clone();
    let cat = format!("{e}.concat_embeddings");
    let mut cat_ln = LayerNormConfig::new(h)
        .with_epsilon(CAT_LN_EPS)
        .init(&device);
    let loaded_ln = l.layer_norm(&format!("{cat}.cat_ln"), h, CAT_LN_EPS, "hidden_size")?;
    cat_ln.gamma = loaded_ln.gamma;
    cat_ln.beta = loaded_ln.beta;
    Ok(KnowledgeBertEmbeddings {
        word_embeddings: l.embedding(
            &format!("{e}.word_embeddings.weight"),
            v,
            h,
            "vocab_size and hidden_size",
        )?,
        priors,
        homologous_index: Param::initialized(
            ParamId::new(),
            Tensor::<1, Int>::from_data(TensorData::new(hom, [v]), &device),
        ),
        concat_embeddings: ConcatEmbeddings {
            cat_fc: l.linear(
                &format!("{cat}.cat_fc"),
                c.concat_width(),
                h,
                "hidden_size and the use_values / use_* prior flags",
            )?,
            cat_ln,
            cat_proj: l.linear(&format!("{cat}.cat_proj"), h, h, "hidden_size")?,
        },
        position_embeddings: l.embedding(
            &format!("{e}.position_embeddings.weight"),
            c.max_position_embeddings,
            h,
            "max_position_embeddings",
        )?,
        token_type_embeddings: l.embedding(
            &format!("{e}.token_type_embeddings.weight"),
            c.type_vocab_size,
            h,
            "type_vocab_size",
        )?,
        layer_norm: l.layer_norm(
            &format!("{e}.LayerNorm"),
            h,
            c.layer_norm_eps,
            "hidden_size",
        )?,
        dropout: DropoutConfig::new(c.hidden_dropout_prob).init(),
        use_values: c.use_values,
    })
}

/// Loads `BertModel` under `prefix` (`"bert."` or `""`).
pub fn load_bert(
    l: &mut Loader<'_>,
    p: &str,
    c: &GeneCompassConfig,
    pooler: bool,
) -> Result<BertModel, CheckpointError> {
    let h = c.hidden_size;
    let embeddings = embeddings(l, p, c)?;
    let cls_embedding = if c.use_cls_token {
        Some(l.embedding(
            &format!("{p}cls_embedding.weight"),
            c.species_count(),
            h,
            "hidden_size and genecompass_species (one CLS row per species; absent: 2)",
        )?)
    } else {
        None
    };
    let mut layer = Vec::new();
    for i in 0..c.num_hidden_layers {
        let lp = format!("{p}encoder.layer.{i}");
        let a = format!("{lp}.attention.self");
        layer.push(BertLayer {
            attention: BertAttention {
                attn: BertSelfAttention {
                    query: l.linear(&format!("{a}.query"), h, h, "hidden_size")?,
                    key: l.linear(&format!("{a}.key"), h, h, "hidden_size")?,
                    value: l.linear(&format!("{a}.value"), h, h, "hidden_size")?,
                    dropout: DropoutConfig::new(c.attention_probs_dropout_prob).init(),
                    num_heads: c.num_attention_heads,
                },
                output: residual(l, &format!("{lp}.attention.output"), h, c)?,
            },
            intermediate: l.linear(
                &format!("{lp}.intermediate.dense"),
                h,
                c.intermediate_size,
                "intermediate_size",
            )?,
            output: residual(l, &format!("{lp}.output"), c.intermediate_size, c)?,
            act: c.hidden_act,
            layer_norm_eps: c.layer_norm_eps,
        });
    }
    let extra_layer = format!(
        "{p}encoder.layer.{}.output.dense.weight",
        c.num_hidden_layers
    );
    if l.has(&extra_layer) {
        return Err(CheckpointError::Config {
            path: l.path().to_string(),
            message: format!(
                "the weights have more than num_hidden_layers = {} layers (found `{extra_layer}`); \
                 use the config.json that belongs to these weights",
                c.num_hidden_layers
            ),
        });
    }
    let pooler = if pooler {
        Some(BertPooler {
            dense: l.linear(&format!("{p}pooler.dense"), h, h, "hidden_size")?,
        })
    } else {
        None
    };
    Ok(BertModel {
        embeddings,
        cls_embedding,
        encoder: BertEncoder { layer },
        pooler,
    })
}

fn transform(
    l: &mut Loader<'_>,
    p: &str,
    c: &GeneCompassConfig,
) -> Result<PredictionHeadTransform, CheckpointError> {
    let h = c.hidden_size;
    Ok(PredictionHeadTransform {
        dense: l.linear(&format!("{p}.transform.dense"), h, h, "hidden_size")?,
        layer_norm: l.layer_norm(
            &format!("{p}.transform.LayerNorm"),
            h,
            c.layer_norm_eps,
            "hidden_size",
        )?,
        act: c.hidden_act,
    })
}

fn check_tied(
    l: &mut Loader<'_>,
    a: &str,
    b: &str,
    shape: &[usize],
) -> Result<(), CheckpointError> {
    if !l.has(b) {
        return Ok(());
    }
    let x = l.floats(a, shape, "tied tensor")?;
    let y = l.floats(b, shape, "tied tensor")?;
    let max_diff = x
        .iter()
        .zip(&y)
        .map(|(p, q)| (p - q).abs())
        .fold(0f32, f32::max);
    if max_diff > 0.0 {
        return Err(CheckpointError::TiedMismatch {
            path: l.path().to_string(),
            a: a.to_string(),
            b: b.to_string(),
            max_diff,
        });
    }
    Ok(())
}

/// Loads an official `BertForMaskedLM` checkpoint.
pub fn load_mlm(
    l: &mut Loader<'_>,
    c: &GeneCompassConfig,
) -> Result<(GeneCompassForMaskedLm, EmbWarmup), CheckpointError> {
    let (h, v) = (c.hidden_size, c.vocab_size);
    let bert = load_bert(l, "bert.", c, false)?;
    check_tied(
        l,
        "bert.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.weight",
        &[v, h],
    )?;
    check_tied(
        l,
        "cls.predictions.bias",
        "cls.predictions.decoder.bias",
        &[v],
    )?;
    check_tied(
        l,
        "cls4value.predictions.bias",
        "cls4value.predictions.decoder.bias",
        &[1],
    )?;
    let cls = MlmIdHead {
        transform: transform(l, "cls.predictions", c)?,
        bias: Param::from_tensor(l.tensor("cls.predictions.bias", [v], "vocab_size")?),
    };
    let mut decoder = l.linear("cls4value.predictions.decoder", h, 1, "hidden_size")?;
    if decoder.bias.is_none() {
        decoder.bias = Some(Param::from_tensor(l.tensor(
            "cls4value.predictions.bias",
            [1],
            "value head bias",
        )?));
    }
    let cls4value = MlmValueHead {
        transform: transform(l, "cls4value.predictions", c)?,
        decoder,
    };
    let alpha = if l.has("emb_warmup.alpha") {
        l.floats("emb_warmup.alpha", &[], "a 0-dim scalar")?[0]
    } else {
        1.0
    };
    let steps = if l.has("emb_warmup.steps") {
        l.ints("emb_warmup.steps", &[], "a 0-dim scalar")?[0]
    } else {
        0
    };
    Ok((
        GeneCompassForMaskedLm {
            bert,
            cls,
            cls4value,
        },
        EmbWarmup { alpha, steps },
    ))
}

/// Loads an official `BertForSequenceClassification` directory's weights.
pub fn load_classifier(
    l: &mut Loader<'_>,
    c: &GeneCompassConfig,
    num_labels: usize,
) -> Result<GeneCompassForSequenceClassification, CheckpointError> {
    let bert = load_bert(l, "bert.", c, true)?;
    Ok(GeneCompassForSequenceClassification {
        bert,
        dropout: DropoutConfig::new(c.classifier_dropout.unwrap_or(c.hidden_dropout_prob)).init(),
        classifier: l.linear(
            "classifier",
            c.hidden_size,
            num_labels,
            "num_labels / id2label",
        )?,
    })
}
