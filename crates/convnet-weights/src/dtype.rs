//! Element types of weight files, and their conversion to `f32`.

use std::fmt;

/// The element type a tensor had in its file. Every type converts to `f32`
/// on load; floating types are the ones weights come in, integer types are
/// accepted for counters such as BatchNorm's `num_batches_tracked`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE binary64.
    F64,
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16 (the high half of a binary32).
    BF16,
    /// Signed 64-bit integer.
    I64,
    /// Signed 32-bit integer.
    I32,
    /// Signed 16-bit integer.
    I16,
    /// Signed 8-bit integer.
    I8,
    /// Unsigned 64-bit integer.
    U64,
    /// Unsigned 32-bit integer.
    U32,
    /// Unsigned 16-bit integer.
    U16,
    /// Unsigned 8-bit integer.
    U8,
    /// One byte, 0 or 1.
    Bool,
}

impl DType {
    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 | DType::U64 => 8,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F16 | DType::BF16 | DType::I16 | DType::U16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// The name safetensors gives the type (`"F32"`, `"BF16"`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            DType::F64 => "F64",
            DType::F32 => "F32",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::I64 => "I64",
            DType::I32 => "I32",
            DType::I16 => "I16",
            DType::I8 => "I8",
            DType::U64 => "U64",
            DType::U32 => "U32",
            DType::U16 => "U16",
            DType::U8 => "U8",
            DType::Bool => "BOOL",
        }
    }

    /// Whether the type is a floating-point type.
    pub const fn is_float(self) -> bool {
        matches!(self, DType::F64 | DType::F32 | DType::F16 | DType::BF16)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Converts little-endian bytes of `dtype` to `f32`. The length must be a
/// whole number of elements (the caller checked it against the shape).
pub fn to_f32(bytes: &[u8], dtype: DType) -> Vec<f32> {
    fn each<const N: usize>(bytes: &[u8], f: impl Fn([u8; N]) -> f32) -> Vec<f32> {
        bytes
            .chunks_exact(N)
            .map(|c| f(c.try_into().expect("chunks_exact gives N bytes")))
            .collect()
    }
    match dtype {
        DType::F32 => each(bytes, f32::from_le_bytes),
        DType::F64 => each(bytes, |b| f64::from_le_bytes(b) as f32),
        DType::F16 => each(bytes, |b| half::f16::from_le_bytes(b).to_f32()),
        DType::BF16 => each(bytes, |b| half::bf16::from_le_bytes(b).to_f32()),
        DType::I64 => each(bytes, |b| i64::from_le_bytes(b) as f32),
        DType::I32 => each(bytes, |b| i32::from_le_bytes(b) as f32),
        DType::I16 => each(bytes, |b| i16::from_le_bytes(b) as f32),
        DType::I8 => each(bytes, |b: [u8; 1]| b[0] as i8 as f32),
        DType::U64 => each(bytes, |b| u64::from_le_bytes(b) as f32),
        DType::U32 => each(bytes, |b| u32::from_le_bytes(b) as f32),
        DType::U16 => each(bytes, |b| u16::from_le_bytes(b) as f32),
        DType::U8 => each(bytes, |b: [u8; 1]| b[0] as f32),
        DType::Bool => each(bytes, |b: [u8; 1]| if b[0] != 0 { 1.0 } else { 0.0 }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_float_type_converts_exactly_representable_values() {
        let values = [0.0f32, 1.0, -2.5, 0.15625, 65504.0];
        let f64b: Vec<u8> = values
            .iter()
            .flat_map(|&v| (v as f64).to_le_bytes())
            .collect();
        let f16b: Vec<u8> = values
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect();
        let bf16b: Vec<u8> = [0.0f32, 1.0, -2.5, 0.15625, 65536.0]
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect();
        assert_eq!(to_f32(&f64b, DType::F64), values);
        assert_eq!(to_f32(&f16b, DType::F16), values);
        assert_eq!(
            to_f32(&bf16b, DType::BF16),
            [0.0f32, 1.0, -2.5, 0.15625, 65536.0]
        );
    }

    #[test]
    fn integers_and_bools_convert() {
        let i64b: Vec<u8> = [-3i64, 7].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(to_f32(&i64b, DType::I64), [-3.0, 7.0]);
        assert_eq!(to_f32(&[0, 1, 2], DType::Bool), [0.0, 1.0, 1.0]);
        assert_eq!(to_f32(&[255], DType::I8), [-1.0]);
        assert_eq!(DType::BF16.size(), 2);
        assert_eq!(DType::Bool.to_string(), "BOOL");
    }
}
