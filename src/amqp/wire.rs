//! A bounds-checked cursor over untrusted AMQP bytes.
//!
//! Every read checks the length first and reports [`Truncated`] instead of
//! panicking, so decoders built on it are total over arbitrary input. It
//! only reads; encoders write straight into a `Vec<u8>`.

/// The input ended in the middle of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("input ends inside {what}")]
pub struct Truncated {
    /// The item being read when the input ran out.
    pub what: &'static str,
}

/// A cursor over a byte slice; `pos` only moves forward.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Octets consumed so far.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// The unread tail.
    pub(crate) fn rest(&self) -> &'a [u8] {
        // `pos` never exceeds `buf.len()`: `take` checks before it moves.
        &self.buf[self.pos..]
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }

    /// The next `n` octets, or `Truncated` if fewer are left.
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Truncated> {
        let rest = self.rest();
        let Some(taken) = rest.get(..n) else {
            return Err(Truncated { what });
        };
        self.pos += n;
        debug_assert!(self.pos <= self.buf.len());
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Truncated> {
        let taken = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(taken);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, Truncated> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, Truncated> {
        self.array(what).map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, Truncated> {
        self.array(what).map(u32::from_be_bytes)
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, Truncated> {
        self.array(what).map(u64::from_be_bytes)
    }

    /// A short string's content: a u8 length, then that many octets.
    pub(crate) fn short_bytes(&mut self, what: &'static str) -> Result<&'a [u8], Truncated> {
        let len = self.u8(what)?;
        self.take(usize::from(len), what)
    }

    /// A long string's content: a u32 length, then that many octets.
    pub(crate) fn long_bytes(&mut self, what: &'static str) -> Result<&'a [u8], Truncated> {
        let len = self.u32(what)?;
        // A length that does not fit usize cannot fit the input either.
        let len = usize::try_from(len).map_err(|_| Truncated { what })?;
        self.take(len, what)
    }
}

/// Append a u32 length prefix for the octets written by `body`.
///
/// The prefix is back-patched so nested tables are encoded in one pass.
/// Panics if the body exceeds `u32::MAX` octets: no value decoded from a
/// frame can be that large, and values built by the broker are small.
pub(crate) fn write_long_prefixed(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    body(out);
    let len = u32::try_from(out.len() - at - 4).expect("long-prefixed value exceeds u32::MAX");
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}
