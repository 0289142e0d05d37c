//! Session keys: the AES-CM key derivation function (RFC 3711 §4.3.1, §4.3.3; RFC 6188 §3 for
//! AES-256), AES counter mode (RFC 3711 §4.1.1) and HMAC-SHA1 (RFC 3711 §4.2.1).
#![deny(clippy::indexing_slicing)]

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes::{Aes128, Aes256, Block};
use hmac::Hmac;
use sha1::Sha1;
use zeroize::Zeroizing;

use super::SALT_LEN;

/// AES with a 128- or 256-bit key.
#[derive(Clone)]
pub(crate) enum Aes {
    Aes128(Box<Aes128>),
    Aes256(Box<Aes256>),
}

impl Aes {
    /// AES for a 16- or 32-byte key; `None` for other lengths.
    pub(crate) fn new(key: &[u8]) -> Option<Self> {
        match key.len() {
            16 => Aes128::new_from_slice(key)
                .ok()
                .map(|c| Self::Aes128(Box::new(c))),
            32 => Aes256::new_from_slice(key)
                .ok()
                .map(|c| Self::Aes256(Box::new(c))),
            _ => None,
        }
    }

    fn encrypt_blocks(&self, blocks: &mut [Block]) {
        match self {
            Self::Aes128(c) => c.encrypt_blocks(blocks),
            Self::Aes256(c) => c.encrypt_blocks(blocks),
        }
    }

    /// XORs `data` with the AES-CM keystream starting at counter block `iv` (RFC 3711 §4.1.1):
    /// block j of the keystream is AES(iv + j).
    pub(crate) fn apply_keystream(&self, iv: [u8; 16], data: &mut [u8]) {
        let base = u128::from_be_bytes(iv);
        let mut counter: u128 = 0;
        let mut blocks = [Block::default(); BATCH_BLOCKS];
        for chunk in data.chunks_mut(16 * BATCH_BLOCKS) {
            let n = chunk.len().div_ceil(16);
            let batch = blocks.get_mut(..n).unwrap_or_default();
            for b in batch.iter_mut() {
                *b = Block::from(base.wrapping_add(counter).to_be_bytes());
                counter = counter.wrapping_add(1);
            }
            self.encrypt_blocks(batch);
            for (d, k) in chunk.iter_mut().zip(batch.iter().flat_map(|b| b.iter())) {
                *d ^= k;
            }
        }
    }
}

/// Keys of one direction and packet kind (SRTP or SRTCP) derived from the master key and salt.
#[derive(Clone)]
pub(crate) struct SessionKeys {
    pub(crate) cipher: Aes,
    pub(crate) salt: Zeroizing<[u8; SALT_LEN]>,
    pub(crate) auth: Hmac<Sha1>,
}

impl SessionKeys {
    /// Derives the session keys with labels `label_base`, +1, +2 (0/1/2 for SRTP, 3/4/5 for
    /// SRTCP; RFC 3711 §4.3.2), key derivation rate 0. `None` cannot happen for keys `Aes::new`
    /// accepted (the session key has the master key's length; HMAC takes any key length).
    pub(crate) fn derive(
        master: &Aes,
        master_salt: &[u8; SALT_LEN],
        label_base: u8,
    ) -> Option<Self> {
        let key_len = match master {
            Aes::Aes128(_) => 16,
            Aes::Aes256(_) => 32,
        };
        let enc = Zeroizing::new(derive(master, master_salt, label_base, key_len));
        let auth = Zeroizing::new(derive(
            master,
            master_salt,
            label_base.wrapping_add(1),
            AUTH_KEY_LEN,
        ));
        let salt_bytes = Zeroizing::new(derive(
            master,
            master_salt,
            label_base.wrapping_add(2),
            SALT_LEN,
        ));
        let mut salt = Zeroizing::new([0u8; SALT_LEN]);
        salt.copy_from_slice(&salt_bytes);
        Some(Self {
            cipher: Aes::new(&enc)?,
            salt,
            auth: <Hmac<Sha1> as KeyInit>::new_from_slice(&auth).ok()?,
        })
    }

    /// The counter block for a packet: (salt * 2^16) XOR (SSRC * 2^64) XOR (index * 2^16)
    /// (RFC 3711 §4.1.1; for SRTCP the index is the 31-bit SRTCP index, §4.1).
    pub(crate) fn iv(&self, ssrc: u32, index: u64) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv.get_mut(..SALT_LEN)
            .unwrap_or_default()
            .copy_from_slice(&self.salt[..]);
        let x = (u128::from(ssrc) << 64) | (u128::from(index & INDEX_MASK) << 16);
        (u128::from_be_bytes(iv) ^ x).to_be_bytes()
    }
}

/// PRF_n(k_master, x) of RFC 3711 §4.3.1/§4.3.3 with r = 0: x = (label << 48) XOR master_salt,
/// keystream of AES-CM with IV x * 2^16.
pub(crate) fn derive(master: &Aes, master_salt: &[u8; SALT_LEN], label: u8, len: usize) -> Vec<u8> {
    let mut iv = [0u8; 16];
    iv.get_mut(..SALT_LEN)
        .unwrap_or_default()
        .copy_from_slice(master_salt);
    // key_id = label || r (48 bits) sits in the low 56 bits of the 112-bit x.
    if let Some(b) = iv.get_mut(SALT_LEN - 7) {
        *b ^= label;
    }
    let mut out = vec![0u8; len];
    master.apply_keystream(iv, &mut out);
    out
}

/// The 48-bit SRTP packet index (RFC 3711 §3.3.1).
const INDEX_MASK: u64 = (1 << 48) - 1;
/// Length of the HMAC-SHA1 session authentication key (RFC 3711 §4.2.1, n_a = 160).
const AUTH_KEY_LEN: usize = 20;
/// Blocks encrypted per AES call (lets the AES-NI backend pipeline).
const BATCH_BLOCKS: usize = 16;
