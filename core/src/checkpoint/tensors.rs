//! Raw tensors of a weights file, by checkpoint key, before they become model parameters.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::CheckpointError;

/// Element type as stored in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredDtype {
    /// 64-bit float.
    F64,
    /// 32-bit float.
    F32,
    /// IEEE half.
    F16,
    /// bfloat16.
    BF16,
    /// 64-bit signed integer.
    I64,
    /// 32-bit signed integer.
    I32,
    /// 16-bit signed integer.
    I16,
    /// 8-bit signed integer.
    I8,
    /// 8-bit unsigned integer.
    U8,
    /// Boolean (one byte).
    Bool,
    /// Anything else (named).
    Other(&'static str),
}

/// One tensor: dtype, shape and little-endian bytes (row-major).
#[derive(Debug, Clone)]
pub struct StoredTensor {
    /// Element type.
    pub dtype: StoredDtype,
    /// Shape; empty for a 0-dim scalar.
    pub shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl StoredTensor {
    /// Wraps raw little-endian bytes.
    pub fn new(dtype: StoredDtype, shape: Vec<usize>, bytes: Vec<u8>) -> Self {
        Self {
            dtype,
            shape,
            bytes,
        }
    }

    /// Number of elements (1 for a scalar).
    pub fn num_elements(&self) -> usize {
        self.shape.iter().product()
    }

    /// The values as f32 (from any float or integer dtype); `None` for unsupported dtypes.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        let b = &self.bytes;
        Some(match self.dtype {
            StoredDtype::F32 => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            StoredDtype::F64 => b
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8-byte chunk")) as f32)
                .collect(),
            StoredDtype::F16 => b
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            StoredDtype::BF16 => b
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            _ => self.to_i64()?.into_iter().map(|v| v as f32).collect(),
        })
    }

    /// The values as i64 (integer dtypes only).
    pub fn to_i64(&self) -> Option<Vec<i64>> {
        let b = &self.bytes;
        Some(match self.dtype {
            StoredDtype::I64 => b
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8-byte chunk")))
                .collect(),
            StoredDtype::I32 => b
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                .collect(),
            StoredDtype::I16 => b
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as i64)
                .collect(),
            StoredDtype::I8 => b.iter().map(|&v| v as i8 as i64).collect(),
            StoredDtype::U8 | StoredDtype::Bool => b.iter().map(|&v| v as i64).collect(),
            _ => return None,
        })
    }

    /// Dtype name for messages.
    pub fn dtype_name(&self) -> String {
        format!("{:?}", self.dtype)
    }
}

/// All tensors of one weights file.
#[derive(Debug, Clone, Default)]
pub struct TensorMap {
    /// The file they came from (for messages).
    pub path: String,
    /// Tensors by checkpoint key.
    pub tensors: BTreeMap<String, StoredTensor>,
}

impl TensorMap {
    /// Reads a `.safetensors` file.
    pub fn read_safetensors(path: &Path) -> Result<Self, CheckpointError> {
        let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_safetensors_bytes(&path.display().to_string(), &bytes)
    }

    /// Parses safetensors bytes (works without a filesystem, e.g. in the browser).
    pub fn from_safetensors_bytes(name: &str, bytes: &[u8]) -> Result<Self, CheckpointError> {
        use safetensors::Dtype;
        let st =
            safetensors::SafeTensors::deserialize(bytes).map_err(|e| CheckpointError::Corrupt {
                path: name.to_string(),
                message: e.to_string(),
            })?;
        let mut tensors = BTreeMap::new();
        for (key, view) in st.tensors() {
            let dtype = match view.dtype() {
                Dtype::F64 => StoredDtype::F64,
                Dtype::F32 => StoredDtype::F32,
                Dtype::F16 => StoredDtype::F16,
                Dtype::BF16 => StoredDtype::BF16,
                Dtype::I64 => StoredDtype::I64,
                Dtype::I32 => StoredDtype::I32,
                Dtype::I16 => StoredDtype::I16,
                Dtype::I8 => StoredDtype::I8,
                Dtype::U8 => StoredDtype::U8,
                Dtype::BOOL => StoredDtype::Bool,
                _ => StoredDtype::Other("unsupported"),
            };
            tensors.insert(
                key,
                StoredTensor::new(dtype, view.shape().to_vec(), view.data().to_vec()),
            );
        }
        Ok(Self {
            path: name.to_string(),
            tensors,
        })
    }

    /// Reads a `pytorch_model.bin` (torch zip or legacy pickle; tied storages, 0-dim tensors).
    #[cfg(feature = "pytorch")]
    pub fn read_pytorch(path: &Path) -> Result<Self, CheckpointError> {
        use pytorch_reader::DType;
        let name = path.display().to_string();
        let corrupt = |message: String| CheckpointError::Corrupt {
            path: name.clone(),
            message,
        };
        let reader =
            pytorch_reader::PytorchReader::new(path).map_err(|e| corrupt(e.to_string()))?;
        let mut tensors = BTreeMap::new();
        for (key, t) in reader.into_tensors() {
            let dtype = match t.dtype() {
                DType::F64 => StoredDtype::F64,
                DType::F32 => StoredDtype::F32,
                DType::F16 => StoredDtype::F16,
                DType::BF16 => StoredDtype::BF16,
                DType::I64 => StoredDtype::I64,
                DType::I32 => StoredDtype::I32,
                DType::I16 => StoredDtype::I16,
                DType::I8 => StoredDtype::I8,
                DType::U8 => StoredDtype::U8,
                DType::Bool => StoredDtype::Bool,
                DType::U64 => StoredDtype::Other("uint64"),
                DType::U32 => StoredDtype::Other("uint32"),
                DType::U16 => StoredDtype::Other("uint16"),
            };
            let mut bytes = t
                .read()
                .map_err(|e| corrupt(format!("tensor `{key}`: {e}")))?;
            if cfg!(target_endian = "big") {
                let size = t.dtype().size();
                bytes.chunks_exact_mut(size).for_each(|c| c.reverse());
            }
            tensors.insert(key, StoredTensor::new(dtype, t.shape().to_vec(), bytes));
        }
        Ok(Self {
            path: name,
            tensors,
        })
    }

    /// Total number of elements.
    pub fn num_elements(&self) -> usize {
        self.tensors.values().map(StoredTensor::num_elements).sum()
    }
}
