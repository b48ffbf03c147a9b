//! Builds modules from a [`TensorMap`], tracking which keys were used so that nothing is
//! silently ignored and nothing is silently missing.

use std::collections::BTreeSet;

use burn::module::Param;
use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear};
use burn::prelude::*;

use super::tensors::{StoredTensor, TensorMap};
use crate::error::CheckpointError;

/// Reads tensors by key, checks shapes, records use.
pub struct Loader<'a> {
    map: &'a TensorMap,
    used: BTreeSet<String>,
    device: Device,
}

impl<'a> Loader<'a> {
    /// Starts loading from `map` onto `device`.
    pub fn new(map: &'a TensorMap, device: &Device) -> Self {
        Self {
            map,
            used: BTreeSet::new(),
            device: device.clone(),
        }
    }

    /// The file path, for messages.
    pub fn path(&self) -> &str {
        &self.map.path
    }

    /// The shape of a key, if present.
    pub fn map_shape(&self, key: &str) -> Option<Vec<usize>> {
        self.map.tensors.get(key).map(|t| t.shape.clone())
    }

    /// Whether a key exists.
    pub fn has(&self, key: &str) -> bool {
        self.map.tensors.contains_key(key)
    }

    /// Marks a key as consumed without reading it (e.g. a buffer we recompute).
    pub fn mark_used(&mut self, key: &str) {
        if self.has(key) {
            self.used.insert(key.to_string());
        }
    }

    /// The raw tensor under `key`, or a missing-tensor error with similar keys as a hint.
    pub fn raw(&mut self, key: &str) -> Result<&'a StoredTensor, CheckpointError> {
        match self.map.tensors.get(key) {
            Some(t) => {
                self.used.insert(key.to_string());
                Ok(t)
            }
            None => {
                let last = key.rsplit('.').nth(1).unwrap_or(key);
                let similar: Vec<&str> = self
                    .map
                    .tensors
                    .keys()
                    .filter(|k| k.contains(last))
                    .take(4)
                    .map(String::as_str)
                    .collect();
                let hint = if similar.is_empty() {
                    String::new()
                } else {
                    format!(" (similar keys in the file: {})", similar.join(", "))
                };
                Err(CheckpointError::MissingTensor {
                    path: self.map.path.clone(),
                    key: key.to_string(),
                    hint,
                })
            }
        }
    }

    /// The f32 values of `key`, checked against `expected` (`why` names the config fields).
    pub fn floats(
        &mut self,
        key: &str,
        expected: &[usize],
        why: &str,
    ) -> Result<Vec<f32>, CheckpointError> {
        let t = self.raw(key)?;
        self.check_shape(key, t, expected, why)?;
        t.to_f32().ok_or_else(|| CheckpointError::BadDtype {
            path: self.map.path.clone(),
            key: key.to_string(),
            dtype: t.dtype_name(),
        })
    }

    /// The i64 values of `key`, checked against `expected`.
    pub fn ints(
        &mut self,
        key: &str,
        expected: &[usize],
        why: &str,
    ) -> Result<Vec<i64>, CheckpointError> {
        let t = self.raw(key)?;
        self.check_shape(key, t, expected, why)?;
        t.to_i64().ok_or_else(|| CheckpointError::BadDtype {
            path: self.map.path.clone(),
            key: key.to_string(),
            dtype: t.dtype_name(),
        })
    }

    fn check_shape(
        &self,
        key: &str,
        t: &StoredTensor,
        expected: &[usize],
        why: &str,
    ) -> Result<(), CheckpointError> {
        if t.shape != expected {
            return Err(CheckpointError::ShapeMismatch {
                path: self.map.path.clone(),
                key: key.to_string(),
                expected: expected.to_vec(),
                found: t.shape.clone(),
                why: why.to_string(),
            });
        }
        Ok(())
    }

    /// A float tensor of rank `D`.
    pub fn tensor<const D: usize>(
        &mut self,
        key: &str,
        shape: [usize; D],
        why: &str,
    ) -> Result<Tensor<D>, CheckpointError> {
        let v = self.floats(key, &shape, why)?;
        Ok(Tensor::from_data(TensorData::new(v, shape), &self.device))
    }

    /// A torch `Linear` (`weight [out, in]`, `bias [out]`) as a burn `Linear` (`[in, out]`).
    pub fn linear(
        &mut self,
        prefix: &str,
        d_in: usize,
        d_out: usize,
        why: &str,
    ) -> Result<Linear, CheckpointError> {
        let w = self.floats(&format!("{prefix}.weight"), &[d_out, d_in], why)?;
        let mut t = vec![0f32; w.len()];
        for o in 0..d_out {
            for i in 0..d_in {
                t[i * d_out + o] = w[o * d_in + i];
            }
        }
        let weight = Tensor::from_data(TensorData::new(t, [d_in, d_out]), &self.device);
        let bias_key = format!("{prefix}.bias");
        let bias = if self.has(&bias_key) {
            Some(Param::from_tensor(self.tensor(&bias_key, [d_out], why)?))
        } else {
            None
        };
        Ok(Linear {
            weight: Param::from_tensor(weight),
            bias,
        })
    }

    /// A LayerNorm (`weight`/`bias`, or the old `gamma`/`beta` names).
    pub fn layer_norm(
        &mut self,
        prefix: &str,
        d: usize,
        eps: f64,
        why: &str,
    ) -> Result<LayerNorm, CheckpointError> {
        let (wk, bk) = if self.has(&format!("{prefix}.gamma")) {
            ("gamma", "beta")
        } else {
            ("weight", "bias")
        };
        let mut ln = LayerNormConfig::new(d).with_epsilon(eps).init(&self.device);
        ln.gamma = Param::from_tensor(self.tensor(&format!("{prefix}.{wk}"), [d], why)?);
        ln.beta = Some(Param::from_tensor(self.tensor(
            &format!("{prefix}.{bk}"),
            [d],
            why,
        )?));
        Ok(ln)
    }

    /// An embedding table `[n, d]`.
    pub fn embedding(
        &mut self,
        key: &str,
        n: usize,
        d: usize,
        why: &str,
    ) -> Result<Embedding, CheckpointError> {
        Ok(Embedding {
            weight: Param::from_tensor(self.tensor(key, [n, d], why)?),
        })
    }

    /// The device tensors are created on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Errors if any key of the file was not consumed (no silent partial loads).
    pub fn finish(self, model: &str) -> Result<(), CheckpointError> {
        let unused: Vec<&String> = self
            .map
            .tensors
            .keys()
            .filter(|k| !self.used.contains(*k))
            .collect();
        if unused.is_empty() {
            return Ok(());
        }
        let shown: Vec<&str> = unused.iter().take(8).map(|s| s.as_str()).collect();
        Err(CheckpointError::UnusedTensors {
            path: self.map.path.clone(),
            model: model.to_string(),
            count: unused.len(),
            keys: shown.join(", "),
        })
    }
}
