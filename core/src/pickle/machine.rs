//! The pickle virtual machine: data opcodes only, plus the numpy reconstruction helpers.

use super::PickleError;
use super::value::Value;

#[path = "numpy.rs"]
mod numpy;

/// Decodes a pickle (protocol 2–5, and the binary opcodes of 0–1). `source` names the file in errors.
///
/// Detects Git LFS pointer files and reports them as [`PickleError::LfsPointer`].
pub fn unpickle(bytes: &[u8], source: &str) -> Result<Value, PickleError> {
    if bytes.starts_with(b"version https://git-lfs") {
        return Err(PickleError::LfsPointer {
            file: source.to_string(),
        });
    }
    let mut m = Machine {
        b: bytes,
        pos: 0,
        source,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: Vec::new(),
    };
    m.run()
}

struct Machine<'a> {
    b: &'a [u8],
    pos: usize,
    source: &'a str,
    /// Values with the memo slot they were stored under (to keep memo copies of dtypes current).
    stack: Vec<(Value, Option<usize>)>,
    marks: Vec<usize>,
    memo: Vec<Option<Value>>,
}

impl<'a> Machine<'a> {
    fn err(&self, message: impl Into<String>) -> PickleError {
        PickleError::Corrupt {
            file: self.source.to_string(),
            offset: self.pos,
            message: message.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| {
                self.err(format!("truncated: needs {n} more bytes (file cut short?)"))
            })?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn u32le(&mut self) -> Result<usize, PickleError> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
    }

    fn u64le(&mut self) -> Result<usize, PickleError> {
        let s = self.take(8)?;
        let v = u64::from_le_bytes(s.try_into().expect("8 bytes"));
        usize::try_from(v).map_err(|_| self.err("length does not fit in memory"))
    }

    fn line(&mut self) -> Result<&'a str, PickleError> {
        let rest = &self.b[self.pos..];
        let n = rest
            .iter()
            .position(|&c| c == b'\n')
            .ok_or_else(|| self.err("unterminated text line"))?;
        let s = std::str::from_utf8(&rest[..n]).map_err(|_| self.err("text line is not UTF-8"))?;
        self.pos += n + 1;
        Ok(s)
    }

    fn push(&mut self, v: Value) {
        self.stack.push((v, None));
    }

    fn pop(&mut self) -> Result<Value, PickleError> {
        self.stack
            .pop()
            .map(|(v, _)| v)
            .ok_or_else(|| self.err("stack underflow"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        let m = self.marks.pop().ok_or_else(|| self.err("MARK expected"))?;
        if m > self.stack.len() {
            return Err(self.err("MARK beyond stack"));
        }
        Ok(self.stack.drain(m..).map(|(v, _)| v).collect())
    }

    fn utf8(&self, s: &[u8]) -> Result<String, PickleError> {
        String::from_utf8(s.to_vec()).map_err(|_| self.err("string is not valid UTF-8"))
    }

    fn memo_put(&mut self, idx: usize) -> Result<(), PickleError> {
        let (v, slot) = self.stack.last_mut().ok_or_else(|| PickleError::Corrupt {
            file: self.source.to_string(),
            offset: self.pos,
            message: "memoize on empty stack".into(),
        })?;
        *slot = Some(idx);
        let v = v.clone();
        if idx >= self.memo.len() {
            if idx > 10_000_000 {
                return Err(self.err("memo index out of range"));
            }
            self.memo.resize(idx + 1, None);
        }
        self.memo[idx] = Some(v);
        Ok(())
    }

    fn memo_get(&mut self, idx: usize) -> Result<(), PickleError> {
        let v = self
            .memo
            .get(idx)
            .cloned()
            .flatten()
            .ok_or_else(|| self.err(format!("memo entry {idx} missing")))?;
        self.stack.push((v, Some(idx)));
        Ok(())
    }

    fn top_mut(&mut self) -> Result<&mut Value, PickleError> {
        let pos = self.pos;
        let source = self.source;
        self.stack
            .last_mut()
            .map(|(v, _)| v)
            .ok_or_else(|| PickleError::Corrupt {
                file: source.to_string(),
                offset: pos,
                message: "stack underflow".into(),
            })
    }

    fn run(&mut self) -> Result<Value, PickleError> {
        if self.b.is_empty() {
            return Err(self.err("empty file"));
        }
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    let p = self.u8()?;
                    if p > 5 {
                        return Err(self.err(format!("unsupported pickle protocol {p}")));
                    }
                }
                0x95 => {
                    self.take(8)?;
                }
                b'.' => return self.pop(),
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let top = self
                        .stack
                        .last()
                        .cloned()
                        .ok_or_else(|| self.err("DUP on empty stack"))?;
                    self.stack.push(top);
                }
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'J' => {
                    let s = self.take(4)?;
                    self.push(Value::Int(
                        i32::from_le_bytes([s[0], s[1], s[2], s[3]]) as i64
                    ));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v as i64));
                }
                b'M' => {
                    let s = self.take(2)?;
                    self.push(Value::Int(u16::from_le_bytes([s[0], s[1]]) as i64));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.u8()? as usize
                    } else {
                        self.u32le()?
                    };
                    let s = self.take(n)?;
                    if n > 8 {
                        return Err(self.err(format!("integer of {n} bytes exceeds 64 bits")));
                    }
                    let mut buf = if s.last().is_some_and(|&b| b & 0x80 != 0) {
                        [0xffu8; 8]
                    } else {
                        [0u8; 8]
                    };
                    buf[..n].copy_from_slice(s);
                    self.push(Value::Int(i64::from_le_bytes(buf)));
                }
                b'I' | b'L' => {
                    let l = self.line()?.trim_end_matches('L');
                    let v = match l {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        _ => Value::Int(
                            l.parse()
                                .map_err(|_| self.err(format!("bad integer {l:?}")))?,
                        ),
                    };
                    self.push(v);
                }
                b'G' => {
                    let s = self.take(8)?;
                    self.push(Value::Float(f64::from_be_bytes(
                        s.try_into().expect("8 bytes"),
                    )));
                }
                b'F' => {
                    let l = self.line()?;
                    let x = l
                        .parse()
                        .map_err(|_| self.err(format!("bad float {l:?}")))?;
                    self.push(Value::Float(x));
                }
                0x8c | b'X' | 0x8d => {
                    let n = match op {
                        0x8c => self.u8()? as usize,
                        b'X' => self.u32le()?,
                        _ => self.u64le()?,
                    };
                    let s = self.take(n)?;
                    let s = self.utf8(s)?;
                    self.push(Value::Str(s));
                }
                // Python 2 `str` (SHORT_BINSTRING / BINSTRING): decoded as latin-1, as numpy's loader does.
                b'U' | b'T' => {
                    let n = if op == b'U' {
                        self.u8()? as usize
                    } else {
                        self.u32le()?
                    };
                    let s = self.take(n)?;
                    self.push(Value::Str(s.iter().map(|&c| c as char).collect()));
                }
                b'C' | b'B' | 0x8e | 0x96 => {
                    let n = match op {
                        b'C' => self.u8()? as usize,
                        b'B' => self.u32le()?,
                        _ => self.u64le()?,
                    };
                    let s = self.take(n)?;
                    self.push(Value::Bytes(s.to_vec()));
                }
                0x97 | 0x98 => {
                    return Err(self.err(
                        "out-of-band buffer (pickle protocol 5 with buffer_callback) cannot be read from a file; \
                         re-save with a plain pickle.dump",
                    ));
                }
                b'}' => self.push(Value::Dict(Vec::new())),
                b']' => self.push(Value::List(Vec::new())),
                b')' => self.push(Value::Tuple(Vec::new())),
                0x8f => self.push(Value::List(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err(self.err("stack underflow in TUPLEn"));
                    }
                    let items = self
                        .stack
                        .split_off(self.stack.len() - n)
                        .into_iter()
                        .map(|(v, _)| v)
                        .collect();
                    self.push(Value::Tuple(items));
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Value::List(items));
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.push(Value::List(items));
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let d = self.pairs(items)?;
                    self.push(Value::Dict(d));
                }
                b'a' => {
                    let v = self.pop()?;
                    self.extend_list(vec![v])?;
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    self.extend_list(items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.extend_dict(vec![(k, v)])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    self.extend_dict(pairs)?;
                }
                0x94 => {
                    let idx = self.memo.len();
                    self.memo_put(idx)?;
                }
                b'q' => {
                    let idx = self.u8()? as usize;
                    self.memo_put(idx)?;
                }
                b'r' => {
                    let idx = self.u32le()?;
                    self.memo_put(idx)?;
                }
                b'p' => {
                    let l = self.line()?;
                    let idx = l.parse().map_err(|_| self.err("bad PUT index"))?;
                    self.memo_put(idx)?;
                }
                b'h' => {
                    let idx = self.u8()? as usize;
                    self.memo_get(idx)?;
                }
                b'j' => {
                    let idx = self.u32le()?;
                    self.memo_get(idx)?;
                }
                b'g' => {
                    let l = self.line()?;
                    let idx = l.parse().map_err(|_| self.err("bad GET index"))?;
                    self.memo_get(idx)?;
                }
                b'c' => {
                    let module = self.line()?.to_string();
                    let name = self.line()?.to_string();
                    let g = self.global(module, name)?;
                    self.push(g);
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => {
                            let g = self.global(m, n)?;
                            self.push(g);
                        }
                        _ => return Err(self.err("STACK_GLOBAL needs two strings")),
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let v = self.reduce(func, args)?;
                    self.push(v);
                }
                b'b' => {
                    let state = self.pop()?;
                    let slot = self.stack.last().and_then(|(_, s)| *s);
                    let obj = std::mem::replace(self.top_mut()?, Value::None);
                    let built = self.build(obj, state)?;
                    if let Some(i) = slot {
                        self.memo[i] = Some(built.clone());
                    }
                    *self.top_mut()? = built;
                }
                0x81 | 0x92 => {
                    return Err(
                        self.err("NEWOBJ (a pickled Python class instance) is not supported")
                    );
                }
                other => {
                    return Err(self.err(format!("unknown or unsupported opcode 0x{other:02x}")));
                }
            }
        }
    }

    fn pairs(&self, items: Vec<Value>) -> Result<Vec<(Value, Value)>, PickleError> {
        if !items.len().is_multiple_of(2) {
            return Err(self.err("odd number of items for a dict"));
        }
        let mut it = items.into_iter();
        let mut out = Vec::new();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            out.push((k, v));
        }
        Ok(out)
    }

    fn extend_list(&mut self, items: Vec<Value>) -> Result<(), PickleError> {
        match self.top_mut()? {
            Value::List(l) => {
                l.extend(items);
                Ok(())
            }
            _ => Err(self.err("APPEND(S) target is not a list")),
        }
    }

    fn extend_dict(&mut self, pairs: Vec<(Value, Value)>) -> Result<(), PickleError> {
        match self.top_mut()? {
            Value::Dict(d) => {
                // Keys are unique in a pickled dict; the typed helpers keep the last value if not.
                d.extend(pairs);
                Ok(())
            }
            _ => Err(self.err("SETITEM(S) target is not a dict")),
        }
    }
}
