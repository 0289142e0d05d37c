//! Setup secrets for the store: generated and checked with `hap_proto::setup` (HAP §9), the only
//! place the bridge creates or parses them.

use anyhow::Context as _;
use hap_proto::CryptoRandom;
use hap_proto::setup::{SetupCode, SetupId};

use crate::store::SetupSecrets;

/// New random setup secrets (HAP §9.1, §9.2): a valid code and a setup id.
pub(crate) fn generate(rng: &mut dyn CryptoRandom) -> SetupSecrets {
    SetupSecrets {
        setup_code: SetupCode::generate(rng).as_str().to_owned(),
        setup_id: SetupId::generate(rng).as_str().to_owned(),
    }
}

/// Parses stored secrets; a stored value that no longer parses is reported, never replaced.
pub(crate) fn parse(secrets: &SetupSecrets, server: &str) -> anyhow::Result<(SetupCode, SetupId)> {
    let code = SetupCode::parse(&secrets.setup_code)
        .map_err(|e| anyhow::anyhow!("{server}: the stored setup code is invalid: {e}"))?;
    let id = SetupId::parse(&secrets.setup_id)
        .ok()
        .with_context(|| format!("{server}: the stored setup id is invalid"))?;
    Ok((code, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_parse_back() {
        let mut rng = crate::testutil::rng(5);
        for _ in 0..200 {
            let s = generate(&mut rng);
            let (code, id) = parse(&s, "test").unwrap();
            assert_eq!(code.as_str(), s.setup_code);
            assert_eq!(id.as_str(), s.setup_id);
        }
    }

    #[test]
    fn forbidden_stored_codes_are_reported() {
        let s = SetupSecrets {
            setup_code: "123-45-678".into(),
            setup_id: "7OSX".into(),
        };
        assert!(
            parse(&s, "bridge")
                .unwrap_err()
                .to_string()
                .contains("setup code is invalid")
        );
    }
}
