//! The few HDF5 structures [`super::add_obs_columns`] must read straight from the file image:
//! the superblock, object-header messages, a group's links (symbol table or compact link
//! messages) with the byte position of each link's address, attribute messages and
//! global-heap strings. `hdf5-pure` reads all of these too, but it neither exposes addresses
//! nor edits an in-memory image, and appending to the image is what keeps every untouched byte
//! of the file identical.
//!
//! Only 8-byte offsets and lengths are accepted (what every HDF5 library writes by default).

use std::ops::Range;

use crate::data::DataError;
use crate::data::csr::format_err;

/// The undefined address.
pub(super) const UNDEF: u64 = u64::MAX;

/// Object-header message types used here.
pub(super) mod msg {
    pub const NIL: u16 = 0x00;
    pub const DATASPACE: u16 = 0x01;
    pub const LINK_INFO: u16 = 0x02;
    pub const DATATYPE: u16 = 0x03;
    pub const FILL_VALUE: u16 = 0x05;
    pub const LINK: u16 = 0x06;
    pub const LAYOUT: u16 = 0x08;
    pub const GROUP_INFO: u16 = 0x0A;
    pub const ATTRIBUTE: u16 = 0x0C;
    pub const CONTINUATION: u16 = 0x10;
    pub const SYMBOL_TABLE: u16 = 0x11;
    pub const ATTRIBUTE_INFO: u16 = 0x15;
}

/// The HDF5 file image being read, with the name used in messages.
pub(super) struct Image<'a> {
    pub b: &'a [u8],
    pub name: &'a str,
}

/// Superblock facts needed to append and repoint.
pub(super) struct Superblock {
    /// Byte position of the end-of-file address field.
    pub eof_field: usize,
    /// The end-of-file address.
    pub eof: u64,
    /// Root group object header.
    pub root: u64,
}

/// One object-header message: type, flags and where its body lies in the image.
#[derive(Clone)]
pub(super) struct Msg {
    pub kind: u16,
    pub flags: u8,
    pub body: Range<usize>,
    /// Object-header version of the header holding it.
    pub header_version: u8,
}

/// A hard link of a group and where its target address is stored.
pub(super) struct Link {
    pub name: String,
    pub target: u64,
    /// Byte position of the 8-byte target address (a symbol-table entry or a link message).
    pub addr_field: usize,
    /// Whether the link is a symbol-table entry (whose cached scratch-pad must be cleared when
    /// it is repointed to a group of another kind).
    pub in_symbol_table: bool,
}

/// A decoded attribute message.
pub(super) struct Attr {
    pub name: String,
    pub dtype: Range<usize>,
    pub space: Range<usize>,
    pub data: Range<usize>,
}

impl<'a> Image<'a> {
    pub fn err(&self, message: impl Into<String>) -> DataError {
        format_err(self.name, message)
    }

    fn corrupt(&self, what: &str, at: u64) -> DataError {
        self.err(format!(
            "HDF5 structure `{what}` at byte {at} is truncated or malformed; the file may be \
             corrupt or an incomplete download: export it again"
        ))
    }

    pub fn bytes(&self, at: u64, len: usize, what: &str) -> Result<&'a [u8], DataError> {
        let start = usize::try_from(at).map_err(|_| self.corrupt(what, at))?;
        start
            .checked_add(len)
            .and_then(|end| self.b.get(start..end))
            .ok_or_else(|| self.corrupt(what, at))
    }

    /// `at` if it is an address inside the file (so that offsets from it cannot overflow).
    fn inside(&self, at: u64, what: &str) -> Result<u64, DataError> {
        if at < self.b.len() as u64 {
            Ok(at)
        } else {
            Err(self.corrupt(what, at))
        }
    }

    pub fn u8(&self, at: u64, what: &str) -> Result<u8, DataError> {
        Ok(self.bytes(at, 1, what)?[0])
    }

    pub fn u16(&self, at: u64, what: &str) -> Result<u16, DataError> {
        Ok(u16::from_le_bytes(
            self.bytes(at, 2, what)?.try_into().unwrap_or_default(),
        ))
    }

    pub fn u32(&self, at: u64, what: &str) -> Result<u32, DataError> {
        Ok(u32::from_le_bytes(
            self.bytes(at, 4, what)?.try_into().unwrap_or_default(),
        ))
    }

    pub fn u64(&self, at: u64, what: &str) -> Result<u64, DataError> {
        Ok(u64::from_le_bytes(
            self.bytes(at, 8, what)?.try_into().unwrap_or_default(),
        ))
    }

    /// Reads the superblock; versions 0 and 1 (what h5py, and so anndata, write by default).
    pub fn superblock(&self) -> Result<Superblock, DataError> {
        const SIGNATURE: &[u8] = b"\x89HDF\r\n\x1a\n";
        if !self.b.starts_with(SIGNATURE) {
            let userblock = [512usize, 1024, 2048, 4096]
                .iter()
                .any(|&o| self.b.get(o..o + 8) == Some(SIGNATURE));
            return Err(self.err(if userblock {
                "the HDF5 file starts with a user block; writing columns into such a file is \
                 not supported. Re-save it with anndata (`adata.write_h5ad`)"
            } else {
                "not an HDF5 file (no HDF5 signature at the start); expected an .h5ad file"
            }));
        }
        let version = self.u8(8, "superblock")?;
        if version > 1 {
            return Err(self.err(format!(
                "the file uses HDF5 superblock version {version} (the 'latest' file format); \
                 adding obs columns is supported for the default format h5py and anndata write. \
                 Re-save it with anndata (`adata.write_h5ad`) using h5py's default settings"
            )));
        }
        let (offsets, lengths) = (self.u8(13, "superblock")?, self.u8(14, "superblock")?);
        if offsets != 8 || lengths != 8 {
            return Err(self.err(format!(
                "the file uses {offsets}-byte addresses and {lengths}-byte lengths; only 8-byte \
                 ones are supported. Re-save it with anndata (`adata.write_h5ad`)"
            )));
        }
        let base = if version == 0 { 24 } else { 28 };
        if self.u64(base, "superblock")? != 0 {
            return Err(self.err(
                "the file's HDF5 base address is not 0; re-save it with anndata \
                 (`adata.write_h5ad`)",
            ));
        }
        let eof = self.u64(base + 16, "superblock")?;
        if eof > self.b.len() as u64 {
            return Err(self.err(format!(
                "the file is truncated: HDF5 says it ends at byte {eof} but it has {} bytes. \
                 It is probably an incomplete download or upload: get it again",
                self.b.len()
            )));
        }
        Ok(Superblock {
            eof_field: base as usize + 16,
            eof,
            root: self.u64(base + 32 + 8, "superblock root entry")?,
        })
    }

    /// Every message of the object header at `addr`, continuation chunks included.
    pub fn messages(&self, addr: u64) -> Result<Vec<Msg>, DataError> {
        let addr = self.inside(addr, "object header")?;
        let mut out = Vec::new();
        // A corrupt file could chain continuation chunks into a cycle.
        let mut budget = 10_000usize;
        let mut spend = |at: u64| {
            budget = budget
                .checked_sub(1)
                .ok_or_else(|| self.corrupt("object header", at))?;
            Ok::<(), DataError>(())
        };
        if self.bytes(addr, 4, "object header")? == b"OHDR" {
            let flags = self.u8(addr + 5, "object header")?;
            let mut at = addr + 6;
            if flags & 0x20 != 0 {
                at += 16;
            }
            if flags & 0x10 != 0 {
                at += 4;
            }
            let width = 1usize << (flags & 3);
            let mut size = [0u8; 8];
            size[..width].copy_from_slice(self.bytes(at, width, "object header")?);
            let first = (at + width as u64, u64::from_le_bytes(size));
            let mut chunks = vec![first];
            while let Some((start, len)) = chunks.pop() {
                let end = start.saturating_add(len);
                let mut p = start;
                while p + 4 <= end {
                    spend(p)?;
                    let kind = u16::from(self.u8(p, "object header")?);
                    let size = u64::from(self.u16(p + 1, "object header")?);
                    let mflags = self.u8(p + 3, "object header")?;
                    p += if flags & 0x04 != 0 { 6 } else { 4 };
                    self.bytes(p, size as usize, "object header message")?;
                    let m = self.msg(kind, mflags, p, size, 2);
                    if kind == msg::CONTINUATION {
                        let (a, l) = self.continuation(&m)?;
                        // OCHK signature before, checksum after the messages.
                        chunks.push((a + 4, l.saturating_sub(8)));
                    }
                    out.push(m);
                    p += size;
                }
            }
            return Ok(out);
        }
        if self.u8(addr, "object header")? != 1 {
            return Err(self.corrupt("object header", addr));
        }
        let size = u64::from(self.u32(addr + 8, "object header")?);
        let mut chunks = vec![(addr + 16, size)];
        while let Some((start, len)) = chunks.pop() {
            let end = start.saturating_add(len);
            let mut p = start;
            while p + 8 <= end {
                spend(p)?;
                let kind = self.u16(p, "object header")?;
                let size = u64::from(self.u16(p + 2, "object header")?);
                let mflags = self.u8(p + 4, "object header")?;
                self.bytes(p + 8, size as usize, "object header message")?;
                let m = self.msg(kind, mflags, p + 8, size, 1);
                if kind == msg::CONTINUATION {
                    chunks.push(self.continuation(&m)?);
                }
                out.push(m);
                p += 8 + size;
            }
        }
        Ok(out)
    }

    fn msg(&self, kind: u16, flags: u8, at: u64, size: u64, header_version: u8) -> Msg {
        Msg {
            kind,
            flags,
            body: at as usize..(at + size) as usize,
            header_version,
        }
    }

    fn continuation(&self, m: &Msg) -> Result<(u64, u64), DataError> {
        let at = m.body.start as u64;
        Ok((
            self.inside(self.u64(at, "continuation")?, "continuation")?,
            self.u64(at + 8, "continuation")?,
        ))
    }

    /// The hard links of the group whose header holds `msgs`, in stored order.
    pub fn links(&self, group: &str, msgs: &[Msg]) -> Result<Vec<Link>, DataError> {
        if let Some(m) = msgs.iter().find(|m| m.kind == msg::SYMBOL_TABLE) {
            let at = m.body.start as u64;
            let btree = self.inside(self.u64(at, "symbol table")?, "group B-tree")?;
            let heap = self.inside(self.u64(at + 8, "symbol table")?, "local heap")?;
            if self.bytes(heap, 4, "local heap")? != b"HEAP" {
                return Err(self.corrupt("local heap", heap));
            }
            let names = self.inside(self.u64(heap + 24, "local heap")?, "local heap")?;
            let mut out = Vec::new();
            self.btree_links(group, btree, names, &mut out, 0)?;
            return Ok(out);
        }
        if let Some(m) = msgs.iter().find(|m| m.kind == msg::LINK_INFO) {
            let at = m.body.start as u64;
            let skip = if self.u8(at + 1, "link info")? & 1 != 0 {
                8
            } else {
                0
            };
            if self.u64(at + 2 + skip, "link info")? != UNDEF {
                return Err(self.err(format!(
                    "group `{group}` stores its links densely (a fractal heap, used by the \
                     'latest' HDF5 format for large groups); that layout is not supported for \
                     writing. Re-save the file with anndata (`adata.write_h5ad`)"
                )));
            }
        }
        let mut out = Vec::new();
        for m in msgs.iter().filter(|m| m.kind == msg::LINK) {
            out.push(self.link_message(group, m)?);
        }
        Ok(out)
    }

    fn btree_links(
        &self,
        group: &str,
        node: u64,
        names: u64,
        out: &mut Vec<Link>,
        depth: usize,
    ) -> Result<(), DataError> {
        let node = self.inside(node, "group B-tree")?;
        if depth > 64 || self.bytes(node, 4, "group B-tree")? != b"TREE" {
            return Err(self.corrupt("group B-tree", node));
        }
        let level = self.u8(node + 5, "group B-tree")?;
        let used = u64::from(self.u16(node + 6, "group B-tree")?);
        for i in 0..used {
            let child = self.u64(node + 24 + 8 + i * 16, "group B-tree")?;
            let child = self.inside(child, "symbol table node")?;
            if level > 0 {
                self.btree_links(group, child, names, out, depth + 1)?;
                continue;
            }
            if self.bytes(child, 4, "symbol table node")? != b"SNOD" {
                return Err(self.corrupt("symbol table node", child));
            }
            let n = u64::from(self.u16(child + 6, "symbol table node")?);
            for e in 0..n {
                let entry = child + 8 + e * 40;
                let name_at = names.saturating_add(self.u64(entry, "symbol table entry")?);
                let name = self.c_string(name_at)?;
                if self.u32(entry + 16, "symbol table entry")? == 2 {
                    return Err(self.err(format!(
                        "`{group}/{name}` is a soft link; groups with soft links are not \
                         supported for writing"
                    )));
                }
                out.push(Link {
                    name,
                    target: self.u64(entry + 8, "symbol table entry")?,
                    addr_field: (entry + 8) as usize,
                    in_symbol_table: true,
                });
            }
        }
        Ok(())
    }

    fn c_string(&self, at: u64) -> Result<String, DataError> {
        let start = usize::try_from(at).map_err(|_| self.corrupt("name", at))?;
        let rest = self
            .b
            .get(start..)
            .ok_or_else(|| self.corrupt("name", at))?;
        let end = rest
            .iter()
            .position(|&c| c == 0)
            .ok_or_else(|| self.corrupt("name", at))?;
        Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
    }

    fn link_message(&self, group: &str, m: &Msg) -> Result<Link, DataError> {
        let mut at = m.body.start as u64;
        let flags = self.u8(at + 1, "link")?;
        at += 2;
        let mut kind = 0;
        if flags & 0x08 != 0 {
            kind = self.u8(at, "link")?;
            at += 1;
        }
        if flags & 0x04 != 0 {
            at += 8;
        }
        if flags & 0x10 != 0 {
            at += 1;
        }
        let width = 1usize << (flags & 3);
        let mut len = [0u8; 8];
        len[..width].copy_from_slice(self.bytes(at, width, "link")?);
        at += width as u64;
        let len = usize::try_from(u64::from_le_bytes(len)).map_err(|_| self.corrupt("link", at))?;
        let name = String::from_utf8_lossy(self.bytes(at, len, "link")?).into_owned();
        at += len as u64;
        if kind != 0 {
            return Err(self.err(format!(
                "`{group}/{name}` is a soft or external link; groups with such links are not \
                 supported for writing"
            )));
        }
        Ok(Link {
            name,
            target: self.u64(at, "link")?,
            addr_field: at as usize,
            in_symbol_table: false,
        })
    }

    /// Decodes the attribute messages among `msgs`.
    pub fn attrs(&self, msgs: &[Msg]) -> Result<Vec<(usize, Attr)>, DataError> {
        let mut out = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            if m.kind == msg::ATTRIBUTE {
                out.push((i, self.attr(m)?));
            }
        }
        Ok(out)
    }

    fn attr(&self, m: &Msg) -> Result<Attr, DataError> {
        let at = m.body.start as u64;
        let version = self.u8(at, "attribute")?;
        let sizes = [
            usize::from(self.u16(at + 2, "attribute")?),
            usize::from(self.u16(at + 4, "attribute")?),
            usize::from(self.u16(at + 6, "attribute")?),
        ];
        let (mut p, pad) = match version {
            1 => (m.body.start + 8, 8),
            2 => (m.body.start + 8, 1),
            3 => (m.body.start + 9, 1),
            _ => return Err(self.corrupt("attribute", at)),
        };
        let mut field = |len: usize| {
            let r = p..p + len;
            p += len.div_ceil(pad) * pad;
            r
        };
        let (name, dtype, space) = (field(sizes[0]), field(sizes[1]), field(sizes[2]));
        if p > m.body.end {
            return Err(self.corrupt("attribute", at));
        }
        let name = &self.b[name];
        let name = name.split(|&c| c == 0).next().unwrap_or_default();
        Ok(Attr {
            name: String::from_utf8_lossy(name).into_owned(),
            dtype,
            space,
            data: p..m.body.end,
        })
    }

    /// Dimensions of a dataspace message body (empty for a scalar; `None` for a null space).
    pub fn dims(&self, space: &Range<usize>) -> Result<Option<Vec<u64>>, DataError> {
        let at = space.start as u64;
        let version = self.u8(at, "dataspace")?;
        let rank = u64::from(self.u8(at + 1, "dataspace")?);
        let (first, null) = match version {
            1 => (at + 8, false),
            2 => (at + 4, self.u8(at + 3, "dataspace")? == 2),
            _ => return Err(self.corrupt("dataspace", at)),
        };
        if null {
            return Ok(None);
        }
        (0..rank)
            .map(|i| self.u64(first + 8 * i, "dataspace"))
            .collect::<Result<_, _>>()
            .map(Some)
    }

    /// The strings of a string attribute (fixed-length or variable-length). Attributes that
    /// hold no element (anndata writes an empty `column-order` as an empty float array) give
    /// an empty list; other non-string types give `None`.
    pub fn attr_strings(&self, a: &Attr) -> Result<Option<Vec<String>>, DataError> {
        let n: u64 = match self.dims(&a.space)? {
            None => 0,
            Some(d) => (d.iter().try_fold(1u64, |n, &x| n.checked_mul(x)))
                .ok_or_else(|| self.corrupt("dataspace", a.space.start as u64))?,
        };
        let at = a.dtype.start as u64;
        let class = self.u8(at, "datatype")? & 0x0f;
        let size = u64::from(self.u32(at + 4, "datatype")?);
        let data = a.data.start as u64;
        match class {
            3 => (0..n)
                .map(|i| {
                    let at = data.saturating_add(i.saturating_mul(size));
                    let raw = self.bytes(at, size as usize, "string attribute")?;
                    let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
                    Ok(String::from_utf8_lossy(&raw[..end]).trim_end().to_string())
                })
                .collect::<Result<_, _>>()
                .map(Some),
            9 if self.u8(at + 1, "datatype")? & 0x0f == 1 => (0..n)
                .map(|i| {
                    let r = data.saturating_add(i.saturating_mul(16));
                    let len = self.u32(r, "string attribute")? as usize;
                    let heap = self.u64(r + 4, "string attribute")?;
                    let index = self.u32(r + 12, "string attribute")?;
                    let s = self.heap_object(heap, index)?;
                    Ok(String::from_utf8_lossy(&s[..len.min(s.len())]).into_owned())
                })
                .collect::<Result<_, _>>()
                .map(Some),
            _ if n == 0 => Ok(Some(Vec::new())),
            _ => Ok(None),
        }
    }

    /// Object `index` of the global heap collection at `addr`.
    fn heap_object(&self, addr: u64, index: u32) -> Result<&'a [u8], DataError> {
        let addr = self.inside(addr, "global heap")?;
        if self.bytes(addr, 4, "global heap")? != b"GCOL" {
            return Err(self.corrupt("global heap", addr));
        }
        let end = addr.saturating_add(self.u64(addr + 8, "global heap")?);
        let mut p = addr + 16;
        while p + 16 <= end {
            let i = u32::from(self.u16(p, "global heap")?);
            let size = self.u64(p + 8, "global heap")?;
            if i == 0 {
                break;
            }
            if i == index {
                return self.bytes(p + 16, size as usize, "global heap object");
            }
            p = p.saturating_add(16).saturating_add(size.div_ceil(8) * 8);
        }
        Err(self.corrupt("global heap object", addr))
    }
}
