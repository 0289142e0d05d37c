use hex_literal::hex;

use super::*;

#[test]
fn pair_setup_m1_vector() {
    // ADK Tests/HAPTLVTest.c: Method 0, State 1.
    let m1 = hex!("00 01 00 06 01 01");
    let items = decode(&m1).unwrap();
    assert_eq!(items.get_u8(TlvType::METHOD), Some(0));
    assert_eq!(items.get_u8(TlvType::STATE), Some(1));
    let mut w = Writer::new();
    w.put_u8(TlvType::METHOD, 0).put_u8(TlvType::STATE, 1);
    assert_eq!(w.into_vec(), m1);
}

#[test]
fn srp_public_key_fragments_255_then_129() {
    let key: Vec<u8> = (0..384u32).map(|i| (i % 251) as u8).collect();
    let mut w = Writer::new();
    w.put(TlvType::PUBLIC_KEY, &key);
    let bytes = w.into_vec();
    assert_eq!(&bytes[..2], &[0x03, 0xFF]);
    assert_eq!(&bytes[257..259], &[0x03, 0x81]);
    assert_eq!(bytes.len(), 388);
    let items = decode(&bytes).unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items.get(TlvType::PUBLIC_KEY), Some(&key[..]));
}

#[test]
fn border_case_exact_multiples_of_255() {
    // ADK "Border case: Length 255": no trailing empty fragment.
    for n in [255usize, 510] {
        let value = vec![0xA5; n];
        let mut w = Writer::new();
        w.put(TlvType::ENCRYPTED_DATA, &value);
        let bytes = w.into_vec();
        assert_eq!(bytes.len(), n + 2 * (n / 255));
        assert_eq!(
            decode(&bytes).unwrap().get(TlvType::ENCRYPTED_DATA),
            Some(&value[..])
        );
    }
    // 300 bytes: 05 FF <255> 05 2D <45>.
    let mut w = Writer::new();
    w.put(TlvType::ENCRYPTED_DATA, &[1; 300]);
    let bytes = w.into_vec();
    assert_eq!(bytes.len(), 304);
    assert_eq!(bytes[257..259], [0x05, 0x2D]);
}

#[test]
fn value_of_255_followed_by_other_type() {
    let mut w = Writer::new();
    w.put(TlvType::ENCRYPTED_DATA, &[9; 255])
        .put_u8(TlvType::STATE, 5);
    let bytes = w.into_vec();
    let items = decode(&bytes).unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        items.get(TlvType::ENCRYPTED_DATA).map(<[u8]>::len),
        Some(255)
    );
    assert_eq!(items.get_u8(TlvType::STATE), Some(5));
}

#[test]
fn empty_value_is_one_item() {
    let mut w = Writer::new();
    w.put(TlvType::IDENTIFIER, &[]);
    assert_eq!(w.into_vec(), [1, 0]);
    assert_eq!(
        decode(&[1, 0]).unwrap().get(TlvType::IDENTIFIER),
        Some(&[][..])
    );
}

#[test]
fn rejects_malformed_fragments() {
    let e = decode(&[6]).unwrap_err();
    assert_eq!(e.kind, DecodeErrorKind::Truncated);
    assert_eq!(e.offset, 0);
    let e = decode(&[6, 2, 1]).unwrap_err();
    assert_eq!((e.kind, e.offset), (DecodeErrorKind::Truncated, 2));
    let mut bad = vec![5, 255];
    bad.extend_from_slice(&[0; 255]);
    bad.extend_from_slice(&[5, 0]);
    let e = decode(&bad).unwrap_err();
    assert_eq!(
        (e.kind, e.offset),
        (DecodeErrorKind::EmptyContinuation, 257)
    );
}

#[test]
fn pairing_list_with_ff_separators() {
    // hap-reference §10.5: list pairings, two entries.
    let id1 = [b'A'; 36];
    let id2 = [b'B'; 36];
    let mut w = Writer::new();
    w.put_u8(TlvType::STATE, 2)
        .put(TlvType::IDENTIFIER, &id1)
        .put(TlvType::PUBLIC_KEY, &[1; 32])
        .put_u8(TlvType::PERMISSIONS, 1)
        .separator(TlvType::SEPARATOR)
        .put(TlvType::IDENTIFIER, &id2)
        .put(TlvType::PUBLIC_KEY, &[2; 32])
        .put_u8(TlvType::PERMISSIONS, 0);
    let bytes = w.into_vec();
    assert_eq!(&bytes[..5], &hex!("06 01 02 01 24"));
    let entries = decode(&bytes).unwrap().split(TlvType::SEPARATOR);
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].get(TlvType::IDENTIFIER), Some(&id1[..]));
    assert_eq!(entries[1].get(TlvType::IDENTIFIER), Some(&id2[..]));
    assert_eq!(entries[1].get_u8(TlvType::PERMISSIONS), Some(0));
}

#[test]
fn minimal_little_endian_integers() {
    let mut w = Writer::new();
    w.put_uint_le_minimal(TlvType::FLAGS, 0x10);
    assert_eq!(w.into_vec(), hex!("13 01 10"));
    let mut w = Writer::new();
    w.put_uint_le_minimal(TlvType::FLAGS, 0x0100_0010);
    let bytes = w.into_vec();
    assert_eq!(bytes, hex!("13 04 10 00 00 01"));
    assert_eq!(
        decode(&bytes).unwrap().get_uint_le(TlvType::FLAGS),
        Some(0x0100_0010)
    );
    let mut w = Writer::new();
    w.put_uint_le_minimal(TlvType::FLAGS, 0);
    assert_eq!(w.into_vec(), hex!("13 01 00"));
}

#[test]
fn open_enums_print_names_and_round_trip_unknowns() {
    assert_eq!(format!("{:?}", TlvError::BUSY), "BUSY");
    assert_eq!(format!("{:?}", TlvType(0x42)), "TlvType(0x42)");
    assert_eq!(Method::from(5), Method::LIST_PAIRINGS);
}
