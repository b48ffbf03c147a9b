use thiserror::Error;

/// Errors from reading single-cell files. Messages name the file, the field and the fix.
#[derive(Debug, Error)]
pub enum DataError {
    /// Reading the file failed at the OS level.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not what its name or contents claim, or a field is malformed.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong and what to do.
        message: String,
    },
}
