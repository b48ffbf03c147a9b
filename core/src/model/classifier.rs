//! `BertForSequenceClassification`: pooler → dropout → linear (spec §10).

use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::prelude::*;

use super::bert::{BertModel, init_bert};
use super::config::GeneCompassConfig;
use super::init::normal_linear;
use super::input::{ForwardOptions, ModelInput};

/// The cell-type classifier.
#[derive(Module, Debug)]
pub struct GeneCompassForSequenceClassification {
    /// `bert` (with pooler).
    pub bert: BertModel,
    /// Classifier dropout.
    pub dropout: Dropout,
    /// `classifier` `Linear(H → C)`.
    pub classifier: Linear,
}

/// A freshly initialised classifier (pooler and head new, as in fine-tuning).
pub fn init_classifier(
    config: &GeneCompassConfig,
    num_labels: usize,
    device: &Device,
) -> GeneCompassForSequenceClassification {
    GeneCompassForSequenceClassification {
        bert: init_bert(config, true, device),
        dropout: DropoutConfig::new(
            config
                .classifier_dropout
                .unwrap_or(config.hidden_dropout_prob),
        )
        .init(),
        classifier: normal_linear(
            config.hidden_size,
            num_labels,
            config.initializer_range,
            device,
        ),
    }
}

impl GeneCompassForSequenceClassification {
    /// Class logits.
    ///
    /// # Shapes
    /// - returns `[B, C]`
    pub fn forward(&self, input: &ModelInput, options: ForwardOptions) -> Tensor<2> {
        self.forward_with_pooled(input, options).0
    }

    /// Class logits and the pooler output.
    pub fn forward_with_pooled(
        &self,
        input: &ModelInput,
        options: ForwardOptions,
    ) -> (Tensor<2>, Tensor<2>) {
        let out = self.bert.forward(input, options);
        let pooled = out
            .pooled
            .expect("a classifier's BertModel always has a pooler");
        (
            self.classifier
                .forward(super::dropout::forward(&self.dropout, pooled.clone())),
            pooled,
        )
    }

    /// Number of classes.
    pub fn num_labels(&self) -> usize {
        self.classifier.weight.dims()[1]
    }
}
