//! Pieces of the annotate page.

mod chart;
mod report;
mod scatter;
mod table;

pub use chart::LabelChart;
pub use report::{FileReportView, QcReportView};
pub use scatter::EmbeddingPlot;
pub use table::ResultsTable;
