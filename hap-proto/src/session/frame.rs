//! Sealing and opening the 1024-byte frames of an encrypted session (HAP §4).
//!
//! Each direction has its own key and its own 64-bit counter, both starting at 0 after
//! pair-verify. A frame is `len (u16 LE) || ciphertext (len B) || tag (16 B)`, the two length
//! bytes are the AAD and the nonce is `00 00 00 00 || counter (u64 LE)`. Frame boundaries need not
//! match HTTP message boundaries, so the [`Opener`] accepts input in arbitrary pieces.
//!
//! A tag failure, an oversized length or an exhausted counter kills the session: every later
//! call returns the same error and the caller must close the connection without answering.
#![deny(clippy::indexing_slicing)]

use zeroize::Zeroize;

use super::SessionKeys;
use crate::crypto::{TAG_LEN, counter_nonce, open_in_place, seal_in_place};
use crate::error::{Error, PeerMisbehaved};

/// Both directions of an encrypted session, for one side of the connection.
#[derive(Debug)]
pub struct Session {
    sealer: Sealer,
    opener: Opener,
}

impl Session {
    /// The accessory's side: seals with the accessory-to-controller key, opens with the
    /// controller-to-accessory key (HAP §3.1).
    pub fn accessory(keys: SessionKeys) -> Self {
        Self {
            sealer: Sealer::new(keys.accessory_to_controller),
            opener: Opener::new(keys.controller_to_accessory),
        }
    }

    /// The controller's side: seals with the controller-to-accessory key, opens with the
    /// accessory-to-controller key.
    pub fn controller(keys: SessionKeys) -> Self {
        Self {
            sealer: Sealer::new(keys.controller_to_accessory),
            opener: Opener::new(keys.accessory_to_controller),
        }
    }

    /// Seals `plaintext` into frames appended to `out` (see [`Sealer::seal`]). Fails once the
    /// session is dead.
    pub fn seal(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        if let Some(error) = &self.opener.failed {
            return Err(error.clone());
        }
        self.sealer.seal(plaintext, out)
    }

    /// Buffers received bytes (see [`Opener::feed`]).
    pub fn feed(&mut self, bytes: &[u8]) {
        self.opener.feed(bytes);
    }

    /// The plaintext of the next complete frame (see [`Opener::poll_plaintext`]).
    pub fn poll_plaintext(&mut self) -> Result<Option<Vec<u8>>, Error> {
        self.opener.poll_plaintext()
    }

    /// Opens every complete buffered frame into `out` (see [`Opener::open_available`]).
    pub fn open_available(&mut self, out: &mut Vec<u8>) -> Result<usize, Error> {
        self.opener.open_available(out)
    }

    /// Whether a frame failed to open; the connection must then be closed.
    pub fn is_dead(&self) -> bool {
        self.opener.is_dead()
    }

    /// The two directions, to drive them from different places.
    pub fn split(self) -> (Sealer, Opener) {
        (self.sealer, self.opener)
    }
}

/// The sending direction: turns plaintext into frames.
pub struct Sealer {
    key: [u8; 32],
    counter: u64,
}

impl Sealer {
    /// A sealer whose first frame uses counter 0.
    pub fn new(key: [u8; 32]) -> Self {
        Self { key, counter: 0 }
    }

    /// Splits `plaintext` into frames of at most [`MAX_FRAME_PLAINTEXT`] bytes and appends them,
    /// sealed, to `out`. Empty plaintext produces no frame.
    ///
    /// Fails with [`PeerMisbehaved::CounterExhausted`], writing nothing, if the frames would
    /// need a counter past `u64::MAX - 1`; the connection must then be closed.
    pub fn seal(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        let frame_count = plaintext.len().div_ceil(MAX_FRAME_PLAINTEXT);
        let exhausted = Error::PeerMisbehaved(PeerMisbehaved::CounterExhausted);
        let frames = u64::try_from(frame_count).map_err(|_| exhausted.clone())?;
        // The counter after sealing may reach u64::MAX; the last nonce used is then MAX - 1.
        let end = self.counter.checked_add(frames).ok_or(exhausted)?;
        out.reserve(
            plaintext
                .len()
                .saturating_add(frame_count.saturating_mul(FRAME_OVERHEAD)),
        );
        for chunk in plaintext.chunks(MAX_FRAME_PLAINTEXT) {
            // `chunks(1024)` yields at most 1024 bytes, which fits in a u16.
            let len = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
            let aad = len.to_le_bytes();
            out.extend_from_slice(&aad);
            let start = out.len();
            out.extend_from_slice(chunk);
            let nonce = counter_nonce(self.counter);
            let tag = match out.get_mut(start..) {
                Some(buf) => seal_in_place(&self.key, &nonce, &aad, buf),
                None => [0; TAG_LEN], // unreachable: `start` is the length before the push
            };
            out.extend_from_slice(&tag);
            self.counter = self.counter.wrapping_add(1);
        }
        debug_assert_eq!(self.counter, end);
        Ok(())
    }

    /// The counter the next frame will use.
    pub fn counter(&self) -> u64 {
        self.counter
    }
}

impl Drop for Sealer {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl core::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sealer")
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

/// The receiving direction: buffers bytes and opens complete frames, decrypting in place.
pub struct Opener {
    key: [u8; 32],
    counter: u64,
    /// Received bytes; those before `start` are already consumed.
    buf: Vec<u8>,
    start: usize,
    failed: Option<Error>,
}

impl Opener {
    /// An opener whose first frame uses counter 0.
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            key,
            counter: 0,
            buf: Vec::new(),
            start: 0,
            failed: None,
        }
    }

    /// Buffers received bytes, which may end anywhere inside a frame. Ignored once dead.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Opens the next frame if all `2 + len + 16` bytes of it are buffered.
    ///
    /// Returns `Ok(None)` when more input is needed and `Ok(Some(plaintext))` for each frame
    /// (possibly empty for a zero-length frame). Errors, after which the opener is dead and
    /// returns the same error forever:
    /// - [`Error::FrameTooLarge`] when a frame announces more than [`MAX_FRAME_PLAINTEXT`] bytes,
    /// - [`Error::Authentication`] when a tag does not verify,
    /// - [`PeerMisbehaved::CounterExhausted`] after `u64::MAX` frames.
    ///
    /// The counter advances only when a frame opened successfully.
    pub fn poll_plaintext(&mut self) -> Result<Option<Vec<u8>>, Error> {
        let mut out = Vec::new();
        Ok(self.open_one(&mut out)?.map(|_| out))
    }

    /// Opens every complete buffered frame, appending the plaintext to `out`; returns the number
    /// of plaintext bytes appended. Errors as [`Self::poll_plaintext`]; frames opened before
    /// the failing one are still appended.
    pub fn open_available(&mut self, out: &mut Vec<u8>) -> Result<usize, Error> {
        let mut total = 0usize;
        while let Some(n) = self.open_one(out)? {
            total = total.saturating_add(n);
        }
        Ok(total)
    }

    /// Whether a frame failed to open.
    pub fn is_dead(&self) -> bool {
        self.failed.is_some()
    }

    /// Bytes buffered but not yet opened.
    pub fn buffered(&self) -> usize {
        self.buf.len().saturating_sub(self.start)
    }

    /// The counter the next frame must use.
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// Opens one frame into `out`; `Ok(Some(len))` on success, `Ok(None)` if incomplete.
    fn open_one(&mut self, out: &mut Vec<u8>) -> Result<Option<usize>, Error> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let pending = self.buf.get(self.start..).unwrap_or_default();
        let len = match pending.get(..LEN_BYTES) {
            Some(&[lo, hi]) => usize::from(u16::from_le_bytes([lo, hi])),
            _ => return Ok(None),
        };
        if len > MAX_FRAME_PLAINTEXT {
            return Err(self.fail(Error::FrameTooLarge { len }));
        }
        // len <= 1024, so this cannot overflow.
        let total = LEN_BYTES + len + TAG_LEN;
        if pending.len() < total {
            return Ok(None);
        }
        if self.counter == u64::MAX {
            return Err(self.fail(Error::PeerMisbehaved(PeerMisbehaved::CounterExhausted)));
        }
        let nonce = counter_nonce(self.counter);
        let end = self.start + total;
        let opened = match self.buf.get_mut(self.start..end) {
            Some(frame) => open_frame(&self.key, &nonce, frame, len),
            None => None,
        };
        let Some(plaintext) = opened else {
            return Err(self.fail(Error::Authentication));
        };
        out.extend_from_slice(plaintext);
        self.counter += 1;
        self.start = end;
        self.compact();
        Ok(Some(len))
    }

    /// Marks the opener dead and drops what is buffered.
    fn fail(&mut self, error: Error) -> Error {
        self.failed = Some(error.clone());
        self.buf.zeroize();
        self.buf = Vec::new();
        self.start = 0;
        error
    }

    /// Drops consumed bytes once they are everything or a good part of the buffer.
    fn compact(&mut self) {
        if self.start == self.buf.len() {
            // Consumed frames were decrypted in place: don't leave plaintext lying around.
            self.buf.zeroize();
            self.buf.clear();
            self.start = 0;
        } else if self.start >= COMPACT_THRESHOLD {
            if let Some(consumed) = self.buf.get_mut(..self.start) {
                consumed.zeroize();
            }
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }
}

impl Drop for Opener {
    fn drop(&mut self) {
        self.key.zeroize();
        self.buf.zeroize();
    }
}

impl core::fmt::Debug for Opener {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Opener")
            .field("counter", &self.counter)
            .field("buffered", &self.buffered())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

/// Decrypts one complete frame in place; returns its plaintext, or `None` if the tag fails.
fn open_frame<'f>(
    key: &[u8; 32],
    nonce: &[u8; 12],
    frame: &'f mut [u8],
    len: usize,
) -> Option<&'f [u8]> {
    let (aad, rest) = frame.split_at_mut_checked(LEN_BYTES)?;
    let (ciphertext, tag) = rest.split_at_mut_checked(len)?;
    open_in_place(key, nonce, aad, ciphertext, tag).ok()?;
    Some(ciphertext)
}

/// The most plaintext bytes in one frame (HAP §4, ADK `kHAPIPSecurityProtocol_MaxFrameBytes`).
pub const MAX_FRAME_PLAINTEXT: usize = 1024;
/// Length prefix of a frame, also its AAD.
const LEN_BYTES: usize = 2;
/// Bytes a frame adds to its plaintext.
const FRAME_OVERHEAD: usize = LEN_BYTES + TAG_LEN;
/// Consumed bytes after which the receive buffer is shifted down.
const COMPACT_THRESHOLD: usize = 16 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Session, Session) {
        let keys = SessionKeys::derive(&[0x42; 32]);
        (Session::controller(keys.clone()), Session::accessory(keys))
    }

    #[test]
    fn frame_layout_and_split_at_1024() {
        let (mut c, mut a) = pair();
        let msg = vec![0x5a; 1025];
        let mut wire = Vec::new();
        c.seal(&msg, &mut wire).unwrap();
        assert_eq!(wire.len(), 1025 + 2 * FRAME_OVERHEAD);
        assert_eq!(&wire[..2], &[0x00, 0x04]);
        assert_eq!(&wire[2 + 1024 + 16..2 + 1024 + 18], &[0x01, 0x00]);
        a.feed(&wire);
        assert_eq!(a.poll_plaintext().unwrap().unwrap(), vec![0x5a; 1024]);
        assert_eq!(a.poll_plaintext().unwrap().unwrap(), vec![0x5a; 1]);
        assert_eq!(a.poll_plaintext().unwrap(), None);
        assert_eq!(a.opener.counter(), 2);
    }

    #[test]
    fn empty_plaintext_writes_nothing_but_empty_frames_open() {
        let (mut c, mut a) = pair();
        let mut wire = Vec::new();
        c.seal(&[], &mut wire).unwrap();
        assert!(wire.is_empty());
        // A zero-length frame from a peer is valid: tag over nothing.
        let nonce = counter_nonce(0);
        let key = SessionKeys::derive(&[0x42; 32]).controller_to_accessory;
        let tag = seal_in_place(&key, &nonce, &[0, 0], &mut []);
        a.feed(&[0, 0]);
        a.feed(&tag);
        assert_eq!(a.poll_plaintext().unwrap(), Some(Vec::new()));
    }

    #[test]
    fn counter_advances_only_on_success() {
        let (mut c, mut a) = pair();
        let mut wire = Vec::new();
        c.seal(b"hello", &mut wire).unwrap();
        a.feed(&wire[..10]);
        assert_eq!(a.poll_plaintext().unwrap(), None);
        assert_eq!(a.opener.counter(), 0);
        let mut bad = wire[10..].to_vec();
        bad[0] ^= 0x80;
        a.feed(&bad);
        assert_eq!(a.poll_plaintext(), Err(Error::Authentication));
        assert_eq!(a.opener.counter(), 0);
        assert!(a.is_dead());
        assert_eq!(a.opener.buffered(), 0);
    }

    #[test]
    fn sealer_counter_exhaustion_writes_nothing() {
        let mut s = Sealer::new([1; 32]);
        s.counter = u64::MAX - 1;
        let mut out = Vec::new();
        s.seal(&[0; 1024], &mut out).unwrap();
        assert_eq!(s.counter(), u64::MAX);
        let before = out.len();
        assert_eq!(
            s.seal(b"x", &mut out),
            Err(Error::PeerMisbehaved(PeerMisbehaved::CounterExhausted))
        );
        assert_eq!(out.len(), before);
        s.counter = u64::MAX - 1;
        assert!(s.seal(&[0; 1025], &mut out).is_err());
        assert_eq!(out.len(), before);
    }

    #[test]
    fn opener_counter_exhaustion_kills() {
        let mut sealer = Sealer::new([3; 32]);
        let mut opener = Opener::new([3; 32]);
        sealer.counter = u64::MAX - 1;
        opener.counter = u64::MAX - 1;
        let mut wire = Vec::new();
        sealer.seal(b"last", &mut wire).unwrap();
        opener.feed(&wire);
        assert_eq!(opener.poll_plaintext().unwrap().unwrap(), b"last");
        opener.feed(&wire);
        let exhausted = Err(Error::PeerMisbehaved(PeerMisbehaved::CounterExhausted));
        assert_eq!(opener.poll_plaintext(), exhausted);
        assert_eq!(opener.poll_plaintext(), exhausted);
    }

    #[test]
    fn compaction_keeps_partial_frame() {
        let mut sealer = Sealer::new([9; 32]);
        let mut opener = Opener::new([9; 32]);
        let msg: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
        let mut wire = Vec::new();
        sealer.seal(&msg, &mut wire).unwrap();
        let mut got = Vec::new();
        for piece in wire.chunks(777) {
            opener.feed(piece);
            opener.open_available(&mut got).unwrap();
            assert!(opener.buf.len() < COMPACT_THRESHOLD + 2 * (MAX_FRAME_PLAINTEXT + 800));
        }
        assert_eq!(got, msg);
        assert_eq!(opener.buffered(), 0);
    }

    #[test]
    fn garbage_never_panics_and_failure_is_sticky() {
        use rand_chacha::ChaCha20Rng;
        use rand_chacha::rand_core::{Rng, SeedableRng};
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        for _ in 0..500 {
            let mut opener = Opener::new([7; 32]);
            let len = (rng.next_u32() % 3000) as usize;
            let mut junk = vec![0u8; len];
            rng.fill_bytes(&mut junk);
            let mut first_error = None;
            for piece in junk.chunks((rng.next_u32() % 300 + 1) as usize) {
                opener.feed(piece);
                match opener.open_available(&mut Vec::new()) {
                    Ok(_) => assert!(first_error.is_none()),
                    Err(e) => {
                        if let Some(first) = &first_error {
                            assert_eq!(&e, first);
                        }
                        first_error = Some(e);
                    }
                }
                assert_eq!(opener.counter(), 0);
            }
        }
    }
}
