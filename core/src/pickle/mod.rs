//! A minimal, safe reader for the Python pickles GeneCompass ships (protocols 2–5).
//!
//! Only data opcodes are interpreted. The only callables accepted are the handful numpy and the
//! standard library use to pickle arrays, scalars and bytes (`numpy.core.multiarray._reconstruct`,
//! `numpy.dtype`, `numpy.core.multiarray.scalar`, `numpy.core.numeric._frombuffer`,
//! `_codecs.encode`, and their `numpy._core` spellings); they are evaluated by this module, never
//! executed. Any other global is refused, so a hostile pickle cannot run code.
//!
//! Typed helpers ([`str_int_dict`], [`int_int_dict`], [`str_float_dict`], [`str_str_dict`],
//! [`str_array_dict`]) convert the generic [`Value`] into the dictionaries GeneCompass uses.

mod machine;
mod value;

pub use machine::unpickle;
pub use value::{DType, NdArray, Value};

use std::collections::HashMap;
use thiserror::Error;

/// Errors from reading a pickle. `source` names the file (or "<bytes>").
#[derive(Debug, Error)]
pub enum PickleError {
    /// The file is a Git LFS pointer, not the data.
    #[error(
        "{file}: this is a Git LFS pointer file (starts with \"version https://git-lfs\"), not the pickle itself; \
         run `git lfs pull` in the repository you copied it from (or download the real file), then retry"
    )]
    LfsPointer {
        /// The file.
        file: String,
    },
    /// The bytes are not a pickle this reader understands, or are truncated/corrupt.
    #[error("{file}: not a valid pickle at byte {offset}: {message}")]
    Corrupt {
        /// The file.
        file: String,
        /// Byte offset where decoding failed.
        offset: usize,
        /// What went wrong.
        message: String,
    },
    /// The pickle references a Python callable this safe reader does not evaluate.
    #[error(
        "{file}: the pickle calls `{module}.{name}`, which this reader does not evaluate \
         (only plain dicts/lists/numbers/strings and 1-D numpy arrays are supported); re-save the data with \
         plain Python types or as JSON"
    )]
    UnsupportedGlobal {
        /// The file.
        file: String,
        /// Python module.
        module: String,
        /// Python name.
        name: String,
    },
    /// The pickle decoded, but does not have the expected shape (e.g. `dict[str,int]`).
    #[error("{file}: expected {expected}, found {found}")]
    Shape {
        /// The file.
        file: String,
        /// What was expected.
        expected: String,
        /// What was found.
        found: String,
    },
    /// Reading the file failed.
    #[error("{file}: {error}")]
    Io {
        /// The file.
        file: String,
        /// The OS error.
        error: std::io::Error,
    },
}

/// Reads a pickle file from disk (native only: the browser passes bytes to [`unpickle`]).
pub fn read_file(path: &std::path::Path) -> Result<Value, PickleError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|error| PickleError::Io {
        file: name.clone(),
        error,
    })?;
    unpickle(&bytes, &name)
}

fn shape_err(source: &str, expected: &str, found: &Value) -> PickleError {
    PickleError::Shape {
        file: source.to_string(),
        expected: expected.to_string(),
        found: found.describe(),
    }
}

fn dict_items<'a>(
    v: &'a Value,
    source: &str,
    expected: &str,
) -> Result<&'a [(Value, Value)], PickleError> {
    match v {
        Value::Dict(items) => Ok(items),
        other => Err(shape_err(source, expected, other)),
    }
}

/// Converts a decoded pickle into `dict[str, int]` (e.g. the token dictionary).
pub fn str_int_dict(v: &Value, source: &str) -> Result<HashMap<String, i64>, PickleError> {
    const E: &str = "dict[str, int]";
    let mut out = HashMap::new();
    for (k, val) in dict_items(v, source, E)? {
        match (k, val.as_int()) {
            (Value::Str(k), Some(i)) => {
                out.insert(k.clone(), i);
            }
            _ => {
                return Err(shape_err(
                    source,
                    E,
                    &Value::Tuple(vec![k.clone(), val.clone()]),
                ));
            }
        }
    }
    Ok(out)
}

/// Converts a decoded pickle into `dict[int, int]` (e.g. the homolog token map).
pub fn int_int_dict(v: &Value, source: &str) -> Result<HashMap<i64, i64>, PickleError> {
    const E: &str = "dict[int, int]";
    let mut out = HashMap::new();
    for (k, val) in dict_items(v, source, E)? {
        match (k.as_int(), val.as_int()) {
            (Some(k), Some(i)) => {
                out.insert(k, i);
            }
            _ => {
                return Err(shape_err(
                    source,
                    E,
                    &Value::Tuple(vec![k.clone(), val.clone()]),
                ));
            }
        }
    }
    Ok(out)
}

/// Converts a decoded pickle into `dict[str, float]` (e.g. a gene median dict). Ints and
/// numpy scalars are accepted as values.
pub fn str_float_dict(v: &Value, source: &str) -> Result<HashMap<String, f64>, PickleError> {
    const E: &str = "dict[str, float]";
    let mut out = HashMap::new();
    for (k, val) in dict_items(v, source, E)? {
        match (k, val.as_f64()) {
            (Value::Str(k), Some(x)) => {
                out.insert(k.clone(), x);
            }
            _ => {
                return Err(shape_err(
                    source,
                    E,
                    &Value::Tuple(vec![k.clone(), val.clone()]),
                ));
            }
        }
    }
    Ok(out)
}

/// Converts a decoded pickle into `dict[str, str]` (e.g. Ensembl id → symbol).
pub fn str_str_dict(v: &Value, source: &str) -> Result<HashMap<String, String>, PickleError> {
    const E: &str = "dict[str, str]";
    let mut out = HashMap::new();
    for (k, val) in dict_items(v, source, E)? {
        match (k, val) {
            (Value::Str(k), Value::Str(s)) => {
                out.insert(k.clone(), s.clone());
            }
            _ => {
                return Err(shape_err(
                    source,
                    E,
                    &Value::Tuple(vec![k.clone(), val.clone()]),
                ));
            }
        }
    }
    Ok(out)
}

/// Converts a decoded pickle into `dict[str, numpy.ndarray]` (prior-knowledge vectors).
/// Keys keep the pickle's insertion order.
pub fn str_array_dict(v: &Value, source: &str) -> Result<Vec<(String, NdArray)>, PickleError> {
    const E: &str = "dict[str, numpy.ndarray]";
    let mut out = Vec::new();
    for (k, val) in dict_items(v, source, E)? {
        match (k, val) {
            (Value::Str(k), Value::Array(a)) => out.push((k.clone(), a.clone())),
            _ => {
                return Err(shape_err(
                    source,
                    E,
                    &Value::Tuple(vec![k.clone(), val.clone()]),
                ));
            }
        }
    }
    Ok(out)
}
