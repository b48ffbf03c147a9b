//! One forward pass of an already-built batch, folded or not, with the last layer copied to the
//! host. Shared by the tasks that build their own batches (perturbation, gene embeddings).

use crate::model::{BertModel, FoldedEmbedding, ForwardOptions, ModelInput, OutputRows};

/// The last layer of `input` as `(row-major [B, S, H] floats, S)`; S counts the CLS row.
pub(crate) fn last_layer(
    bert: &BertModel,
    folded: Option<&FoldedEmbedding>,
    input: &ModelInput,
    alpha: f32,
) -> (Vec<f32>, usize) {
    let fwd = ForwardOptions {
        alpha,
        output_hidden_states: false,
        // The official perturbation alignment compares padded positions too.
        rows: OutputRows::All,
    };
    let out = match folded {
        Some(f) => {
            let emb = f.forward(
                &bert.embeddings,
                input.input_ids.clone(),
                input.values.clone(),
                input.species.clone(),
                alpha,
            );
            bert.encode(emb, input, fwd)
        }
        None => bert.forward(input, fwd),
    };
    let [_, s, _] = out.last_hidden_state.dims();
    let data = out
        .last_hidden_state
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32 model output");
    (data, s)
}
