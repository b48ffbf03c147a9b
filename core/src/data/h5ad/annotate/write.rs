//! Encoders for the new HDF5 objects appended by [`super::add_obs_columns`]: version-1 object
//! headers (what h5py writes by default, so every HDF5 1.8+ reader and `hdf5-pure` read them),
//! the messages of contiguous 1-D datasets and compact groups, attributes, and one global heap
//! for every variable-length string. Types are encoded byte-for-byte as h5py encodes them
//! (checked against real anndata files in the tests), so anndata sees the dtypes it wrote itself.

use super::read::{UNDEF, msg};

/// Variable-length UTF-8 string: h5py's `str` dtype (`h5py.string_dtype()`).
pub(super) const VLEN_UTF8: [u8; 20] = [
    0x19, 0x01, 0x01, 0x00, 16, 0, 0,
    0, // class 9 v1, string, null-terminated, UTF-8, size 16
    0x10, 0x00, 0x00, 0x00, 1, 0, 0, 0, 0, 0, 8, 0, // base: unsigned 8-bit integer
];

/// Little-endian IEEE float32.
pub(super) const F32: [u8; 20] = [
    0x11, 0x20, 0x1f, 0x00, 4, 0, 0, 0, // class 1 v1, sign bit 31, size 4
    0, 0, 32, 0, 23, 8, 0, 23, 127, 0, 0, 0, // offset, precision, exponent, mantissa, bias
];

/// numpy `bool_` as h5py stores it: an int8 enum `FALSE = 0, TRUE = 1`.
pub(super) const BOOL: [u8; 38] = [
    0x18, 2, 0, 0, 1, 0, 0, 0, // class 8 v1, 2 members, size 1
    0x10, 0x08, 0, 0, 1, 0, 0, 0, 0, 0, 8, 0, // base: signed 8-bit integer
    b'F', b'A', b'L', b'S', b'E', 0, 0, 0, b'T', b'R', b'U', b'E', 0, 0, 0, 0, 0, 1,
];

/// Little-endian signed integer of `bytes` bytes.
pub(super) fn int_type(bytes: u8) -> [u8; 12] {
    [0x10, 0x08, 0, 0, bytes, 0, 0, 0, 0, 0, bytes * 8, 0]
}

/// Version-1 dataspace: rank 0 (scalar) or 1.
pub(super) fn dataspace(len: Option<u64>) -> Vec<u8> {
    let mut b = vec![1, u8::from(len.is_some()), 0, 0, 0, 0, 0, 0];
    if let Some(n) = len {
        b.extend_from_slice(&n.to_le_bytes());
    }
    b
}

/// Messages of a contiguous 1-D dataset of `n` elements stored at `addr` (`size` bytes), as
/// h5py lays them out: dataspace, datatype, fill value (v2, library default), layout (v3).
pub(super) fn dataset_messages(dtype: &[u8], n: u64, addr: u64, size: u64) -> Vec<Message> {
    let mut layout = vec![3, 1];
    layout.extend_from_slice(&(if size == 0 { UNDEF } else { addr }).to_le_bytes());
    layout.extend_from_slice(&size.to_le_bytes());
    vec![
        Message::new(msg::DATASPACE, dataspace(Some(n))),
        Message::new(msg::DATATYPE, dtype.to_vec()).flags(1),
        Message::new(msg::FILL_VALUE, vec![2, 2, 2, 1, 0, 0, 0, 0]).flags(1),
        Message::new(msg::LAYOUT, layout),
    ]
}

/// Link-info and group-info messages of a group whose `n_links` links are all link messages
/// in its header (compact storage). The group-info message records a compact limit of at
/// least `n_links`, so a later writer keeps the layout consistent.
pub(super) fn compact_group_messages(n_links: usize) -> Vec<Message> {
    let mut info = vec![0, 0];
    info.extend_from_slice(&UNDEF.to_le_bytes());
    info.extend_from_slice(&UNDEF.to_le_bytes());
    let group_info = match u16::try_from(n_links) {
        Ok(n) if n > 8 => {
            let mut g = vec![0, 1];
            g.extend_from_slice(&n.to_le_bytes());
            g.extend_from_slice(&6u16.to_le_bytes());
            g
        }
        _ => vec![0, 0],
    };
    vec![
        Message::new(msg::LINK_INFO, info),
        Message::new(msg::GROUP_INFO, group_info),
    ]
}

/// A hard link message.
pub(super) fn link(name: &str, target: u64) -> Message {
    let ascii = name.is_ascii();
    let long = name.len() > 255;
    let mut b = vec![1, u8::from(long) | if ascii { 0 } else { 0x10 }];
    if !ascii {
        b.push(1);
    }
    if long {
        b.extend_from_slice(&(name.len() as u16).to_le_bytes());
    } else {
        b.push(name.len() as u8);
    }
    b.extend_from_slice(name.as_bytes());
    b.extend_from_slice(&target.to_le_bytes());
    Message::new(msg::LINK, b)
}

/// A version-1 attribute message (ASCII name; fields padded to 8 bytes).
pub(super) fn attribute(name: &str, dtype: &[u8], space: &[u8], data: &[u8]) -> Message {
    let pad = |b: &mut Vec<u8>| b.resize(b.len().div_ceil(8) * 8, 0);
    let mut b = vec![1, 0];
    for len in [name.len() + 1, dtype.len(), space.len()] {
        b.extend_from_slice(&(len as u16).to_le_bytes());
    }
    b.extend_from_slice(name.as_bytes());
    b.push(0);
    pad(&mut b);
    b.extend_from_slice(dtype);
    pad(&mut b);
    b.extend_from_slice(space);
    pad(&mut b);
    b.extend_from_slice(data);
    Message::new(msg::ATTRIBUTE, b)
}

/// One object-header message to encode.
#[derive(Clone)]
pub(super) struct Message {
    pub kind: u16,
    pub flags: u8,
    pub body: Vec<u8>,
}

impl Message {
    pub fn new(kind: u16, body: Vec<u8>) -> Self {
        Self {
            kind,
            flags: 0,
            body,
        }
    }

    fn flags(mut self, flags: u8) -> Self {
        self.flags = flags;
        self
    }
}

/// A version-1 object header holding `messages` in one chunk. `None` when a message is too
/// large for the format's 16-bit message size.
pub(super) fn object_header(messages: &[Message]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    for m in messages {
        let size = u16::try_from(m.body.len().div_ceil(8) * 8).ok()?;
        body.extend_from_slice(&m.kind.to_le_bytes());
        body.extend_from_slice(&size.to_le_bytes());
        body.extend_from_slice(&[m.flags, 0, 0, 0]);
        body.extend_from_slice(&m.body);
        body.resize(body.len().div_ceil(8) * 8, 0);
    }
    let mut h = vec![1, 0];
    h.extend_from_slice(&u16::try_from(messages.len()).ok()?.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&u32::try_from(body.len()).ok()?.to_le_bytes());
    h.extend_from_slice(&[0; 4]);
    h.extend_from_slice(&body);
    Some(h)
}

/// Global heap objects (the strings behind variable-length references), gathered before
/// anything else is placed so every reference can name its collection's address.
#[derive(Default)]
pub(super) struct Heap {
    objects: Vec<Vec<u8>>,
    placed: Vec<u64>,
}

/// Objects per collection: the heap index is 16-bit and 0 marks free space.
const PER_COLLECTION: usize = u16::MAX as usize;

impl Heap {
    /// Adds a string; returns its handle for [`Heap::reference`].
    pub fn add(&mut self, s: &str) -> usize {
        self.objects.push(s.as_bytes().to_vec());
        self.objects.len() - 1
    }

    /// The collections, each at least 4096 bytes as the HDF5 library requires; `place` is
    /// called with each and returns where it was put.
    pub fn place(&mut self, mut place: impl FnMut(&[u8]) -> u64) {
        for objects in self.objects.chunks(PER_COLLECTION) {
            let used: usize = objects.iter().map(|o| 16 + o.len().div_ceil(8) * 8).sum();
            let size = (16 + used + 16).max(4096).div_ceil(8) * 8;
            let mut b = Vec::with_capacity(size);
            b.extend_from_slice(b"GCOL");
            b.extend_from_slice(&[1, 0, 0, 0]);
            b.extend_from_slice(&(size as u64).to_le_bytes());
            for (i, o) in objects.iter().enumerate() {
                b.extend_from_slice(&(i as u16 + 1).to_le_bytes());
                b.extend_from_slice(&[1, 0, 0, 0, 0, 0]);
                b.extend_from_slice(&(o.len() as u64).to_le_bytes());
                b.extend_from_slice(o);
                b.resize(b.len().div_ceil(8) * 8, 0);
            }
            // Free space object: index 0, its size counting its own header.
            let free = (size - b.len()) as u64;
            b.extend_from_slice(&[0; 8]);
            b.extend_from_slice(&free.to_le_bytes());
            b.resize(size, 0);
            self.placed.push(place(&b));
        }
    }

    /// The 16-byte variable-length reference to object `handle` (after [`Heap::place`]).
    pub fn reference(&self, handle: usize) -> [u8; 16] {
        let mut r = [0u8; 16];
        let len = self.objects[handle].len() as u32;
        r[..4].copy_from_slice(&len.to_le_bytes());
        r[4..12].copy_from_slice(&self.placed[handle / PER_COLLECTION].to_le_bytes());
        r[12..].copy_from_slice(&((handle % PER_COLLECTION) as u32 + 1).to_le_bytes());
        r
    }
}
