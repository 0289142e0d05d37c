//! SRP-6a as HAP pair-setup uses it (HAP §2.1): the RFC 5054 3072-bit group, g = 5, SHA-512,
//! username `Pair-Setup` and the setup code **with dashes** as the password.
//!
//! ```text
//! k  = H(N | PAD(g))                      x  = H(s | H(I | ":" | P))       v = g^x
//! B  = (k·v + g^b) mod N                  u  = H(PAD(A) | PAD(B))
//! S  = (A · v^u)^b mod N                  K  = H(S)
//! M1 = H((H(N) xor H(g)) | H(I) | s | A | B | K)      M2 = H(A | M1 | K)
//! ```
//!
//! # Padding variants
//!
//! Implementations disagree on leading zero bytes of A, B and S, which matters in about one
//! session in 256 per value (hap-reference §2.1 table):
//!
//! - Apple's ADK strips leading zeros of A and B inside M1 and of S inside K, and pads A to 384
//!   bytes inside M2. It sends B stripped.
//! - fast-srp (HAP-NodeJS) and aiohomekit pad A, B and S to 384 bytes everywhere; aiohomekit 4.x
//!   moreover hashes B **as received** inside u and M1.
//!
//! [`SrpServer`] sends B stripped, as ADK does, and [`SrpServer::verify_client`] accepts the
//! controller's M1 in any of these conventions: it tries every distinct combination of
//! {A stripped, as received, padded} × {B stripped, padded} × {S stripped, padded}, ADK's first,
//! and when B is shorter than 384 bytes and nothing matched, it also tries u computed over B as
//! sent (aiohomekit 4.x). The matching [`Variant`] decides K and the A form inside M2, so both an
//! Apple-style and an aiohomekit-style controller pair every time.
//!
//! # Secrets
//!
//! The secret exponent b and the session key K are kept in [`Zeroizing`] buffers. `num-bigint`
//! 0.4 cannot wipe its heap limbs, so the big-integer temporaries of S are not zeroized.
#![deny(clippy::indexing_slicing)]

use std::sync::OnceLock;

use num_bigint::BigUint;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{Error, PeerMisbehaved};
use crate::tlv8::TlvType;

/// The SRP username of HAP pair-setup (HAP §2.1).
pub const USERNAME: &[u8] = b"Pair-Setup";

/// The group modulus N as 384 big-endian bytes (RFC 5054 Appendix A, 3072-bit group).
pub fn modulus_bytes() -> &'static [u8; N_LEN] {
    static N: OnceLock<[u8; N_LEN]> = OnceLock::new();
    N.get_or_init(|| {
        let mut out = [0u8; N_LEN];
        for (byte, pair) in out.iter_mut().zip(N_HEX.as_bytes().chunks(2)) {
            *byte = (hex_digit(pair.first().copied()) << 4) | hex_digit(pair.get(1).copied());
        }
        out
    })
}

/// The group modulus N.
pub fn modulus() -> &'static BigUint {
    static N: OnceLock<BigUint> = OnceLock::new();
    N.get_or_init(|| BigUint::from_bytes_be(modulus_bytes()))
}

/// The multiplier k = H(N | PAD(g)) (RFC 5054 §2.5.3).
pub fn multiplier() -> &'static BigUint {
    static K: OnceLock<BigUint> = OnceLock::new();
    K.get_or_init(|| {
        let mut g = [0u8; N_LEN];
        g[N_LEN - 1] = GENERATOR;
        BigUint::from_bytes_be(&hash(&[modulus_bytes(), &g]))
    })
}

/// The private key x = H(s | H(I | ":" | P)), as 64 bytes.
pub fn private_key_x(salt: &[u8], username: &[u8], password: &[u8]) -> Zeroizing<[u8; 64]> {
    let inner = Zeroizing::new(hash(&[username, b":", password]));
    Zeroizing::new(hash(&[salt, &inner[..]]))
}

/// The password verifier v = g^x mod N.
pub fn verifier(salt: &[u8], username: &[u8], password: &[u8]) -> BigUint {
    let x = private_key_x(salt, username, password);
    generator().modpow(&BigUint::from_bytes_be(&x[..]), modulus())
}

/// The scrambling parameter u = H(A | B) over the byte forms given (both padded to 384 bytes
/// by the standard, §2.1).
pub fn scrambling(a: &[u8], b: &[u8]) -> [u8; 64] {
    hash(&[a, b])
}

/// The session key K = H(S) over the byte form of S given.
pub fn session_key(s: &[u8]) -> Zeroizing<[u8; 64]> {
    Zeroizing::new(hash(&[s]))
}

/// The client proof M1 = H((H(N) xor H(g)) | H(I) | s | A | B | K), where H(g) hashes the single
/// byte 0x05 (§2.1).
pub fn client_proof(username: &[u8], salt: &[u8], a: &[u8], b: &[u8], k: &[u8]) -> [u8; 64] {
    let hn = hash(&[modulus_bytes()]);
    let hg = hash(&[&[GENERATOR]]);
    let mut group = [0u8; 64];
    for ((out, n), g) in group.iter_mut().zip(hn).zip(hg) {
        *out = n ^ g;
    }
    hash(&[&group, &hash(&[username]), salt, a, b, k])
}

/// The server proof M2 = H(A | M1 | K).
pub fn server_proof(a: &[u8], m1: &[u8], k: &[u8]) -> [u8; 64] {
    hash(&[a, m1, k])
}

/// `value` left-padded with zero bytes to 384 bytes (PAD() of RFC 5054). Values are below N, so
/// they fit; a longer input keeps its low 384 bytes.
pub fn pad(value: &[u8]) -> [u8; N_LEN] {
    let value = strip(value);
    let mut out = [0u8; N_LEN];
    let take = value.len().min(N_LEN);
    let (_, tail) = out.split_at_mut(N_LEN - take);
    let (_, low) = value.split_at(value.len() - take);
    tail.copy_from_slice(low);
    out
}

/// `value` without its leading zero bytes (minimal big-endian). Zero stays one byte `00`.
pub fn strip(value: &[u8]) -> &[u8] {
    let first = value
        .iter()
        .position(|b| *b != 0)
        .unwrap_or_else(|| value.len().saturating_sub(1));
    value.get(first..).unwrap_or(value)
}

/// How one value was written into a hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Form {
    /// Leading zero bytes removed (minimal big-endian), as ADK hashes A and B in M1 and S in K.
    Stripped,
    /// Left-padded to 384 bytes, as fast-srp and aiohomekit do.
    Padded,
    /// Byte for byte as the controller sent it (A only).
    AsReceived,
}

/// The padding convention a controller's M1 matched (§2.1 table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Variant {
    /// Form of A inside M1.
    pub a: Form,
    /// Form of B inside M1.
    pub b: Form,
    /// Form of S inside K = H(S).
    pub s: Form,
    /// Whether u was computed over B as sent (stripped) instead of PAD(B): aiohomekit 4.x
    /// hashes the received bytes of B inside u.
    pub u_over_sent_b: bool,
}

impl Variant {
    /// Apple ADK's convention: A, B stripped in M1, S stripped in K (and A padded in M2).
    pub const ADK: Self = Self {
        a: Form::Stripped,
        b: Form::Stripped,
        s: Form::Stripped,
        u_over_sent_b: false,
    };
    /// fast-srp / aiohomekit convention: everything padded to 384 bytes.
    pub const PADDED: Self = Self {
        a: Form::Padded,
        b: Form::Padded,
        s: Form::Padded,
        u_over_sent_b: false,
    };
}

/// The accessory side of one SRP exchange: salt, verifier, secret b and public B.
pub struct SrpServer {
    username: Vec<u8>,
    salt: [u8; SALT_LEN],
    verifier: BigUint,
    secret: Zeroizing<[u8; SECRET_LEN]>,
    /// B as minimal big-endian bytes, as sent in M2.
    public: Vec<u8>,
}

impl SrpServer {
    /// Computes v and B = (k·v + g^b) mod N for `password` (the dashed setup code) with a fresh
    /// `salt` and 32-byte secret `secret` from the caller's RNG.
    pub fn new(
        username: &[u8],
        password: &[u8],
        salt: [u8; SALT_LEN],
        secret: [u8; SECRET_LEN],
    ) -> Self {
        let secret = Zeroizing::new(secret);
        let n = modulus();
        let verifier = verifier(&salt, username, password);
        let b = BigUint::from_bytes_be(&secret[..]);
        let public = (multiplier() * &verifier + generator().modpow(&b, n)) % n;
        Self {
            username: username.to_vec(),
            salt,
            verifier,
            secret,
            public: public.to_bytes_be(),
        }
    }

    /// The salt s, sent in M2.
    pub fn salt(&self) -> &[u8; SALT_LEN] {
        &self.salt
    }

    /// B as minimal big-endian bytes (ADK sends B stripped), sent in M2.
    pub fn public_key(&self) -> &[u8] {
        &self.public
    }

    /// Checks the controller's public key `a` and proof `m1` (M3) and returns the session.
    ///
    /// Errors: `a` empty or longer than 384 bytes or `m1` not 64 bytes →
    /// [`PeerMisbehaved::BadLength`]; A ≡ 0 mod N → [`PeerMisbehaved::InvalidSrpPublicKey`];
    /// no padding variant reproduces `m1` (wrong setup code) → [`Error::Authentication`].
    pub fn verify_client(&self, a: &[u8], m1: &[u8]) -> Result<SrpSession, Error> {
        if a.is_empty() || a.len() > N_LEN {
            return Err(Error::PeerMisbehaved(PeerMisbehaved::BadLength {
                ty: TlvType::PUBLIC_KEY.0,
                len: a.len(),
            }));
        }
        if m1.len() != PROOF_LEN {
            return Err(Error::PeerMisbehaved(PeerMisbehaved::BadLength {
                ty: TlvType::PROOF.0,
                len: m1.len(),
            }));
        }
        let n = modulus();
        let a_int = BigUint::from_bytes_be(a) % n;
        if a_int.bits() == 0 {
            return Err(Error::PeerMisbehaved(PeerMisbehaved::InvalidSrpPublicKey));
        }
        let a_padded = pad(a);
        let b_padded = pad(&self.public);
        let u = scrambling(&a_padded, &b_padded);
        let s = self.premaster(&a_int, &u);
        if let Some(session) = self.match_proof(a, &s, m1, false) {
            return Ok(session);
        }
        // aiohomekit 4.x hashes B as received inside u; only differs when B had leading zeros.
        if self.public.len() < N_LEN {
            let u = scrambling(&a_padded, &self.public);
            let s = self.premaster(&a_int, &u);
            if let Some(session) = self.match_proof(a, &s, m1, true) {
                return Ok(session);
            }
        }
        Err(Error::Authentication)
    }

    /// S = (A · v^u)^b mod N, as 384 padded bytes.
    fn premaster(&self, a: &BigUint, u: &[u8; 64]) -> Zeroizing<[u8; N_LEN]> {
        let n = modulus();
        let u = BigUint::from_bytes_be(u);
        let base = (a * self.verifier.modpow(&u, n)) % n;
        let b = BigUint::from_bytes_be(&self.secret[..]);
        let s = Zeroizing::new(base.modpow(&b, n).to_bytes_be());
        Zeroizing::new(pad(&s))
    }

    /// Tries the padding variants in order (ADK first) and returns the first whose M1 equals
    /// `m1`. Identical byte strings are hashed once.
    fn match_proof(
        &self,
        a_sent: &[u8],
        s_padded: &[u8; N_LEN],
        m1: &[u8],
        u_over_sent_b: bool,
    ) -> Option<SrpSession> {
        let a_padded = pad(a_sent);
        let b_padded = pad(&self.public);
        let a_form = |form| match form {
            Form::Stripped => strip(a_sent),
            Form::Padded => &a_padded[..],
            Form::AsReceived => a_sent,
        };
        let b_form = |form| match form {
            Form::Padded => &b_padded[..],
            Form::Stripped | Form::AsReceived => &self.public[..],
        };
        let k_stripped = session_key(strip(s_padded));
        let k_padded = session_key(s_padded);
        let k_form = |form| match form {
            Form::Padded => &*k_padded,
            Form::Stripped | Form::AsReceived => &*k_stripped,
        };
        let order = if u_over_sent_b {
            &VARIANT_ORDER_U_OVER_SENT_B
        } else {
            &VARIANT_ORDER
        };
        let mut tried: Vec<(&[u8], &[u8], &[u8; 64])> = Vec::with_capacity(order.len());
        for &(a, b, s) in order {
            let candidate = (a_form(a), b_form(b), k_form(s));
            if tried.contains(&candidate) {
                continue;
            }
            tried.push(candidate);
            let (a_bytes, b_bytes, k) = candidate;
            let expected = client_proof(&self.username, &self.salt, a_bytes, b_bytes, &k[..]);
            if bool::from(expected.ct_eq(m1)) {
                let variant = Variant {
                    a,
                    b,
                    s,
                    u_over_sent_b,
                };
                // ADK pads A inside M2; other conventions use the A form of their M1.
                let m2_a = if variant == Variant::ADK {
                    &a_padded[..]
                } else {
                    a_bytes
                };
                return Some(SrpSession {
                    m2: server_proof(m2_a, m1, &k[..]),
                    key: Zeroizing::new(*k),
                    variant,
                });
            }
        }
        None
    }
}

impl core::fmt::Debug for SrpServer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The verifier and b are secret; B and the salt are public.
        f.debug_struct("SrpServer")
            .field("public_len", &self.public.len())
            .finish_non_exhaustive()
    }
}

/// A verified SRP exchange: the session key K and the server proof M2.
pub struct SrpSession {
    key: Zeroizing<[u8; 64]>,
    m2: [u8; 64],
    variant: Variant,
}

impl SrpSession {
    /// The shared session key K (64 bytes), input of the pair-setup HKDFs (§2.3).
    pub fn key(&self) -> &[u8; 64] {
        &self.key
    }

    /// The server proof M2, sent in M4.
    pub fn server_proof(&self) -> &[u8; 64] {
        &self.m2
    }

    /// The padding convention the controller's M1 matched.
    pub fn variant(&self) -> Variant {
        self.variant
    }
}

impl core::fmt::Debug for SrpSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SrpSession")
            .field("variant", &self.variant)
            .finish_non_exhaustive()
    }
}

fn generator() -> BigUint {
    BigUint::from(GENERATOR)
}

fn hash(parts: &[&[u8]]) -> [u8; 64] {
    let mut h = Sha512::new();
    for part in parts {
        h.update(part);
    }
    h.finalize().into()
}

fn hex_digit(c: Option<u8>) -> u8 {
    match c {
        Some(c @ b'0'..=b'9') => c - b'0',
        Some(c @ b'A'..=b'F') => c - b'A' + 10,
        _ => 0,
    }
}

/// The order in which [`SrpServer::verify_client`] tries padding variants: ADK, then fast-srp /
/// aiohomekit, then A as received with padded B and S, then every other combination.
const VARIANT_ORDER: [(Form, Form, Form); 12] = {
    use Form::{AsReceived as R, Padded as P, Stripped as S};
    [
        (S, S, S),
        (P, P, P),
        (R, P, P),
        (P, S, P),
        (R, S, P),
        (S, P, P),
        (S, S, P),
        (S, P, S),
        (P, S, S),
        (P, P, S),
        (R, S, S),
        (R, P, S),
    ]
};

/// The order when u was computed over B as sent: aiohomekit 4.x's convention (A padded, B as
/// received, S padded) first, then every other combination.
const VARIANT_ORDER_U_OVER_SENT_B: [(Form, Form, Form); 12] = {
    use Form::{AsReceived as R, Padded as P, Stripped as S};
    [
        (P, S, P),
        (R, S, P),
        (S, S, S),
        (P, P, P),
        (R, P, P),
        (S, P, P),
        (S, S, P),
        (S, P, S),
        (P, S, S),
        (P, P, S),
        (R, S, S),
        (R, P, S),
    ]
};

/// The generator g of the group.
pub const GENERATOR: u8 = 5;
/// Length of N and of padded A, B and S.
pub const N_LEN: usize = 384;
/// Length of the salt (ADK `SRP_SALT_BYTES`).
pub const SALT_LEN: usize = 16;
/// Length of the accessory's secret b (ADK `SRP_SECRET_KEY_BYTES`).
pub const SECRET_LEN: usize = 32;
/// Length of the proofs M1 and M2.
pub const PROOF_LEN: usize = 64;

const N_HEX: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05",
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB",
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718",
    "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33",
    "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864",
    "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2",
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
);

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod vectors;
