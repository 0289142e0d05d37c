use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::*;

const URI_VECTORS: &str = include_str!("../../testdata/setup/setup_uri.txt");
const HASH_VECTORS: &str = include_str!("../../testdata/setup/setup_hash.txt");
const CODE_VECTORS: &str = include_str!("../../testdata/setup/setup_codes.txt");

/// The `|`-separated fields of every non-comment line.
fn rows(text: &str) -> Vec<Vec<&str>> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('|').map(str::trim).collect())
        .collect()
}

fn opt(field: &str) -> Option<&str> {
    (field != "-").then_some(field)
}

#[test]
fn setup_uri_vectors() {
    let mut checked = 0;
    for row in rows(URI_VECTORS) {
        match row[0] {
            "adk" | "extra" => {
                let code = opt(row[1]).map(|c| SetupCode::parse(c).unwrap());
                let id = opt(row[2]).map(|i| SetupId::parse(i).unwrap());
                let payload = SetupPayload {
                    code: code.as_ref(),
                    setup_id: id.as_ref(),
                    category: Category(row[6].parse().unwrap()),
                    ip: row[4] == "1",
                    ble: row[5] == "1",
                    wac: false,
                    paired: row[3] == "1",
                };
                assert_eq!(payload.to_uri(), row[7], "{row:?}");
                if let (true, false, Some(code), Some(id)) =
                    (payload.ip, payload.ble, payload.code, payload.setup_id)
                {
                    assert_eq!(setup_uri(code, id, payload.category), row[7]);
                }
            }
            "py-payload" => {
                let payload = u64::from_str_radix(row[1], 16).unwrap();
                let id = SetupId::parse(row[2]).unwrap();
                // The category sits at bits 38-31 of the payload.
                assert_eq!(payload >> 31, row[3].parse::<u64>().unwrap());
                assert_eq!(encode_setup_uri(payload, Some(&id)), row[4], "{row:?}");
            }
            other => panic!("unknown row kind {other}"),
        }
        checked += 1;
    }
    assert_eq!(checked, 9);
}

#[test]
fn setup_uri_is_20_characters() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    for _ in 0..100 {
        let code = SetupCode::generate(&mut rng);
        let id = SetupId::generate(&mut rng);
        let uri = setup_uri(&code, &id, Category(255));
        assert_eq!(uri.len(), 20, "{uri}");
        assert!(uri.ends_with(id.as_str()));
    }
}

#[test]
fn setup_hash_vectors() {
    let mut checked = 0;
    for row in rows(HASH_VECTORS) {
        let sh = setup_hash_ascii(row[0], row[1]);
        assert_eq!(sh, row[3], "{row:?}");
        if let Some(prefix) = opt(row[2]) {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&sh)
                .unwrap();
            assert_eq!(
                format!(
                    "{:02X}{:02X}{:02X}{:02X}",
                    bytes[0], bytes[1], bytes[2], bytes[3]
                ),
                prefix
            );
        }
        if let (Ok(id), Some(device)) = (SetupId::parse(row[0]), DeviceId::parse(row[1])) {
            assert_eq!(setup_hash(&id, &device), row[3]);
        }
        checked += 1;
    }
    assert_eq!(checked, 3);
}

#[test]
fn setup_code_vectors() {
    let mut invalid = 0;
    for row in rows(CODE_VECTORS) {
        let parsed = SetupCode::parse(row[1]);
        match row[0] {
            "invalid" => {
                assert_eq!(parsed, Err(SetupCodeError::Trivial), "{row:?}");
                invalid += 1;
            }
            "malformed" => assert_eq!(parsed, Err(SetupCodeError::Format), "{row:?}"),
            "valid" => assert_eq!(parsed.unwrap().as_str(), row[1]),
            other => panic!("unknown verdict {other}"),
        }
    }
    assert_eq!(invalid, 12);
}

#[test]
fn setup_code_errors_are_clear() {
    assert_eq!(
        SetupCode::parse("123-45-678").unwrap_err().to_string(),
        "setup code is too easy to guess (all digits equal, 123-45-678 or 876-54-321)"
    );
    assert!(
        SetupCode::parse("1234")
            .unwrap_err()
            .to_string()
            .contains("XXX-XX-XXX")
    );
}

#[test]
fn setup_code_display_debug_and_value() {
    let code = SetupCode::parse("031-45-154").unwrap();
    assert_eq!(code.to_string(), "031-45-154");
    assert_eq!(format!("{code:?}"), "SetupCode(***)");
    assert_eq!(format!("{:?}", Some(&code)), "Some(SetupCode(***))");
    assert_eq!(code.to_u32(), 3_145_154);
}

#[test]
fn generated_codes_are_valid_and_spread() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut first_digits = [0u32; 10];
    for _ in 0..2000 {
        let code = SetupCode::generate(&mut rng);
        let reparsed = SetupCode::parse(code.as_str()).unwrap();
        assert_eq!(reparsed, code);
        first_digits[usize::from(code.as_str().as_bytes()[0] - b'0')] += 1;
    }
    // 2000 draws over 10 digits: every digit appears (expected 200 each).
    assert!(first_digits.iter().all(|n| *n > 100), "{first_digits:?}");
}

#[test]
fn generate_rejects_trivial_codes() {
    // An RNG that first yields 0 (code 000-00-000), then 12_345_678, then a value above the
    // bias bound, then 3_145_154.
    struct Scripted(Vec<u32>);
    impl CryptoRandom for Scripted {
        fn fill(&mut self, buf: &mut [u8]) {
            let v = self.0.remove(0);
            buf.copy_from_slice(&v.to_le_bytes());
        }
    }
    let mut rng = Scripted(vec![0, 12_345_678, u32::MAX, 3_145_154]);
    assert_eq!(SetupCode::generate(&mut rng).as_str(), "031-45-154");
    assert!(rng.0.is_empty());
}

#[test]
fn setup_id_parse_and_generate() {
    assert_eq!(SetupId::parse("7OSX").unwrap().to_string(), "7OSX");
    assert_eq!(
        format!("{:?}", SetupId::parse("1QJ8").unwrap()),
        "SetupId(1QJ8)"
    );
    for bad in ["7osx", "7OS", "7OSX1", "7O-X", ""] {
        assert_eq!(SetupId::parse(bad), Err(SetupIdError), "{bad}");
    }
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    for _ in 0..200 {
        let id = SetupId::generate(&mut rng);
        assert_eq!(SetupId::parse(id.as_str()), Ok(id));
    }
}

#[test]
fn category_consts_and_debug() {
    assert_eq!(Category::BRIDGE.0, 2);
    assert_eq!(Category::IP_CAMERA.0, 17);
    assert_eq!(Category::VIDEO_DOORBELL.0, 18);
    assert_eq!(Category::OTHER.0, 1);
    assert_eq!(Category::SENSOR.0, 10);
    assert_eq!(format!("{:?}", Category::IP_CAMERA), "IP_CAMERA");
    assert_eq!(format!("{:?}", Category(200)), "Category(200)");
}

#[test]
fn setup_uri_parses_back() {
    let code = SetupCode::parse("518-08-582").unwrap();
    let id = SetupId::parse("7OSX").unwrap();
    let uri = setup_uri(&code, &id, Category::BRIDGE);
    let parsed = parse_setup_uri(&uri).unwrap();
    assert_eq!(parsed.category, Category::BRIDGE);
    assert!(parsed.ip && !parsed.ble);
    assert_eq!(parsed.setup_code().unwrap().as_str(), "518-08-582");
    assert_eq!(&parsed.setup_id, b"7OSX");
    assert_eq!(encode_setup_uri(parsed.payload, Some(&id)), uri);
    // hap-reference §10.6: 031-45-154, 7OSX, category 17, IP.
    let p = parse_setup_uri("X-HM://00GW95DQA7OSX").unwrap();
    assert_eq!((p.category, p.code), (Category::IP_CAMERA, 3_145_154));
    for bad in [
        "X-HM://0023NJY591QJ",
        "x-hm://0023NJY591QJ8",
        "X-HM://ZZZZZZZZZ1QJ8",
        "X-HM://0023NJY59~QJ8",
        "",
    ] {
        assert!(parse_setup_uri(bad).is_none(), "{bad}");
    }
}
