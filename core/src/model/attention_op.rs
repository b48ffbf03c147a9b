//! The host training attention ([`super::host_attention_train`]) as a differentiable burn
//! operation on the flex backend: a backend extension with a hand-written backward step.
//!
//! Only flex (plain and under autodiff) implements it; [`train_attention`] says when it
//! applies, and the encoder keeps burn's composed attention everywhere else.

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Dispatch, Flex, backend_extension, tensor::FloatTensor};
use burn::prelude::*;
use burn::tensor::DType;

/// flex's float tensor primitive.
type FlexTensor = FloatTensor<Flex>;

use super::host_attention_train::{ForwardOutput, TrainAttention};

#[backend_extension(Flex, Autodiff)]
trait HostTrainAttention: burn::backend::Backend {
    /// `[B, S, H]` queries, keys and values to the `[B, S, H]` attention output.
    fn host_train_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        spec: TrainAttention,
    ) -> FloatTensor<Self>;
}

fn host_vec(t: &FlexTensor) -> Vec<f32> {
    let t = t.to_contiguous();
    t.as_slice::<f32>()
        .expect("host attention: f32 tensor")
        .to_vec()
}

fn flex_tensor(data: Vec<f32>, spec: &TrainAttention) -> FlexTensor {
    let shape = [spec.lens.len(), spec.seq, spec.heads * spec.head_dim];
    FlexTensor::from_data(TensorData::new(data, shape))
}

impl HostTrainAttention for Flex {
    fn host_train_attention(
        q: FlexTensor,
        k: FlexTensor,
        v: FlexTensor,
        spec: TrainAttention,
    ) -> FlexTensor {
        let out = spec
            .forward(&host_vec(&q), &host_vec(&k), &host_vec(&v))
            .out;
        flex_tensor(out, &spec)
    }
}

/// What the backward step needs: the inputs and the forward pass's output and log-sum-exps.
#[derive(Debug, Clone)]
struct Saved {
    spec: TrainAttention,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    fwd: ForwardOutput,
}

#[derive(Debug)]
struct AttentionBackward;

impl Backward<Flex, 3> for AttentionBackward {
    type State = Arc<Saved>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let d_out = host_vec(&grads.consume::<Flex>(&ops.node));
        let s = &ops.state;
        let g = s.spec.backward((&s.q, &s.k, &s.v), &s.fwd, &d_out);
        for (parent, grad) in ops.parents.into_iter().zip([g.dq, g.dk, g.dv]) {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, flex_tensor(grad, &s.spec));
            }
        }
    }
}

impl<C: CheckpointStrategy> HostTrainAttention for Autodiff<Flex, C> {
    fn host_train_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        spec: TrainAttention,
    ) -> FloatTensor<Self> {
        match AttentionBackward
            .prepare::<C>([q.node(), k.node(), v.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (q, k, v) = (
                    host_vec(q.primitive()),
                    host_vec(k.primitive()),
                    host_vec(v.primitive()),
                );
                let fwd = spec.forward(&q, &k, &v);
                let out = flex_tensor(fwd.out.clone(), &spec);
                let saved = Saved { spec, q, k, v, fwd };
                prep.finish(Arc::new(saved), out)
            }
            // Nothing to differentiate (frozen layers, evaluation): the plain forward.
            OpsKind::UnTracked(prep) => prep.finish(Flex::host_train_attention(
                q.into_primitive(),
                k.into_primitive(),
                v.into_primitive(),
                spec,
            )),
        }
    }
}

/// Whether [`train_attention`] runs for `x`: f32 on flex (with or without autodiff).
pub fn applies(x: &Tensor<3>) -> bool {
    x.device() == Device::flex() && x.dtype() == DType::F32
}

/// `dropout(softmax(q kᵀ / √d + mask)) v` through the host kernels, differentiable under
/// autodiff. The caller checks [`applies`] and that the mask blocks a suffix of each cell.
///
/// # Shapes
/// - `q`, `k`, `v`: `[B, S, H]` → `[B, S, H]`
pub fn train_attention(
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    spec: TrainAttention,
) -> Tensor<3> {
    Tensor::from_dispatch(<Dispatch as HostTrainAttention>::host_train_attention(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        spec,
    ))
}

#[cfg(test)]
mod tests {
    use burn::tensor::activation::softmax;
    use burn::tensor::{Distribution, Tolerance};

    use super::*;

    /// burn's composed attention, as the encoder runs it on other backends.
    fn composed(
        q: Tensor<3>,
        k: Tensor<3>,
        v: Tensor<3>,
        heads: usize,
        mask: Tensor<4>,
    ) -> Tensor<3> {
        let [b, s, h] = q.dims();
        let d = h / heads;
        let split = |t: Tensor<3>| t.reshape([b, s, heads, d]).swap_dims(1, 2);
        let scores = split(q)
            .matmul(split(k).swap_dims(2, 3))
            .div_scalar((d as f64).sqrt())
            + mask;
        softmax(scores, 3)
            .matmul(split(v))
            .swap_dims(1, 2)
            .reshape([b, s, h])
    }

    #[test]
    fn gradients_equal_burns_composed_attention_at_real_rows() {
        let device = Device::flex().autodiff();
        let (b, s, heads, h) = (3, 70, 4, 32);
        let lens = vec![70, 9, 41];
        let random = || {
            Tensor::<3>::random([b, s, h], Distribution::Normal(0.0, 1.0), &device).require_grad()
        };
        let (q, k, v) = (random(), random(), random());
        // Additive mask blocking each cell's padding, and a 0/1 mask of its real rows.
        let mut additive = vec![0f32; b * s];
        let mut real = vec![0f32; b * s * h];
        for (c, &n) in lens.iter().enumerate() {
            additive[c * s + n..(c + 1) * s].fill(f32::MIN);
            real[c * s * h..(c * s + n) * h].fill(1.0);
        }
        let mask = Tensor::<4>::from_data(TensorData::new(additive, [b, 1, 1, s]), &device);
        let real = Tensor::<3>::from_data(TensorData::new(real, [b, s, h]), &device);
        let weights = Tensor::<3>::random([b, s, h], Distribution::Normal(0.0, 1.0), &device);
        let spec = TrainAttention {
            heads,
            head_dim: h / heads,
            seq: s,
            lens,
            dropout: None,
        };
        let loss = |out: Tensor<3>| (out * weights.clone() * real.clone()).sum();
        let host = train_attention(q.clone(), k.clone(), v.clone(), spec);
        let want = composed(q.clone(), k.clone(), v.clone(), heads, mask);
        (host.clone() * real.clone())
            .into_data()
            .assert_approx_eq::<f32>(
                &(want.clone() * real.clone()).into_data(),
                Tolerance::absolute(1e-5),
            );
        let g_host = loss(host).backward();
        let g_want = loss(want).backward();
        for (name, t) in [("q", &q), ("k", &k), ("v", &v)] {
            let got = t.grad(&g_host).expect("host gradient");
            let want = t.grad(&g_want).expect("burn gradient");
            got.into_data()
                .assert_approx_eq::<f32>(&want.into_data(), Tolerance::absolute(1e-5));
            eprintln!("{name}: gradients agree");
        }
    }

    #[test]
    fn runs_untracked_without_autodiff() {
        let device = Device::flex();
        let x = Tensor::<3>::random([2, 5, 8], Distribution::Normal(0.0, 1.0), &device);
        let spec = TrainAttention {
            heads: 2,
            head_dim: 4,
            seq: 5,
            lens: vec![5, 3],
            dropout: None,
        };
        assert!(applies(&x));
        let out = train_attention(x.clone(), x.clone(), x, spec);
        assert_eq!(out.dims(), [2, 5, 8]);
    }
}
