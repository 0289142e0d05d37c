//! Adapter between the store's plain setup strings and `hap_proto::setup`.
//!
//! TODO(lead): `hap_proto::setup` (SetupCode, SetupId, setup_uri, setup_hash) is being written in
//! parallel. Replace [`generate`] and [`is_valid_code`] with `SetupCode::generate` /
//! `SetupId::generate` / `SetupCode::parse`, and compute `sh` with `setup_hash`. This is the only
//! place the bridge creates or checks setup secrets.

use hap_proto::CryptoRandom;

use crate::store::SetupSecrets;

/// New random setup secrets (HAP §9.1, §9.2), rejecting the codes HAP forbids.
pub(crate) fn generate(rng: &mut dyn CryptoRandom) -> SetupSecrets {
    let setup_code = loop {
        let digits: String = (0..8)
            .map(|_| char::from(b'0' + uniform(rng, 10)))
            .collect();
        let code = format!("{}-{}-{}", &digits[..3], &digits[3..5], &digits[5..]);
        if is_valid_code(&code) {
            break code;
        }
    };
    let setup_id = (0..4)
        .map(|_| char::from(ID_ALPHABET[usize::from(uniform(rng, 36))]))
        .collect();
    SetupSecrets {
        setup_id,
        setup_code,
    }
}

/// Whether `code` is `XXX-XX-XXX` and not one of the forbidden codes (HAP §9.1).
pub(crate) fn is_valid_code(code: &str) -> bool {
    let b = code.as_bytes();
    let shape = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 3 || i == 6 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    let digits: String = code.chars().filter(char::is_ascii_digit).collect();
    let all_same = digits.chars().all(|c| digits.starts_with(c));
    shape && !all_same && digits != "12345678" && digits != "87654321"
}

/// A uniform number below `n` (≤ 36) by rejection sampling.
fn uniform(rng: &mut dyn CryptoRandom, n: u8) -> u8 {
    let limit = u8::MAX - u8::MAX % n;
    loop {
        let mut b = [0u8];
        rng.fill(&mut b);
        if b[0] < limit {
            return b[0] % n;
        }
    }
}

const ID_ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_have_the_right_shape() {
        let mut rng = crate::testutil::rng(5);
        for _ in 0..200 {
            let s = generate(&mut rng);
            assert!(is_valid_code(&s.setup_code), "{}", s.setup_code);
            assert_eq!(s.setup_id.len(), 4);
            assert!(s.setup_id.bytes().all(|c| ID_ALPHABET.contains(&c)));
        }
    }

    #[test]
    fn forbidden_codes_are_invalid() {
        for bad in [
            "000-00-000",
            "999-99-999",
            "123-45-678",
            "876-54-321",
            "12345678",
            "123-456-78",
        ] {
            assert!(!is_valid_code(bad), "{bad}");
        }
        assert!(is_valid_code("031-45-154"));
    }
}
