//! Reads the protobuf wire format: tags, varints, fixed-width values and length-delimited slices.

use crate::{Error, Result};

/// One field value as it sits on the wire, before the schema gives it a meaning.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1.
    Fixed64(u64),
    /// Wire type 2: strings, bytes, embedded messages, packed repeated scalars.
    Bytes(&'a [u8]),
    /// Wire type 5.
    Fixed32(u32),
}

/// Iterates over the `(field number, value)` pairs of one encoded message.
pub(crate) struct Fields<'a> {
    buf: &'a [u8],
}

impl<'a> Fields<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn next_field(&mut self) -> Result<(u32, Value<'a>)> {
        let tag = read_varint(&mut self.buf)?;
        let number =
            u32::try_from(tag >> 3).map_err(|_| Error::Malformed("field number out of range"))?;
        if number == 0 {
            return Err(Error::Malformed("field number 0"));
        }
        let value = match tag & 7 {
            0 => Value::Varint(read_varint(&mut self.buf)?),
            1 => Value::Fixed64(u64::from_le_bytes(
                take(&mut self.buf, 8)?
                    .try_into()
                    .map_err(|_| Error::Malformed("truncated fixed64"))?,
            )),
            2 => {
                let len = usize::try_from(read_varint(&mut self.buf)?)
                    .map_err(|_| Error::Malformed("length out of range"))?;
                Value::Bytes(take(&mut self.buf, len)?)
            }
            5 => Value::Fixed32(u32::from_le_bytes(
                take(&mut self.buf, 4)?
                    .try_into()
                    .map_err(|_| Error::Malformed("truncated fixed32"))?,
            )),
            _ => {
                return Err(Error::Malformed(
                    "unsupported wire type (groups are not used by Kubernetes)",
                ))
            }
        };
        Ok((number, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let item = self.next_field();
        if item.is_err() {
            // Stop after the first error: the rest of the buffer has no known framing.
            self.buf = &[];
        }
        Some(item)
    }
}

/// Splits `len` bytes off the front of `buf`.
fn take<'a>(buf: &mut &'a [u8], len: usize) -> Result<&'a [u8]> {
    if buf.len() < len {
        return Err(Error::Malformed("truncated field"));
    }
    let (head, tail) = buf.split_at(len);
    *buf = tail;
    Ok(head)
}

/// Reads one base-128 varint from the front of `buf`.
pub(crate) fn read_varint(buf: &mut &[u8]) -> Result<u64> {
    let mut value = 0u64;
    for (i, &byte) in buf.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *buf = &buf[i + 1..];
            return Ok(value);
        }
    }
    Err(Error::Malformed("truncated or overlong varint"))
}
