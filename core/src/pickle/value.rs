//! The decoded pickle value tree.

/// Element type of a decoded numpy array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// `float32` (`f4`).
    F32,
    /// `float64` (`f8`).
    F64,
    /// `int32` (`i4`).
    I32,
    /// `int64` (`i8`).
    I64,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F64 | DType::I64 => 8,
        }
    }

    /// Parses a numpy dtype code such as `f4`, `<f8`, `float32`.
    pub fn parse(code: &str) -> Option<Self> {
        match code.trim_start_matches(['<', '>', '=', '|']) {
            "f4" | "float32" => Some(DType::F32),
            "f8" | "float64" => Some(DType::F64),
            "i4" | "int32" => Some(DType::I32),
            "i8" | "int64" => Some(DType::I64),
            _ => None,
        }
    }
}

/// A numpy array decoded from a pickle (C order; values converted to host order).
#[derive(Debug, Clone, PartialEq)]
pub struct NdArray {
    /// Element type as stored in the file.
    pub dtype: DType,
    /// Shape (1-D arrays have one entry).
    pub shape: Vec<usize>,
    /// The values, widened to f64 (exact for every supported dtype except int64 beyond 2^53).
    pub data: Vec<f64>,
}

impl NdArray {
    /// The values as f32 (how GeneCompass feeds prior-knowledge vectors to the model).
    pub fn to_f32(&self) -> Vec<f32> {
        self.data.iter().map(|&x| x as f32).collect()
    }
}

/// A decoded pickle value. Only data types are represented.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// `bool`.
    Bool(bool),
    /// `int` (within i64).
    Int(i64),
    /// `float` or a numpy float scalar.
    Float(f64),
    /// `str`.
    Str(String),
    /// `bytes` / `bytearray`.
    Bytes(Vec<u8>),
    /// `tuple`.
    Tuple(Vec<Value>),
    /// `list`.
    List(Vec<Value>),
    /// `dict`, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A numpy array.
    Array(NdArray),
    /// Internal: a reference to an allowed global (numpy helpers) before it is called.
    Global(String, String),
    /// Internal: a numpy dtype under construction.
    DTypeObj(Option<DType>, String),
    /// Internal: an empty numpy array awaiting its `BUILD` state.
    PendingArray,
}

impl Value {
    /// The integer value of `Int`/`Bool`.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    /// The numeric value of `Float`/`Int`/`Bool`.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(x) => Some(*x),
            Value::Int(i) => Some(*i as f64),
            Value::Bool(b) => Some(*b as i64 as f64),
            _ => None,
        }
    }

    /// A short description for error messages (type and a preview).
    pub fn describe(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(b) => format!("bool {b}"),
            Value::Int(i) => format!("int {i}"),
            Value::Float(x) => format!("float {x}"),
            Value::Str(s) => format!("str {:?}", s.chars().take(40).collect::<String>()),
            Value::Bytes(b) => format!("bytes of length {}", b.len()),
            Value::Tuple(v) => format!(
                "tuple ({})",
                v.iter()
                    .map(|x| x.describe())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Value::List(v) => format!("list of {} items", v.len()),
            Value::Dict(v) => format!("dict of {} items", v.len()),
            Value::Array(a) => format!("numpy array {:?} of shape {:?}", a.dtype, a.shape),
            Value::Global(m, n) => format!("global {m}.{n}"),
            Value::DTypeObj(_, c) => format!("numpy dtype {c}"),
            Value::PendingArray => "incomplete numpy array".into(),
        }
    }
}
