//! The `.npy` format (version 1.0) for little-endian float32 arrays: what `numpy.load` reads
//! without extra options, so embeddings go straight into Python tools (GEARS, CPA, DeepCE).
//!
//! Written by hand: the format is a magic string, a Python-dict header padded to 64 bytes and
//! the raw data, which is less code than a dependency. In memory, so it works in the browser too.

use thiserror::Error;

/// A malformed `.npy` file (only the subset [`to_npy_f32`] writes is read back).
#[derive(Debug, Error, PartialEq, Eq)]
#[error("not a little-endian float32 C-order .npy file: {0}")]
pub struct NpyError(pub String);

const MAGIC: &[u8] = b"\x93NUMPY";

/// Encodes a C-order float32 array of `shape` (`data.len()` must equal the product).
///
/// # Panics
/// If the data length does not match the shape.
pub fn to_npy_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    assert_eq!(
        shape.iter().product::<usize>(),
        data.len(),
        "npy data does not match its shape"
    );
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let tuple = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}").into_bytes();
    // Magic (6) + version (2) + length (2) + header, padded with spaces and ended by a newline
    // to a multiple of 64 bytes, as numpy writes it (keeps the data aligned for memory mapping).
    let total = (MAGIC.len() + 4 + header.len() + 1).div_ceil(64) * 64;
    header.resize(total - MAGIC.len() - 4 - 1, b' ');
    header.push(b'\n');
    let mut out = Vec::with_capacity(total + data.len() * 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(&header);
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Decodes what [`to_npy_f32`] writes: `(shape, data)`.
pub fn from_npy_f32(bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>), NpyError> {
    let err = |m: &str| NpyError(m.to_string());
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(err("missing magic"));
    }
    if bytes[6] != 1 {
        return Err(err("only version 1.0 is read"));
    }
    let hlen = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
    let header = bytes
        .get(10..10 + hlen)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| err("truncated header"))?;
    if !header.contains("'descr': '<f4'") || !header.contains("'fortran_order': False") {
        return Err(err("not '<f4' in C order"));
    }
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| err("no shape"))?;
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| err("bad shape")))
        .collect::<Result<Vec<_>, _>>()?;
    let body = &bytes[10 + hlen..];
    if body.len() != shape.iter().product::<usize>() * 4 {
        return Err(err("data length does not match the shape"));
    }
    let data = body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((shape, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_numpy_exact_and_aligned() {
        let b = to_npy_f32(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
        let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        let header = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
        // What numpy.save writes for np.zeros((2, 3), np.float32).
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
        assert!(header.ends_with('\n'));
        assert_eq!(b.len(), 10 + hlen + 24);
        assert_eq!(&b[10 + hlen..10 + hlen + 4], &1f32.to_le_bytes());
    }

    #[test]
    fn round_trip_1d_2d_and_empty() {
        for (shape, data) in [
            (vec![3], vec![1.5f32, -2.0, 0.25]),
            (vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]),
            (vec![0, 4], vec![]),
        ] {
            let b = to_npy_f32(&shape, &data);
            assert_eq!(from_npy_f32(&b).unwrap(), (shape, data));
        }
        let one = to_npy_f32(&[3], &[0.0; 3]);
        let hlen = u16::from_le_bytes([one[8], one[9]]) as usize;
        assert!(
            std::str::from_utf8(&one[10..10 + hlen])
                .unwrap()
                .contains("(3,)")
        );
        assert!(from_npy_f32(b"nope").is_err());
    }
}
