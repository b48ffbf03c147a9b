//! AdamW with the HF Trainer's parameter groups, the linear warm-up/decay schedule and global
//! gradient-norm clipping.
//!
//! burn's `AdamW` applies one weight decay to every parameter; the HF Trainer decays every
//! parameter except biases and LayerNorm weights (`get_parameter_names(model, ALL_LAYERNORM_LAYERS)`
//! minus names containing "bias", which excludes every `nn.LayerNorm` including `cat_ln`). We
//! express that with burn's `ModuleOptimizer::with_group`: a second AdamW with decay 0 for the
//! parameter ids whose field is `bias`, `gamma` or `beta` (LayerNorm). burn clips gradients per
//! parameter; HF clips the global norm, so clipping is done here, before the step.

use burn::module::{Module, ModuleVisitor, Param, ParamGroup, ParamId};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;

/// Optimiser hyper-parameters.
#[derive(Debug, Clone, Copy)]
pub struct OptimOptions {
    /// Peak learning rate.
    pub lr: f64,
    /// Decoupled weight decay (not applied to biases and LayerNorm parameters).
    pub weight_decay: f32,
    /// Linear warm-up steps.
    pub warmup_steps: usize,
    /// Total optimiser steps (the schedule reaches 0 there).
    pub total_steps: usize,
    /// Global gradient-norm clip (HF default 1.0); `None` disables.
    pub max_grad_norm: Option<f64>,
}

#[derive(Default)]
struct NoDecay {
    path: Vec<String>,
    ids: Vec<ParamId>,
    decayed: usize,
}

impl ModuleVisitor for NoDecay {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let last = self.path.last().map(String::as_str).unwrap_or("");
        if matches!(last, "bias" | "gamma" | "beta") {
            self.ids.push(param.id);
        } else {
            self.decayed += 1;
        }
    }
}

/// Ids of the parameters that get no weight decay (biases, LayerNorm gamma/beta), and the
/// number of the others.
pub fn no_decay_ids<M: Module>(model: &M) -> (Vec<ParamId>, usize) {
    let mut v = NoDecay::default();
    model.visit(&mut v);
    (v.ids, v.decayed)
}

/// AdamW (betas 0.9/0.999, eps 1e-8 as HF `adamw_hf`) with the no-decay group.
pub fn build_optimizer<M: Module>(model: &M, o: &OptimOptions) -> ModuleOptimizer {
    let (no_decay, _) = no_decay_ids(model);
    let adam = |wd: f32| {
        AdamWConfig::new()
            .with_epsilon(1e-8)
            .with_weight_decay(wd)
            .build()
    };
    ModuleOptimizer::from(adam(o.weight_decay)).with_group(
        ParamGroup::from_ids(no_decay),
        adam(0.0),
        None,
    )
}

/// HF `get_linear_schedule_with_warmup`: the lr of optimiser step `step` (0-based).
pub fn scheduled_lr(o: &OptimOptions, step: usize) -> f64 {
    if step < o.warmup_steps {
        return o.lr * step as f64 / o.warmup_steps.max(1) as f64;
    }
    let rest = o.total_steps.saturating_sub(o.warmup_steps).max(1) as f64;
    o.lr * (o.total_steps.saturating_sub(step) as f64 / rest).max(0.0)
}

struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    sum: f64,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            self.sum += g.square().sum().into_scalar::<f32>() as f64;
        }
    }
}

struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: f64,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, g * self.factor);
        }
    }
}

/// The global L2 norm of `grads` over `model`'s parameters.
pub fn grad_norm<M: Module>(model: &M, grads: &GradientsParams) -> f64 {
    let mut v = SquaredNorm { grads, sum: 0.0 };
    model.visit(&mut v);
    v.sum.sqrt()
}

/// Multiplies every gradient by `factor`.
pub fn scale_grads<M: Module>(model: &M, grads: &mut GradientsParams, factor: f64) {
    model.visit(&mut Scale { grads, factor });
}

/// Clips `grads` to a global norm of `max_norm` (torch `clip_grad_norm_`); returns the norm before.
pub fn clip_grad_norm<M: Module>(model: &M, grads: &mut GradientsParams, max_norm: f64) -> f64 {
    let norm = grad_norm(model, grads);
    let factor = max_norm / (norm + 1e-6);
    if factor < 1.0 {
        scale_grads(model, grads, factor);
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_zero() {
        let o = OptimOptions {
            lr: 1.0,
            weight_decay: 0.01,
            warmup_steps: 10,
            total_steps: 110,
            max_grad_norm: None,
        };
        assert_eq!(scheduled_lr(&o, 0), 0.0);
        assert!((scheduled_lr(&o, 5) - 0.5).abs() < 1e-12);
        assert!((scheduled_lr(&o, 10) - 1.0).abs() < 1e-12);
        assert!((scheduled_lr(&o, 60) - 0.5).abs() < 1e-12);
        assert_eq!(scheduled_lr(&o, 110), 0.0);
    }
}
