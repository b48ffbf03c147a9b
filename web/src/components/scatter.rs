//! The cells' 2-D embedding (PCA or UMAP, computed in the worker) as an SVG scatter, coloured
//! by call, with the cell, its label and confidence on hover.

use leptos::prelude::*;

use crate::protocol::{CellRow, GenePerturbation};
use crate::results::{UNASSIGNED, argmax, call};

const W: f64 = 520.0;
const H: f64 = 360.0;
const PAD: f64 = 14.0;

/// Cells drawn at most. Every cell is an SVG element: building 12,000 took the page over a
/// minute (2-core machine, Chromium), and a plot 520 pixels wide shows no more with more dots.
/// Larger files draw an evenly spaced subset (every k-th cell by index), said in the caption.
pub const MAX_DOTS: usize = 5_000;

/// The stride of the drawn subset for `n` cells (1: all of them).
pub fn dot_stride(n: usize) -> usize {
    n.div_ceil(MAX_DOTS).max(1)
}

/// Colour-blind-safe palette (Okabe-Ito, then Tol's muted), cycled by label index.
const PALETTE: [&str; 14] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#332288",
    "#117733", "#882255", "#44AA99", "#999933", "#AA4499", "#661100",
];

/// Colour of a call (grey for unassigned).
pub fn colour(label: &str, labels: &[String]) -> &'static str {
    if label == UNASSIGNED {
        return "#9a9a9a";
    }
    let i = labels.iter().position(|l| l == label).unwrap_or(0);
    PALETTE[i % PALETTE.len()]
}

/// Maps points into the plot box, keeping the aspect ratio of the data.
pub fn to_screen(points: &[[f32; 2]]) -> Vec<(f64, f64)> {
    let (mut lo, mut hi) = ([f64::MAX; 2], [f64::MIN; 2]);
    for p in points {
        for k in 0..2 {
            lo[k] = lo[k].min(f64::from(p[k]));
            hi[k] = hi[k].max(f64::from(p[k]));
        }
    }
    let span = (hi[0] - lo[0]).max(hi[1] - lo[1]).max(1e-12);
    let scale = ((W - 2.0 * PAD).min(H - 2.0 * PAD)) / span;
    let (cx, cy) = ((lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0);
    points
        .iter()
        .map(|p| {
            (
                W / 2.0 + (f64::from(p[0]) - cx) * scale,
                // SVG y grows downwards.
                H / 2.0 - (f64::from(p[1]) - cy) * scale,
            )
        })
        .collect()
}

/// The original points followed by every perturbed point, so that one mapping fits both.
fn all_points(points: &[[f32; 2]], perturbed: &[GenePerturbation]) -> Vec<[f32; 2]> {
    let mut all = points.to_vec();
    all.extend(
        perturbed
            .iter()
            .flat_map(|g| g.points.iter().map(|p| p.point)),
    );
    all
}

/// The scatter; `points` are indexed by cell index. Perturbed cells, when any, are drawn as
/// diamonds (coloured by their new argmax label) with a line from where the cell was; only when
/// `on_pca` (they are projected on the PCA axes, which another layout does not share).
#[component]
pub fn EmbeddingPlot(
    #[prop(into)] points: Signal<Vec<[f32; 2]>>,
    /// What the points are ([`crate::layout::caption`]); perturbations are appended.
    #[prop(into)]
    caption: Signal<String>,
    /// Whether `points` are the PCA the perturbations are projected on.
    #[prop(into)]
    on_pca: Signal<bool>,
    rows: RwSignal<Vec<CellRow>>,
    labels: RwSignal<Vec<String>>,
    #[prop(into)] threshold: Signal<f32>,
    perturbed: RwSignal<Vec<GenePerturbation>>,
) -> impl IntoView {
    // The perturbation layer drawn: none off the PCA axes.
    let layer = move |f: &mut dyn FnMut(&[GenePerturbation])| {
        if on_pca.get() {
            perturbed.with(|g| f(g));
        } else {
            f(&[]);
        }
    };
    let moved = move || {
        let pts = points.get();
        let labels = labels.get();
        let mut out = Vec::new();
        layer(&mut |genes| {
            let screen = to_screen(&all_points(&pts, genes));
            let mut k = pts.len();
            for g in genes {
                let gene = g.display();
                for p in &g.points {
                    let (x, y) = screen[k];
                    k += 1;
                    let Some(&(x0, y0)) = screen.get(p.index) else {
                        continue;
                    };
                    let label = labels.get(p.after).cloned().unwrap_or_default();
                    let was = labels.get(p.before).cloned().unwrap_or_default();
                    let fill = colour(&label, &labels);
                    let title = format!("cell {} after {gene}: {was} → {label}", p.index);
                    let d = 4.0;
                    let diamond = format!(
                        "{x:.1},{:.1} {:.1},{y:.1} {x:.1},{:.1} {:.1},{y:.1}",
                        y - d,
                        x + d,
                        y + d,
                        x - d
                    );
                    out.push(view! {
                        <g class="perturbed" data-gene=g.ensembl.clone()>
                            <line class="perturb-arrow" x1=format!("{x0:.1}") y1=format!("{y0:.1}")
                                x2=format!("{x:.1}") y2=format!("{y:.1}") stroke="#333"
                                stroke-width="0.6" stroke-opacity="0.6"></line>
                            <polygon class="perturbed-dot" points=diamond fill=fill stroke="#111"
                                stroke-width="0.8" data-label=label data-index=p.index
                                data-changed=(p.before != p.after).to_string()>
                                <title>{title}</title>
                            </polygon>
                        </g>
                    });
                }
            }
        });
        out.collect_view()
    };
    let dots = move || {
        let pts = points.get();
        let mut screen = Vec::new();
        layer(&mut |g| screen = to_screen(&all_points(&pts, g)));
        let labels = labels.get();
        let t = threshold.get();
        rows.with(|rows| {
            let stride = dot_stride(rows.len());
            rows.iter()
                .filter(|r| r.index % stride == 0)
                .filter_map(|r| {
                    let &(x, y) = screen.get(r.index)?;
                    let label = call(&r.probabilities, &labels, t).to_string();
                    let conf = argmax(&r.probabilities).1;
                    let fill = colour(&label, &labels);
                    let title = format!("{}: {label} ({conf:.2})", r.name);
                    Some(view! {
                        <circle cx=format!("{x:.1}") cy=format!("{y:.1}") r="3" fill=fill
                            data-label=label.clone() data-index=r.index>
                            <title>{title}</title>
                        </circle>
                    })
                })
                .collect_view()
        })
    };
    let legend = move || {
        let labels = labels.get();
        let t = threshold.get();
        let mut present: Vec<String> = rows.with(|rows| {
            rows.iter()
                .map(|r| call(&r.probabilities, &labels, t).to_string())
                .collect()
        });
        present.sort();
        present.dedup();
        present
            .into_iter()
            .map(|l| {
                let c = colour(&l, &labels);
                view! {
                    <li><span class="swatch" style=format!("background:{c}")></span>{l}</li>
                }
            })
            .collect_view()
    };
    let full_caption = move || {
        let after = perturbed.with(|g| {
            let names: Vec<String> = g.iter().map(GenePerturbation::display).collect();
            if g.is_empty() {
                String::new()
            } else if !on_pca.get() {
                format!(
                    ". The cells perturbed ({}) are drawn on the PCA layout only (they are \
                     projected on its axes)",
                    names.join(", ")
                )
            } else {
                format!(
                    ". Diamonds: the perturbed cells after perturbing {} (same axes), coloured \
                     by their new predicted label; lines start where each cell was",
                    names.join(", ")
                )
            }
        });
        let n = rows.with(Vec::len);
        let subset = if n > MAX_DOTS {
            let stride = dot_stride(n);
            format!(
                ". One cell in {stride} is drawn ({} of {n}), to keep the page responsive",
                n.div_ceil(stride)
            )
        } else {
            String::new()
        };
        format!("{}{subset}{after}", caption.get())
    };
    let aria = move || {
        let what = if on_pca.get() { "PCA" } else { "UMAP" };
        format!("2-D {what} of the cell embeddings, coloured by predicted label")
    };
    view! {
        <figure class="embedding">
            <svg id="embedding-plot" class="chart" width=W height=H role="img"
                aria-label=aria>
                <rect class="plot-bg" x="0" y="0" width=W height=H></rect>
                {dots}
                {moved}
            </svg>
            <ul class="legend">{legend}</ul>
            <figcaption id="embedding-caption">{full_caption}</figcaption>
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screen_mapping_keeps_aspect_and_flips_y() {
        let s = to_screen(&[[0.0, 0.0], [2.0, 1.0]]);
        let (dx, dy) = (s[1].0 - s[0].0, s[1].1 - s[0].1);
        assert!(
            (dx + 2.0 * dy).abs() < 1e-9,
            "aspect kept, y flipped: {s:?}"
        );
        assert!(
            (dx - (H - 2.0 * PAD)).abs() < 1e-9,
            "the longer span fills the box: {dx}"
        );
        for (x, y) in s {
            assert!((PAD - 1e-9..=W - PAD + 1e-9).contains(&x));
            assert!((PAD - 1e-9..=H - PAD + 1e-9).contains(&y));
        }
    }

    #[test]
    fn colours_are_stable_per_label() {
        let labels = vec!["a".to_string(), "b".to_string()];
        assert_eq!(colour("b", &labels), PALETTE[1]);
        assert_eq!(colour(UNASSIGNED, &labels), "#9a9a9a");
    }
}
