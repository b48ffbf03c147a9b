//! Model → official key layout (spec §8): the inverse of [`super::import`].
//!
//! Writes an HF-style model directory (`config.json` + `model.safetensors`) that the official
//! PyTorch code (`BertForMaskedLM.from_pretrained(dir)`), `safetensors.torch.load_file` and
//! [`super::load_checkpoint`] all read. burn `Linear` weights `[in, out]` are transposed back
//! to torch's `[out, in]`. Like HF `save_pretrained(safe_serialization=True)`, tied tensors
//! are stored once: `cls.predictions.decoder.weight` (tied to the word embeddings) is omitted.

use std::collections::HashMap;
use std::path::Path;

use burn::nn::{Embedding, LayerNorm, Linear};
use burn::prelude::*;

use super::{EmbWarmup, LoadedModel};
use crate::error::CheckpointError;
use crate::model::GeneCompassConfig;
use crate::model::bert::BertModel;
use crate::model::encoder::BertResidualOutput;
use crate::model::heads::PredictionHeadTransform;

/// One tensor to write: safetensors dtype, shape and little-endian bytes.
struct Out {
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

/// Official-layout tensors, in insertion order.
#[derive(Default)]
struct Writer {
    tensors: Vec<(String, Out)>,
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn host_f32<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("float tensor converts to f32")
}

impl Writer {
    fn floats(&mut self, key: String, shape: Vec<usize>, data: &[f32]) {
        self.tensors.push((
            key,
            Out {
                dtype: safetensors::Dtype::F32,
                shape,
                bytes: f32_bytes(data),
            },
        ));
    }

    fn ints(&mut self, key: String, shape: Vec<usize>, data: &[i64]) {
        let bytes = data.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.tensors.push((
            key,
            Out {
                dtype: safetensors::Dtype::I64,
                shape,
                bytes,
            },
        ));
    }

    fn tensor<const D: usize>(&mut self, key: String, t: Tensor<D>) {
        let shape = t.dims().to_vec();
        self.floats(key, shape, &host_f32(t));
    }

    /// `{prefix}.weight` as torch `[out, in]` and `{prefix}.bias`.
    fn linear(&mut self, prefix: &str, l: &Linear) {
        let [d_in, d_out] = l.weight.dims();
        let w = host_f32(l.weight.val());
        let mut t = vec![0f32; w.len()];
        for i in 0..d_in {
            for o in 0..d_out {
                t[o * d_in + i] = w[i * d_out + o];
            }
        }
        self.floats(format!("{prefix}.weight"), vec![d_out, d_in], &t);
        if let Some(b) = &l.bias {
            self.tensor(format!("{prefix}.bias"), b.val());
        }
    }

    fn layer_norm(&mut self, prefix: &str, ln: &LayerNorm) {
        self.tensor(format!("{prefix}.weight"), ln.gamma.val());
        if let Some(b) = &ln.beta {
            self.tensor(format!("{prefix}.bias"), b.val());
        }
    }

    fn embedding(&mut self, key: String, e: &Embedding) {
        self.tensor(key, e.weight.val());
    }

    fn residual(&mut self, prefix: &str, r: &BertResidualOutput) {
        self.linear(&format!("{prefix}.dense"), &r.dense);
        self.layer_norm(&format!("{prefix}.LayerNorm"), &r.layer_norm);
    }

    fn transform(&mut self, prefix: &str, t: &PredictionHeadTransform) {
        self.linear(&format!("{prefix}.transform.dense"), &t.dense);
        self.layer_norm(&format!("{prefix}.transform.LayerNorm"), &t.layer_norm);
    }

    /// `BertModel` under `p` (`"bert."`), as [`super::import::load_bert`] reads it.
    fn bert(&mut self, p: &str, bert: &BertModel, config: &GeneCompassConfig) {
        let e = format!("{p}embeddings");
        let emb = &bert.embeddings;
        let positions: Vec<i64> = (0..config.max_position_embeddings as i64).collect();
        self.ints(
            format!("{e}.position_ids"),
            vec![1, config.max_position_embeddings],
            &positions,
        );
        let hom = emb
            .homologous_index
            .val()
            .into_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .expect("int tensor converts to i64");
        self.ints(format!("{e}.homologous_index"), vec![hom.len()], &hom);
        for (kind, prior) in config.priors().into_iter().zip(&emb.priors) {
            self.tensor(
                format!("{e}.{}_knowledge", kind.stem()),
                prior.knowledge.val(),
            );
        }
        self.embedding(format!("{e}.word_embeddings.weight"), &emb.word_embeddings);
        for (kind, prior) in config.priors().into_iter().zip(&emb.priors) {
            self.linear(
                &format!("{e}.{}_embeddings.linear1", kind.stem()),
                &prior.linear1,
            );
        }
        let cat = format!("{e}.concat_embeddings");
        self.linear(&format!("{cat}.cat_fc"), &emb.concat_embeddings.cat_fc);
        self.layer_norm(&format!("{cat}.cat_ln"), &emb.concat_embeddings.cat_ln);
        self.linear(&format!("{cat}.cat_proj"), &emb.concat_embeddings.cat_proj);
        self.embedding(
            format!("{e}.position_embeddings.weight"),
            &emb.position_embeddings,
        );
        self.embedding(
            format!("{e}.token_type_embeddings.weight"),
            &emb.token_type_embeddings,
        );
        self.layer_norm(&format!("{e}.LayerNorm"), &emb.layer_norm);
        if let Some(cls) = &bert.cls_embedding {
            self.embedding(format!("{p}cls_embedding.weight"), cls);
        }
        for (i, layer) in bert.encoder.layer.iter().enumerate() {
            let lp = format!("{p}encoder.layer.{i}");
            let a = &layer.attention.attn;
            self.linear(&format!("{lp}.attention.self.query"), &a.query);
            self.linear(&format!("{lp}.attention.self.key"), &a.key);
            self.linear(&format!("{lp}.attention.self.value"), &a.value);
            self.residual(&format!("{lp}.attention.output"), &layer.attention.output);
            self.linear(&format!("{lp}.intermediate.dense"), &layer.intermediate);
            self.residual(&format!("{lp}.output"), &layer.output);
        }
        if let Some(pooler) = &bert.pooler {
            self.linear(&format!("{p}pooler.dense"), &pooler.dense);
        }
    }

    fn write(self, path: &Path) -> Result<(), CheckpointError> {
        let io = |source: std::io::Error| CheckpointError::Io {
            path: path.display().to_string(),
            source,
        };
        let views = self
            .tensors
            .iter()
            .map(|(k, t)| {
                safetensors::tensor::TensorView::new(t.dtype, t.shape.clone(), &t.bytes)
                    .map(|v| (k.clone(), v))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| io(std::io::Error::other(e.to_string())))?;
        let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
        let tmp = path.with_extension("safetensors.tmp");
        safetensors::serialize_to_file(views, Some(meta), &tmp)
            .map_err(|e| io(std::io::Error::other(e.to_string())))?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

fn mlm_tensors(w: &mut Writer, model: &LoadedModel, config: &GeneCompassConfig) {
    match model {
        LoadedModel::MaskedLm(m, warmup) => {
            w.bert("bert.", &m.bert, config);
            w.transform("cls.predictions", &m.cls.transform);
            let bias = host_f32(m.cls.bias.val());
            w.floats("cls.predictions.bias".into(), vec![bias.len()], &bias);
            w.floats(
                "cls.predictions.decoder.bias".into(),
                vec![bias.len()],
                &bias,
            );
            w.transform("cls4value.predictions", &m.cls4value.transform);
            w.linear("cls4value.predictions.decoder", &m.cls4value.decoder);
            if let Some(b) = &m.cls4value.decoder.bias {
                w.tensor("cls4value.predictions.bias".into(), b.val());
            }
            let EmbWarmup { alpha, steps } = *warmup;
            w.floats("emb_warmup.alpha".into(), Vec::new(), &[alpha]);
            w.ints("emb_warmup.steps".into(), Vec::new(), &[steps]);
        }
        LoadedModel::Classifier(c) => {
            w.bert("bert.", &c.bert, config);
            w.linear("classifier", &c.classifier);
        }
    }
}

/// Writes `model` as an official model directory: `dir/config.json` and
/// `dir/model.safetensors` with the keys of spec §8 (`BertForMaskedLM` or
/// `BertForSequenceClassification`). Creates `dir` if needed.
pub fn export_official_safetensors(
    model: &LoadedModel,
    config: &GeneCompassConfig,
    dir: &Path,
) -> Result<(), CheckpointError> {
    std::fs::create_dir_all(dir).map_err(|source| CheckpointError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let mut w = Writer::default();
    mlm_tensors(&mut w, model, config);
    let config_path = dir.join("config.json");
    std::fs::write(&config_path, config.to_json()).map_err(|source| CheckpointError::Io {
        path: config_path.display().to_string(),
        source,
    })?;
    w.write(&dir.join("model.safetensors"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{WeightsFormat, load_checkpoint};
    use crate::model::{ForwardOptions, ModelInput, init_mlm};

    #[test]
    fn exported_mlm_reloads_with_the_same_outputs() {
        let device = Device::flex();
        let mut config = GeneCompassConfig::shaped(40, 16, 2, 4, 32);
        config.max_position_embeddings = 16;
        config.knowledge_size = Some(8);
        let mut mlm = init_mlm(&config, &device);
        for p in &mut mlm.bert.embeddings.priors {
            p.knowledge = burn::module::Param::from_tensor(Tensor::random(
                [40, 8],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &device,
            ))
            .set_require_grad(false);
        }
        let model = LoadedModel::MaskedLm(
            mlm,
            EmbWarmup {
                alpha: 1.0,
                steps: 3,
            },
        );
        let dir = std::env::temp_dir().join(format!("gc-export-{}", std::process::id()));
        export_official_safetensors(&model, &config, &dir).unwrap();
        let back = load_checkpoint(&dir, WeightsFormat::Safetensors, &device).unwrap();
        let LoadedModel::MaskedLm(_, warmup) = &back.model else {
            panic!("expected an MLM checkpoint");
        };
        assert_eq!(warmup.steps, 3);
        let ids = [5i64, 7, 9, 0, 11, 3, 2, 1];
        let vals = [1.0f32, 2.0, 0.5, 0.0, 3.0, 1.5, 0.25, 4.0];
        let input = ModelInput::from_host(&ids, &vals, Some(&[0, 1]), None, 2, 4, &device);
        let LoadedModel::MaskedLm(orig, _) = &model else {
            unreachable!()
        };
        let a = host_f32(
            orig.bert
                .forward(&input, ForwardOptions::default())
                .last_hidden_state,
        );
        let b = host_f32(
            back.bert()
                .forward(&input, ForwardOptions::default())
                .last_hidden_state,
        );
        let diff = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(diff == 0.0, "max diff {diff}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
