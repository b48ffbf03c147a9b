//! The loss curve of a training job: step → loss as an SVG polyline with its axes and min/max
//! labels. [`geometry`] (pure) scales and thins the points; [`LossCurve`] draws them.

use std::collections::BTreeMap;

use leptos::prelude::*;

/// Plot area size and margins, in SVG units.
const W: f64 = 520.0;
const H: f64 = 180.0;
const LEFT: f64 = 64.0;
const BOTTOM: f64 = 26.0;
const TOP: f64 = 10.0;
const RIGHT: f64 = 16.0;
/// Points drawn at most (averaged in buckets beyond that).
const MAX_POINTS: usize = 600;

/// A curve scaled to a `width` × `height` box (y grows downwards).
#[derive(Debug, Clone, PartialEq)]
pub struct Geometry {
    /// `x,y x,y ...` for `<polyline points>`.
    pub points: String,
    /// Points drawn (after thinning).
    pub drawn: usize,
    /// First and last step.
    pub x_range: (u64, u64),
    /// Smallest and largest loss.
    pub y_range: (f64, f64),
}

/// Scales `losses` (step → loss; non-finite losses are skipped) into `width` × `height`,
/// averaging consecutive points in buckets when there are more than `max_points`.
pub fn geometry(
    losses: &BTreeMap<u64, f64>,
    width: f64,
    height: f64,
    max_points: usize,
) -> Option<Geometry> {
    let pts: Vec<(u64, f64)> = losses
        .iter()
        .filter(|(_, l)| l.is_finite())
        .map(|(s, l)| (*s, *l))
        .collect();
    let (first, last) = (pts.first()?.0, pts.last()?.0);
    let (lo, hi) = pts
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.1), b.max(p.1))
        });
    let max_points = max_points.max(2);
    let thinned: Vec<(f64, f64)> = if pts.len() <= max_points {
        pts.iter().map(|(s, l)| (*s as f64, *l)).collect()
    } else {
        let per = pts.len().div_ceil(max_points);
        pts.chunks(per)
            .map(|c| {
                let n = c.len() as f64;
                let s = c.iter().map(|p| p.0 as f64).sum::<f64>() / n;
                let l = c.iter().map(|p| p.1).sum::<f64>() / n;
                (s, l)
            })
            .collect()
    };
    let x = |s: f64| {
        if last > first {
            (s - first as f64) / (last - first) as f64 * width
        } else {
            width / 2.0
        }
    };
    let y = |l: f64| {
        if hi > lo {
            height - (l - lo) / (hi - lo) * height
        } else {
            height / 2.0
        }
    };
    let points = thinned
        .iter()
        .map(|(s, l)| format!("{:.1},{:.1}", x(*s), y(*l)))
        .collect::<Vec<_>>()
        .join(" ");
    Some(Geometry {
        points,
        drawn: thinned.len(),
        x_range: (first, last),
        y_range: (lo, hi),
    })
}

fn loss_label(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 0.01 || v == 0.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.1e}")
    }
}

/// The loss curve; an empty frame until the first step arrives.
#[component]
pub fn LossCurve(#[prop(into)] losses: Signal<BTreeMap<u64, f64>>) -> impl IntoView {
    let geo = Memo::new(move |_| losses.with(|l| geometry(l, W, H, MAX_POINTS)));
    let n = move || losses.with(BTreeMap::len);
    let label = move || match geo.get() {
        Some(g) => format!(
            "Training loss over {} steps, from {} to {}",
            n(),
            loss_label(g.y_range.1),
            loss_label(g.y_range.0)
        ),
        None => "Training loss: no steps yet".into(),
    };
    view! {
        <figure class="loss">
            <svg id="loss-curve" class="loss-curve" role="img" aria-label=label
                width=LEFT + W + RIGHT height=TOP + H + BOTTOM
                viewBox=format!("0 0 {} {}", LEFT + W + RIGHT, TOP + H + BOTTOM)
                data-points=n>
                <g transform=format!("translate({LEFT},{TOP})")>
                    <rect class="plot-bg" x="0" y="0" width=W height=H></rect>
                    <line class="axis" x1="0" y1=H x2=W y2=H></line>
                    <line class="axis" x1="0" y1="0" x2="0" y2=H></line>
                    {move || geo.get().map(|g| view! {
                        <polyline class="loss-line" points=g.points data-drawn=g.drawn></polyline>
                        <text id="loss-y-max" class="tick" x="-6" y="10" text-anchor="end">
                            {loss_label(g.y_range.1)}
                        </text>
                        <text id="loss-y-min" class="tick" x="-6" y=H text-anchor="end">
                            {loss_label(g.y_range.0)}
                        </text>
                        <text id="loss-x-min" class="tick" x="0" y=H + 16.0 text-anchor="start">
                            {format!("step {}", g.x_range.0)}
                        </text>
                        <text id="loss-x-max" class="tick" x=W y=H + 16.0 text-anchor="end">
                            {format!("step {}", g.x_range.1)}
                        </text>
                    })}
                    <text class="axis-title" x=W / 2.0 y=H + 16.0 text-anchor="middle">"step"</text>
                    <text class="axis-title" x="-6" y=H / 2.0 text-anchor="end">"loss"</text>
                </g>
            </svg>
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(v: &[(u64, f64)]) -> BTreeMap<u64, f64> {
        v.iter().copied().collect()
    }

    #[test]
    fn scales_steps_and_losses_into_the_box() {
        let g = geometry(&pts(&[(1, 2.5), (2, 1.5), (3, 0.5)]), 100.0, 50.0, 600).unwrap();
        // First step at x = 0, last at the width; the largest loss at the top (y = 0).
        assert_eq!(g.points, "0.0,0.0 50.0,25.0 100.0,50.0");
        assert_eq!(g.x_range, (1, 3));
        assert_eq!(g.y_range, (0.5, 2.5));
        assert_eq!(g.drawn, 3);
    }

    #[test]
    fn degenerate_curves_are_centred_and_bad_values_skipped() {
        assert_eq!(geometry(&BTreeMap::new(), 100.0, 50.0, 600), None);
        let one = geometry(&pts(&[(7, 1.0)]), 100.0, 50.0, 600).unwrap();
        assert_eq!(one.points, "50.0,25.0");
        let flat = geometry(&pts(&[(1, 1.0), (5, 1.0), (6, f64::NAN)]), 100.0, 50.0, 600).unwrap();
        assert_eq!(flat.points, "0.0,25.0 100.0,25.0");
        assert_eq!(flat.x_range, (1, 5));
        assert_eq!(geometry(&pts(&[(1, f64::INFINITY)]), 1.0, 1.0, 600), None);
    }

    #[test]
    fn long_runs_are_thinned_but_keep_their_true_range() {
        let many: BTreeMap<u64, f64> = (1..=10_000u64).map(|s| (s, 1.0 / s as f64)).collect();
        let g = geometry(&many, 500.0, 100.0, 600).unwrap();
        assert!(g.drawn <= 600 && g.drawn >= 500, "{}", g.drawn);
        assert_eq!(g.points.split(' ').count(), g.drawn);
        assert_eq!(g.x_range, (1, 10_000));
        assert_eq!(g.y_range, (1e-4, 1.0));
        for p in g.points.split(' ') {
            let (x, y) = p.split_once(',').unwrap();
            let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
            assert!(
                (0.0..=500.0).contains(&x) && (0.0..=100.0).contains(&y),
                "{p}"
            );
        }
    }

    #[test]
    fn labels_stay_short() {
        assert_eq!(loss_label(2.55426), "2.554");
        assert_eq!(loss_label(0.0001234), "1.2e-4");
        assert_eq!(loss_label(1234.4), "1234");
        assert_eq!(loss_label(0.0), "0.000");
    }
}
