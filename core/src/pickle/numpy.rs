//! The numpy half of the pickle machine: the globals it may import (`_reconstruct`, `dtype`,
//! `scalar`, `_frombuffer`), and REDUCE / BUILD turning their state into arrays.

use super::super::PickleError;
use super::super::value::{DType, NdArray, Value};
use super::Machine;

impl Machine<'_> {
    pub(super) fn global(&self, module: String, name: String) -> Result<Value, PickleError> {
        let allowed = matches!(
            (module.as_str(), name.as_str()),
            (
                "numpy.core.multiarray" | "numpy._core.multiarray",
                "_reconstruct" | "scalar"
            ) | ("numpy.core.numeric" | "numpy._core.numeric", "_frombuffer")
                | ("numpy", "ndarray" | "dtype")
                | ("_codecs", "encode")
                | (
                    "builtins" | "__builtin__",
                    "bytearray" | "set" | "frozenset"
                )
                | ("collections", "OrderedDict")
        );
        if allowed {
            Ok(Value::Global(module, name))
        } else {
            Err(PickleError::UnsupportedGlobal {
                file: self.source.to_string(),
                module,
                name,
            })
        }
    }

    pub(super) fn reduce(&self, func: Value, args: Value) -> Result<Value, PickleError> {
        let Value::Global(_, name) = &func else {
            return Err(self.err(format!("REDUCE on non-callable {}", func.describe())));
        };
        let Value::Tuple(args) = args else {
            return Err(self.err("REDUCE arguments are not a tuple"));
        };
        match name.as_str() {
            "_reconstruct" => Ok(Value::PendingArray),
            "dtype" => match args.first() {
                Some(Value::Str(code)) => Ok(Value::DTypeObj(DType::parse(code), code.clone())),
                _ => Err(self.err("numpy.dtype expects a type code")),
            },
            "encode" => match args.first() {
                // Protocol 2 pickles bytes as _codecs.encode(latin-1 text, 'latin1').
                Some(Value::Str(s)) => Ok(Value::Bytes(self.latin1(s)?)),
                _ => Err(self.err("_codecs.encode expects a string")),
            },
            "bytearray" => match args.first() {
                None => Ok(Value::Bytes(Vec::new())),
                Some(Value::Str(s)) => Ok(Value::Bytes(self.latin1(s)?)),
                Some(Value::Bytes(b)) => Ok(Value::Bytes(b.clone())),
                Some(other) => Err(self.err(format!("bytearray of {}", other.describe()))),
            },
            "set" | "frozenset" => match args.into_iter().next() {
                None => Ok(Value::List(Vec::new())),
                Some(Value::List(l)) | Some(Value::Tuple(l)) => Ok(Value::List(l)),
                Some(other) => Err(self.err(format!("set of {}", other.describe()))),
            },
            "OrderedDict" => Ok(Value::Dict(Vec::new())),
            "scalar" => {
                let (Some(Value::DTypeObj(dt, code)), Some(raw)) = (args.first(), args.get(1))
                else {
                    return Err(self.err("numpy scalar expects (dtype, bytes)"));
                };
                let raw = self.raw_bytes(raw)?;
                let dt =
                    dt.ok_or_else(|| self.err(format!("unsupported numpy scalar dtype {code:?}")))?;
                let data = self.decode(&raw, dt, code.starts_with('>'), 1)?;
                Ok(match dt {
                    DType::F32 | DType::F64 => Value::Float(data[0]),
                    DType::I32 | DType::I64 => Value::Int(data[0] as i64),
                })
            }
            "_frombuffer" => {
                let (Some(buf), Some(Value::DTypeObj(dt, code)), Some(Value::Tuple(shape))) =
                    (args.first(), args.get(1), args.get(2))
                else {
                    return Err(self.err("numpy _frombuffer expects (buffer, dtype, shape, order)"));
                };
                let fortran = matches!(args.get(3), Some(Value::Str(o)) if o == "F");
                self.array(buf, *dt, code, shape, fortran)
            }
            _ => Err(self.err(format!("{name} is not callable here"))),
        }
    }

    pub(super) fn build(&self, obj: Value, state: Value) -> Result<Value, PickleError> {
        match obj {
            Value::DTypeObj(dt, code) => {
                // state = (version, endian, subarray, names, fields, elsize, alignment, flags)
                let endian = match &state {
                    Value::Tuple(t) => match t.get(1) {
                        Some(Value::Str(e)) => e.clone(),
                        _ => String::new(),
                    },
                    _ => String::new(),
                };
                let code = if endian == ">" {
                    format!(">{}", code.trim_start_matches(['<', '>', '=', '|']))
                } else {
                    code
                };
                Ok(Value::DTypeObj(dt, code))
            }
            Value::PendingArray => {
                // state = (version, shape, dtype, is_fortran, rawdata)
                let Value::Tuple(t) = state else {
                    return Err(self.err("numpy array state is not a tuple"));
                };
                let (
                    Some(Value::Tuple(shape)),
                    Some(Value::DTypeObj(dt, code)),
                    Some(fortran),
                    Some(raw),
                ) = (t.get(1), t.get(2), t.get(3), t.get(4))
                else {
                    return Err(self.err("numpy array state has an unexpected layout"));
                };
                let fortran = fortran.as_int() == Some(1);
                self.array(raw, *dt, code, shape, fortran)
            }
            Value::Dict(mut d) => {
                // BUILD with a dict state on a plain dict-like object: merge.
                if let Value::Dict(s) = state {
                    d.extend(s);
                }
                Ok(Value::Dict(d))
            }
            other => Err(self.err(format!("BUILD on {}", other.describe()))),
        }
    }

    fn latin1(&self, s: &str) -> Result<Vec<u8>, PickleError> {
        s.chars()
            .map(|c| {
                u8::try_from(c as u32)
                    .map_err(|_| self.err("byte string has a non-latin-1 character"))
            })
            .collect()
    }

    fn raw_bytes(&self, raw: &Value) -> Result<Vec<u8>, PickleError> {
        match raw {
            Value::Bytes(b) => Ok(b.clone()),
            Value::Str(s) => self.latin1(s),
            Value::List(_) => Err(self.err("numpy object arrays (dtype=object) are not supported")),
            other => Err(self.err(format!("numpy data is {}", other.describe()))),
        }
    }

    fn array(
        &self,
        raw: &Value,
        dt: Option<DType>,
        code: &str,
        shape: &[Value],
        fortran: bool,
    ) -> Result<Value, PickleError> {
        let dt = dt.ok_or_else(|| {
            self.err(format!(
                "numpy dtype {code:?} is not supported (float32, float64, int32, int64 are)"
            ))
        })?;
        let shape: Vec<usize> = shape
            .iter()
            .map(|d| d.as_int().and_then(|i| usize::try_from(i).ok()))
            .collect::<Option<_>>()
            .ok_or_else(|| self.err("numpy shape is not a tuple of non-negative ints"))?;
        if fortran && shape.iter().filter(|&&d| d > 1).count() > 1 {
            return Err(
                self.err("Fortran-ordered multi-dimensional numpy arrays are not supported")
            );
        }
        let n: usize = shape.iter().product();
        let raw = self.raw_bytes(raw)?;
        let data = self.decode(&raw, dt, code.starts_with('>'), n)?;
        Ok(Value::Array(NdArray {
            dtype: dt,
            shape,
            data,
        }))
    }

    fn decode(&self, raw: &[u8], dt: DType, big: bool, n: usize) -> Result<Vec<f64>, PickleError> {
        let sz = dt.size();
        if raw.len() != n * sz {
            return Err(self.err(format!(
                "numpy data has {} bytes, expected {} ({} elements of {} bytes)",
                raw.len(),
                n * sz,
                n,
                sz
            )));
        }
        Ok(raw
            .chunks_exact(sz)
            .map(|c| {
                let mut b = [0u8; 8];
                b[..sz].copy_from_slice(c);
                if big {
                    b[..sz].reverse();
                }
                match dt {
                    DType::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
                    DType::F64 => f64::from_le_bytes(b),
                    DType::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
                    DType::I64 => i64::from_le_bytes(b) as f64,
                }
            })
            .collect())
    }
}
