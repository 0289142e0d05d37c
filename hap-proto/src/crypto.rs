//! The primitives of HAP pairing and sessions: HKDF-SHA-512 (HAP §2.3, §3.1) and
//! ChaCha20-Poly1305 with HAP's nonces (§2.4, §4).

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
use hkdf::Hkdf;
use sha2::Sha512;

use crate::error::Error;

/// Length of the Poly1305 tag appended to every ciphertext.
pub const TAG_LEN: usize = 16;

/// HKDF-SHA-512 with a 32-byte output, as every HAP key derivation uses (§2.3, §3.1).
pub fn hkdf_sha512(ikm: &[u8], salt: &[u8], info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    // 32 bytes is far below HKDF-SHA-512's 255 * 64 byte limit, so expansion cannot fail.
    let _ = Hkdf::<Sha512>::new(Some(salt), ikm).expand(info, &mut out);
    out
}

/// A pairing nonce: 4 zero bytes and the 8-byte ASCII label, e.g. `PS-Msg05` (§2.4).
pub fn label_nonce(label: &[u8; 8]) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(label);
    nonce
}

/// A session nonce: 4 zero bytes and the 64-bit frame counter, little-endian (§4).
pub fn counter_nonce(counter: u64) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&counter.to_le_bytes());
    nonce
}

/// Encrypts `plaintext` and returns ciphertext || tag.
pub fn seal(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plaintext.len() + TAG_LEN);
    out.extend_from_slice(plaintext);
    let tag = seal_in_place(key, nonce, aad, &mut out);
    out.extend_from_slice(&tag);
    out
}

/// Encrypts `buf` in place and returns the tag.
pub fn seal_in_place(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
    let cipher = ChaCha20Poly1305::new(&Key::from(*key));
    // Encryption only fails for messages over ~256 GiB; HAP frames are at most 1024 bytes.
    match cipher.encrypt_inout_detached(&Nonce::from(*nonce), aad, buf.into()) {
        Ok(tag) => tag.into(),
        Err(_) => [0u8; 16],
    }
}

/// Decrypts ciphertext || tag; any failure is [`Error::Authentication`].
pub fn open(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, Error> {
    let split = sealed
        .len()
        .checked_sub(TAG_LEN)
        .ok_or(Error::Authentication)?;
    let (ciphertext, tag) = sealed.split_at(split);
    let mut out = ciphertext.to_vec();
    open_in_place(key, nonce, aad, &mut out, tag)?;
    Ok(out)
}

/// Decrypts `buf` in place, checking `tag`; on failure `buf` holds garbage and
/// [`Error::Authentication`] is returned.
pub fn open_in_place(
    key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8],
) -> Result<(), Error> {
    let tag: &[u8; 16] = tag.try_into().map_err(|_| Error::Authentication)?;
    let cipher = ChaCha20Poly1305::new(&Key::from(*key));
    cipher
        .decrypt_inout_detached(&Nonce::from(*nonce), aad, buf.into(), &Tag::from(*tag))
        .map_err(|_| Error::Authentication)
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;

    use super::*;

    #[test]
    fn hkdf_sha512_rfc5869_style_vector() {
        // hap-reference §10.4 (ADK HAPCryptoTest.c), first 32 of the 42 output bytes.
        let okm = hkdf_sha512(
            &[0x0b; 22],
            &hex!("000102030405060708090a0b0c"),
            &hex!("f0f1f2f3f4f5f6f7f8f9"),
        );
        assert_eq!(
            okm,
            hex!("832390086cda71fb47625bb5ceb168e4c8e26a1a16ed34d9fc7fe92c14815793")
        );
    }

    #[test]
    fn chacha20poly1305_rfc8439_vector() {
        let key: [u8; 32] = core::array::from_fn(|i| 0x80 + i as u8);
        let nonce = hex!("070000004041424344454647");
        let aad = hex!("50515253c0c1c2c3c4c5c6c7");
        let pt = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let sealed = seal(&key, &nonce, &aad, pt);
        assert_eq!(
            &sealed[pt.len()..],
            hex!("1ae10b594f09e26a7e902ecbd0600691")
        );
        assert_eq!(&sealed[..16], hex!("d31a8d34648e60db7b86afbc53ef7ec2"));
        assert_eq!(open(&key, &nonce, &aad, &sealed).unwrap(), pt);
        let mut bad = sealed;
        bad[3] ^= 1;
        assert_eq!(open(&key, &nonce, &aad, &bad), Err(Error::Authentication));
    }

    #[test]
    fn nonces() {
        assert_eq!(label_nonce(b"PS-Msg05"), hex!("00000000 50532d4d73673035"));
        assert_eq!(counter_nonce(1), hex!("00000000 0100000000000000"));
    }
}
