//! Pieces of the annotate page.

mod chart;
mod report;
mod table;

pub use chart::LabelChart;
pub use report::{FileReportView, QcReportView};
pub use table::ResultsTable;
