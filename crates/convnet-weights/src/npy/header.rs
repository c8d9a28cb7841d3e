//! The header parser: the Python dict literal of a `.npy` header into an
//! [`NpyHeader`], with a small recursive-descent parser that knows strings,
//! integers, `True`, `False`, `None`, tuples and lists, and evaluates nothing.

use super::{escape_bytes, fmt_shape, DType, NpyHeader, MAX_DEPTH, MAX_DIMS};

/// How the header's text is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoding {
    /// Versions 1.0 and 2.0.
    Latin1,
    /// Version 3.0.
    Utf8,
}

/// The values a header may hold: a subset of Python literals.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    None,
    Tuple(Vec<Value>),
    List(Vec<Value>),
}

impl Value {
    /// The value as Python prints it, for messages.
    fn repr(&self) -> String {
        let join = |items: &[Value]| items.iter().map(Value::repr).collect::<Vec<_>>().join(", ");
        match self {
            Value::Str(s) => format!("'{s}'"),
            Value::Int(i) => i.to_string(),
            Value::Bool(true) => "True".into(),
            Value::Bool(false) => "False".into(),
            Value::None => "None".into(),
            Value::Tuple(items) if items.len() == 1 => format!("({},)", items[0].repr()),
            Value::Tuple(items) => format!("({})", join(items)),
            Value::List(items) => format!("[{}]", join(items)),
        }
    }
}

/// Turns the header dict into an [`NpyHeader`] (version and data offset
/// left for the caller to fill).
pub(super) fn parse_header(text: &[u8], encoding: Encoding) -> Result<NpyHeader, String> {
    let mut parser = Parser {
        text,
        pos: 0,
        encoding,
    };
    let entries = parser.dict()?;
    parser.skip_whitespace();
    if parser.pos < text.len() {
        return Err(format!(
            "unexpected {} after the dict, at byte {}",
            escape_bytes(&text[parser.pos..(parser.pos + 1)]),
            parser.pos
        ));
    }

    let (mut descr, mut fortran_order, mut shape) = (None, None, None);
    for (key, value) in entries {
        let slot = match key.as_str() {
            "descr" => &mut descr,
            "fortran_order" => &mut fortran_order,
            "shape" => &mut shape,
            _ => {
                return Err(format!(
                    "unexpected key '{key}' (the header has exactly 'descr', 'fortran_order' \
                     and 'shape')"
                ))
            }
        };
        if slot.replace(value).is_some() {
            return Err(format!("the key '{key}' appears twice"));
        }
    }
    let missing = |key: &str| format!("the key '{key}' is missing");
    let descr = descr.ok_or_else(|| missing("descr"))?;
    let fortran_order = fortran_order.ok_or_else(|| missing("fortran_order"))?;
    let shape = shape.ok_or_else(|| missing("shape"))?;

    let descr = match descr {
        Value::Str(s) => s,
        Value::List(_) => {
            return Err(format!(
                "structured dtype {} is refused (only plain numeric arrays are read)",
                descr.repr()
            ))
        }
        other => return Err(format!("descr {} is not a dtype string", other.repr())),
    };
    let (dtype, big_endian) = parse_descr(&descr)?;
    let fortran_order = match fortran_order {
        Value::Bool(b) => b,
        other => {
            return Err(format!(
                "fortran_order {} is not True or False",
                other.repr()
            ))
        }
    };
    let shape = parse_shape(&shape)?;
    let data_len = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .and_then(|n| n.checked_mul(dtype.size()))
        .filter(|&n| n <= isize::MAX as usize);
    if data_len.is_none() {
        return Err(format!(
            "shape {} of '{descr}' overflows: its size in bytes does not fit in memory",
            fmt_shape(&shape)
        ));
    }
    Ok(NpyHeader {
        version: (0, 0),
        descr,
        dtype,
        big_endian,
        fortran_order,
        shape,
        data_offset: 0,
    })
}

/// The element type and byte order of a descr such as `<f4`.
fn parse_descr(descr: &str) -> Result<(DType, bool), String> {
    let mut chars = descr.chars();
    let order = chars.next();
    let code = chars.as_str();
    if code.starts_with('O') {
        return Err(format!(
            "object array (descr '{descr}') is refused: it holds pickled Python objects"
        ));
    }
    let dtype = match code {
        "f2" => DType::F16,
        "f4" => DType::F32,
        "f8" => DType::F64,
        "i1" => DType::I8,
        "i2" => DType::I16,
        "i4" => DType::I32,
        "i8" => DType::I64,
        "u1" => DType::U8,
        "u2" => DType::U16,
        "u4" => DType::U32,
        "u8" => DType::U64,
        "b1" => DType::Bool,
        _ => {
            return Err(format!(
                "unsupported dtype descr '{descr}' (read: f2 f4 f8, i1 i2 i4 i8, u1 u2 u4 u8, b1)"
            ))
        }
    };
    match order {
        Some('<') => Ok((dtype, false)),
        Some('>') => Ok((dtype, true)),
        Some('|' | '=') if dtype.size() == 1 => Ok((dtype, false)),
        _ => Err(format!(
            "dtype descr '{descr}' gives no byte order: expected '<' (little-endian) or '>' \
             (big-endian)"
        )),
    }
}

/// The shape tuple as dimensions.
fn parse_shape(shape: &Value) -> Result<Vec<usize>, String> {
    let Value::Tuple(dims) = shape else {
        return Err(format!("shape {} is not a tuple", shape.repr()));
    };
    if dims.len() > MAX_DIMS {
        return Err(format!(
            "shape has {} axes, more than the {MAX_DIMS} numpy allows",
            dims.len()
        ));
    }
    dims.iter()
        .map(|d| match d {
            Value::Int(i) => usize::try_from(*i)
                .map_err(|_| format!("shape {} has a negative dimension {i}", shape.repr())),
            other => Err(format!(
                "shape {} has a dimension {} that is not an integer",
                shape.repr(),
                other.repr()
            )),
        })
        .collect()
}

/// A recursive-descent parser of the Python literals a header holds.
struct Parser<'a> {
    text: &'a [u8],
    pos: usize,
    encoding: Encoding,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// What is at the current position, for messages.
    fn found(&self) -> String {
        match self.peek() {
            None => "the end of the header".into(),
            Some(_) => format!(
                "{} at byte {}",
                escape_bytes(&self.text[self.pos..(self.pos + 1)]),
                self.pos
            ),
        }
    }

    /// `{key: value, ...}` with string keys, in order.
    fn dict(&mut self) -> Result<Vec<(String, Value)>, String> {
        self.skip_whitespace();
        if self.peek() != Some(b'{') {
            return Err(format!("expected a dict '{{', found {}", self.found()));
        }
        self.pos += 1;
        let mut entries = Vec::new();
        loop {
            self.skip_whitespace();
            if self.peek() == Some(b'}') {
                self.pos += 1;
                return Ok(entries);
            }
            let key = match self.value(1)? {
                Value::Str(s) => s,
                other => return Err(format!("dict key {} is not a string", other.repr())),
            };
            self.skip_whitespace();
            if self.peek() != Some(b':') {
                return Err(format!(
                    "expected ':' after '{key}', found {}",
                    self.found()
                ));
            }
            self.pos += 1;
            let value = self.value(1)?;
            entries.push((key, value));
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {}
                _ => {
                    return Err(format!(
                        "expected ',' or '}}' in the dict, found {}",
                        self.found()
                    ))
                }
            }
        }
    }

    /// One literal; `depth` counts the enclosing containers.
    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        self.skip_whitespace();
        match self.peek() {
            Some(q @ (b'\'' | b'"')) => self.string(q),
            Some(b'(') => self.sequence(b')', depth),
            Some(b'[') => self.sequence(b']', depth),
            Some(b'-' | b'0'..=b'9') => self.integer(),
            Some(c) if c.is_ascii_alphabetic() => self.name(),
            _ => Err(format!("expected a value, found {}", self.found())),
        }
    }

    /// A quoted string; backslash escapes keep the escaped character.
    fn string(&mut self, quote: u8) -> Result<Value, String> {
        let start = self.pos;
        self.pos += 1;
        let mut bytes = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\n') => {
                    return Err(format!("unterminated string starting at byte {start}"))
                }
                Some(c) if c == quote => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    let escaped = self.text.get(self.pos + 1).copied();
                    let Some(c) = escaped else {
                        return Err(format!("unterminated string starting at byte {start}"));
                    };
                    bytes.push(c);
                    self.pos += 2;
                }
                Some(c) => {
                    bytes.push(c);
                    self.pos += 1;
                }
            }
        }
        let s = match self.encoding {
            Encoding::Latin1 => bytes.iter().map(|&b| char::from(b)).collect(),
            Encoding::Utf8 => String::from_utf8(bytes)
                .map_err(|_| format!("string at byte {start} is not UTF-8"))?,
        };
        Ok(Value::Str(s))
    }

    /// `(a, b)`, `(a,)`, `()` or `[a, b]`. A parenthesised value without a
    /// comma is that value, as in Python.
    fn sequence(&mut self, close: u8, depth: usize) -> Result<Value, String> {
        self.pos += 1;
        let mut items = Vec::new();
        let mut comma = false;
        loop {
            self.skip_whitespace();
            if self.peek() == Some(close) {
                self.pos += 1;
                break;
            }
            items.push(self.value(depth + 1)?);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    comma = true;
                }
                Some(c) if c == close => {}
                _ => {
                    return Err(format!(
                        "expected ',' or '{}', found {}",
                        char::from(close),
                        self.found()
                    ))
                }
            }
        }
        Ok(match close {
            b']' => Value::List(items),
            _ if items.len() == 1 && !comma => items.pop().expect("one item"),
            _ => Value::Tuple(items),
        })
    }

    /// A decimal integer, with Python 2's `L` suffix accepted.
    fn integer(&mut self) -> Result<Value, String> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let digits_start = self.pos;
        let mut value: i64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(i64::from(c - b'0')))
                .ok_or_else(|| format!("integer at byte {start} is too large"))?;
            self.pos += 1;
        }
        if self.pos == digits_start {
            return Err(format!("expected digits after '-', found {}", self.found()));
        }
        if matches!(self.peek(), Some(b'L' | b'l')) {
            self.pos += 1;
        }
        Ok(Value::Int(if negative { -value } else { value }))
    }

    /// `True`, `False` or `None`.
    fn name(&mut self) -> Result<Value, String> {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_') {
            self.pos += 1;
        }
        match &self.text[start..self.pos] {
            b"True" => Ok(Value::Bool(true)),
            b"False" => Ok(Value::Bool(false)),
            b"None" => Ok(Value::None),
            other => Err(format!(
                "unknown name '{}' at byte {start} (only True, False and None are read)",
                String::from_utf8_lossy(other)
            )),
        }
    }
}
