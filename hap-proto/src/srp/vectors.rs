//! A reader for the `name = value` vector files under `testdata/` (test builds only).

/// Parses `name = value` lines; `#` lines are comments and indented lines continue the previous
/// value (whitespace removed). Returns the entries in file order.
pub(crate) fn parse(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if line.starts_with(' ') {
            if let Some((_, value)) = out.last_mut() {
                value.push_str(line.trim());
            }
            continue;
        }
        let (name, value) = line.split_once('=').expect("vector line without `=`");
        out.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    out
}

/// The value named `name`, which must exist.
pub(crate) fn get<'a>(entries: &'a [(String, String)], name: &str) -> &'a str {
    entries
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("vector {name} missing"))
}

/// Decodes a hex string (either case).
pub(crate) fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("bad hex"))
        .collect()
}
