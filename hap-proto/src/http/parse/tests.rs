use super::*;

const PUT: &[u8] = b"PUT /characteristics HTTP/1.1\r\nHost: Bridge._hap._tcp.local\r\nContent-Type: application/hap+json\r\nContent-Length: 56\r\n\r\n{\"characteristics\":[{\"aid\":1,\"iid\":11,\"ev\":true}],\"x\":1}";
const GET: &[u8] = b"GET /characteristics?id=1.9,1.10&ev=1 HTTP/1.1\r\nHost: x\r\n\r\n";
const POST: &[u8] = b"POST /pair-verify HTTP/1.1\r\nContent-Type: application/pairing+tlv8\r\nContent-Length: 3\r\n\r\n\x06\x01\x01";

/// Feeds `input` in the chunks given by `splits` and collects every outcome but `Incomplete`.
fn run(input: &[u8], splits: &[usize]) -> Vec<Parsed> {
    let mut p = RequestParser::new();
    let mut out = Vec::new();
    let mut start = 0;
    for &end in splits.iter().chain(std::iter::once(&input.len())) {
        let mut r = p.feed(&input[start..end]);
        start = end;
        loop {
            match r {
                Parsed::Incomplete => break,
                Parsed::Invalid(_) => {
                    out.push(r);
                    return out;
                }
                Parsed::Request(_) => {
                    out.push(r);
                    r = p.poll();
                }
            }
        }
    }
    out
}

fn assert_split_invariant(input: &[u8]) -> Vec<Parsed> {
    let whole = run(input, &[]);
    for i in 0..=input.len() {
        assert_eq!(run(input, &[i]), whole, "split at {i}");
    }
    let every: Vec<usize> = (1..input.len()).collect();
    assert_eq!(run(input, &every), whole, "byte by byte");
    whole
}

#[test]
fn put_with_body_at_every_split() {
    let out = assert_split_invariant(PUT);
    let [Parsed::Request(r)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(r.method, Method::Put);
    assert_eq!(r.path, "/characteristics");
    assert_eq!(r.query, None);
    assert_eq!(r.content_type.as_deref(), Some("application/hap+json"));
    assert_eq!(r.body.len(), 56);
    assert!(r.body.ends_with(b"\"x\":1}"));
    let debug = format!("{r:?}");
    assert!(
        debug.contains("body_len: 56") && !debug.contains("iid"),
        "{debug}"
    );
}

#[test]
fn get_with_query() {
    let out = assert_split_invariant(GET);
    let [Parsed::Request(r)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(r.method, Method::Get);
    assert_eq!(r.path, "/characteristics");
    assert_eq!(r.query.as_deref(), Some("id=1.9,1.10&ev=1"));
    assert!(r.body.is_empty());
}

#[test]
fn pipelined_requests_at_every_split() {
    let mut input = Vec::new();
    for part in [POST, GET, PUT, GET] {
        input.extend_from_slice(part);
    }
    let out = assert_split_invariant(&input);
    let paths: Vec<_> = out
        .iter()
        .map(|p| match p {
            Parsed::Request(r) => r.path.as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        paths,
        [
            "/pair-verify",
            "/characteristics",
            "/characteristics",
            "/characteristics"
        ]
    );
    let Parsed::Request(post) = &out[0] else {
        unreachable!()
    };
    assert_eq!(post.body, [6, 1, 1]);
}

#[test]
fn trailing_partial_request_stays_buffered() {
    let mut p = RequestParser::new();
    let mut input = GET.to_vec();
    input.extend_from_slice(&POST[..10]);
    assert!(matches!(p.feed(&input), Parsed::Request(_)));
    assert_eq!(p.buffered(), 10);
    assert_eq!(p.poll(), Parsed::Incomplete);
    let Parsed::Request(r) = p.feed(&POST[10..]) else {
        panic!()
    };
    assert_eq!(r.path, "/pair-verify");
    assert_eq!(p.buffered(), 0);
}

#[test]
fn chunked_body_is_rejected() {
    let input = b"PUT /characteristics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let out = assert_split_invariant(input);
    let [Parsed::Invalid(e)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(e.kind, InvalidKind::TransferEncoding);
    assert_eq!(e.context, "transfer-encoding");
    assert_eq!(&input[e.pos..e.pos + 7], b"chunked");
    assert_eq!(e.status(), Status::NOT_IMPLEMENTED);
}

#[test]
fn body_over_limit_is_rejected_before_it_arrives() {
    let head = format!(
        "PUT /characteristics HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        MAX_BODY + 1
    );
    let mut p = RequestParser::new();
    let Parsed::Invalid(e) = p.feed(head.as_bytes()) else {
        panic!()
    };
    assert_eq!(e.kind, InvalidKind::BodyTooLarge);
    assert_eq!(e.status(), Status::PAYLOAD_TOO_LARGE);
    // The parser stays failed.
    assert_eq!(p.feed(GET), Parsed::Invalid(e));

    let head = format!("PUT /characteristics HTTP/1.1\r\nContent-Length: {MAX_BODY}\r\n\r\n");
    let mut input = head.into_bytes();
    input.resize(input.len() + MAX_BODY, b'x');
    let Parsed::Request(r) = RequestParser::new().feed(&input) else {
        panic!()
    };
    assert_eq!(r.body.len(), MAX_BODY);
}

#[test]
fn head_over_limit_is_rejected_at_every_split() {
    let mut input = b"GET /accessories HTTP/1.1\r\nX-Pad: ".to_vec();
    input.resize(MAX_HEAD + 100, b'a');
    input.extend_from_slice(b"\r\n\r\n");
    let whole = run(&input, &[]);
    assert_eq!(
        whole,
        [Parsed::Invalid(InvalidRequest {
            pos: MAX_HEAD,
            context: "request head",
            kind: InvalidKind::HeadTooLarge
        })]
    );
    for i in [1, 100, MAX_HEAD - 1, MAX_HEAD, MAX_HEAD + 1, MAX_HEAD + 50] {
        assert_eq!(run(&input, &[i]), whole, "split at {i}");
    }
    // A head of exactly MAX_HEAD bytes is accepted.
    let mut ok = b"GET /accessories HTTP/1.1\r\nX-Pad: ".to_vec();
    ok.resize(MAX_HEAD - 4, b'a');
    ok.extend_from_slice(b"\r\n\r\n");
    assert!(matches!(RequestParser::new().feed(&ok), Parsed::Request(_)));
}

#[test]
fn bad_content_length() {
    for bad in ["abc", "-1", "", "1 2", "99999999999999999999999999"] {
        let input = format!("PUT /x HTTP/1.1\r\nContent-Length: {bad}\r\n\r\n");
        let Parsed::Invalid(e) = RequestParser::new().feed(input.as_bytes()) else {
            panic!("{bad}")
        };
        assert_eq!(e.kind, InvalidKind::BadContentLength, "{bad}");
        assert_eq!(e.status(), Status::BAD_REQUEST);
    }
    let dup = b"PUT /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab";
    let Parsed::Invalid(e) = RequestParser::new().feed(dup) else {
        panic!()
    };
    assert_eq!(e.kind, InvalidKind::BadContentLength);
    let same = b"PUT /x HTTP/1.1\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nab";
    assert!(matches!(
        RequestParser::new().feed(same),
        Parsed::Request(_)
    ));
}

#[test]
fn malformed_heads_report_the_offending_byte() {
    let input = b"GET /accessories HTTP/1.1\r\nBad Header: x\r\n\r\n";
    let out = assert_split_invariant(input);
    let [Parsed::Invalid(e)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(e.kind, InvalidKind::Malformed);
    assert_eq!(e.context, "header name");
    assert_eq!(input[e.pos], b' ', "pos {}", e.pos);

    let input = b"GET /accessories HTTP/2.0\r\n\r\n";
    let Parsed::Invalid(e) = RequestParser::new().feed(input) else {
        panic!()
    };
    assert_eq!(e.context, "HTTP version");

    let input = b"GET accessories HTTP/1.1\r\n\r\n";
    let Parsed::Invalid(e) = RequestParser::new().feed(input) else {
        panic!()
    };
    assert_eq!((e.context, e.pos), ("request target", 4));
}

#[test]
fn other_methods_are_kept() {
    let Parsed::Request(r) = RequestParser::new().feed(b"DELETE /accessories HTTP/1.1\r\n\r\n")
    else {
        panic!()
    };
    assert_eq!(r.method, Method::Other);
}

#[test]
fn too_many_headers() {
    let mut input = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..=MAX_HEADERS {
        input.extend_from_slice(format!("H{i}: v\r\n").as_bytes());
    }
    input.extend_from_slice(b"\r\n");
    let Parsed::Invalid(e) = RequestParser::new().feed(&input) else {
        panic!()
    };
    assert_eq!(e.kind, InvalidKind::TooManyHeaders);
}

#[test]
fn mutated_inputs_give_the_same_result_at_every_split() {
    let mut base = Vec::new();
    for part in [POST, PUT, GET] {
        base.extend_from_slice(part);
    }
    // xorshift64: deterministic, no OS randomness.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut rand = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet = b"\r\n :/?0123456789aZ\x00\xff-";
    for _ in 0..200 {
        let mut input = base.clone();
        for _ in 0..(rand() % 4 + 1) {
            let i = (rand() % input.len() as u64) as usize;
            input[i] = alphabet[(rand() % alphabet.len() as u64) as usize];
        }
        let whole = run(&input, &[]);
        for _ in 0..8 {
            let a = (rand() % (input.len() as u64 + 1)) as usize;
            let b = (rand() % (input.len() as u64 + 1)) as usize;
            let (a, b) = (a.min(b), a.max(b));
            assert_eq!(
                run(&input, &[a, b]),
                whole,
                "{:?} split at {a},{b}",
                String::from_utf8_lossy(&input)
            );
        }
        let every: Vec<usize> = (1..input.len()).collect();
        assert_eq!(
            run(&input, &every),
            whole,
            "byte by byte {:?}",
            String::from_utf8_lossy(&input)
        );
    }
}
