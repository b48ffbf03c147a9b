//! Pieces of the annotate page.

mod chart;
mod perturb;
mod report;
mod scatter;
mod table;

pub use chart::LabelChart;
pub use perturb::{PerturbPanel, PerturbState};
pub use report::{FileReportView, QcReportView};
pub use scatter::EmbeddingPlot;
pub use table::ResultsTable;
