//! The embedding plot's layouts: the PCA sent with every annotation, or a UMAP the page asks the
//! worker for on the same pooled embeddings. No browser APIs here: the settings, the caption,
//! the check before asking, and the throttle of the worker's progress messages.

use genecompass_core::tasks::umap::{Init, MAX_CELLS, Metric, UmapOptions};

/// Which 2-D layout the plot shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// The first two principal components (computed with every annotation).
    #[default]
    Pca,
    /// UMAP, computed on request.
    Umap,
}

impl Layout {
    /// The `<select>` option value.
    pub fn value(self) -> &'static str {
        match self {
            Self::Pca => "pca",
            Self::Umap => "umap",
        }
    }

    /// Parses an option value (anything unknown is PCA).
    pub fn from_value(v: &str) -> Self {
        if v == "umap" { Self::Umap } else { Self::Pca }
    }
}

/// The UMAP the page shows: cosine metric, PCA initialisation, seed 42, umap-learn's other
/// defaults (15 neighbours, min_dist 0.1).
pub fn umap_options() -> UmapOptions {
    UmapOptions {
        metric: Metric::Cosine,
        init: Init::Pca,
        seed: 42,
        ..UmapOptions::default()
    }
}

/// The caption's first words for a layout: the PCA's variance shares, or the UMAP's settings.
pub fn caption(layout: Layout, explained: [f64; 2]) -> String {
    match layout {
        Layout::Pca => format!(
            "PCA of the classifier's pooled cell embeddings: PC1 {:.1} %, PC2 {:.1} % of the \
             variance",
            explained[0] * 100.0,
            explained[1] * 100.0
        ),
        Layout::Umap => {
            let o = umap_options();
            let metric = match o.metric {
                Metric::Cosine => "cosine",
                Metric::Euclidean => "euclidean",
            };
            format!(
                "UMAP ({} neighbours, min_dist {}, {metric}) of the classifier's pooled cell \
                 embeddings",
                o.n_neighbors, o.min_dist
            )
        }
    }
}

/// Why the page will not ask for a UMAP of `cells` cells, if it will not.
pub fn umap_refusal(cells: usize) -> Option<String> {
    (cells > MAX_CELLS).then(|| {
        format!(
            "UMAP needs a subsample: {cells} cells is more than its limit of {MAX_CELLS} (its \
             exact neighbour search grows with the square of the cells). Annotate at most \
             {MAX_CELLS} cells to see it; the plot stays on PCA"
        )
    })
}

/// Decides which progress callbacks become messages: at most one per `min_ms` and per
/// `min_step` of progress, plus the end.
#[derive(Debug, Clone)]
pub struct Throttle {
    min_step: f32,
    min_ms: f64,
    last: Option<(f32, f64)>,
}

impl Throttle {
    /// A throttle letting through one message per `min_step` of progress and `min_ms`.
    pub fn new(min_step: f32, min_ms: f64) -> Self {
        Self {
            min_step,
            min_ms,
            last: None,
        }
    }

    /// Whether to post `fraction` at time `now_ms`; the first call and the end (1) always pass.
    pub fn due(&mut self, fraction: f32, now_ms: f64) -> bool {
        let pass = match self.last {
            None => true,
            Some(_) if fraction >= 1.0 => true,
            Some((f, t)) => fraction - f >= self.min_step && now_ms - t >= self.min_ms,
        };
        if pass {
            self.last = Some((fraction, now_ms));
        }
        pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captions_name_the_layout() {
        assert_eq!(
            caption(Layout::Pca, [0.123, 0.045]),
            "PCA of the classifier's pooled cell embeddings: PC1 12.3 %, PC2 4.5 % of the variance"
        );
        assert!(
            caption(Layout::Umap, [0.0; 2])
                .starts_with("UMAP (15 neighbours, min_dist 0.1, cosine)"),
            "{}",
            caption(Layout::Umap, [0.0; 2])
        );
    }

    #[test]
    fn options_are_cosine_pca_seed_42() {
        let o = umap_options();
        assert_eq!((o.metric, o.init, o.seed), (Metric::Cosine, Init::Pca, 42));
        assert_eq!(o.n_neighbors, 15);
    }

    #[test]
    fn select_values_round_trip() {
        for l in [Layout::Pca, Layout::Umap] {
            assert_eq!(Layout::from_value(l.value()), l);
        }
        assert_eq!(Layout::from_value("tsne"), Layout::Pca);
    }

    #[test]
    fn too_many_cells_are_refused_with_the_limit() {
        assert_eq!(umap_refusal(MAX_CELLS), None);
        let m = umap_refusal(MAX_CELLS + 1).unwrap();
        assert!(m.starts_with("UMAP needs a subsample"), "{m}");
        assert!(m.contains(&MAX_CELLS.to_string()), "{m}");
    }

    #[test]
    fn throttle_passes_first_steps_and_end() {
        let mut t = Throttle::new(0.02, 100.0);
        assert!(t.due(0.0, 0.0), "first");
        assert!(!t.due(0.05, 50.0), "too soon");
        assert!(!t.due(0.01, 500.0), "too small a step");
        assert!(t.due(0.05, 150.0));
        assert!(!t.due(0.06, 400.0), "step counted from the last posted");
        assert!(t.due(1.0, 401.0), "the end always");
        // 200 callbacks (0.5 % each) within 2 s give at most ~20 messages.
        let mut t = Throttle::new(0.02, 100.0);
        let n = (0..=200)
            .filter(|&i| t.due(i as f32 / 200.0, f64::from(i) * 10.0))
            .count();
        assert!((15..=22).contains(&n), "{n} messages");
    }
}
