//! QR codes of the `X-HM://` setup URI (HAP §9.4): for the terminal now, PNG for the API later.

use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;

/// The URI as a QR code drawn with Unicode half blocks, light on dark terminals and dark alike
/// (it carries its own quiet zone).
pub(crate) fn terminal(uri: &str) -> String {
    match QrCode::new(uri.as_bytes()) {
        Ok(code) => code
            .render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
        Err(e) => format!("(cannot draw the QR code: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_square_block() {
        let art = terminal("X-HM://0023NJY591QJ8");
        let lines: Vec<&str> = art.lines().collect();
        assert!(lines.len() > 10);
        let width = lines[0].chars().count();
        assert!(lines.iter().all(|l| l.chars().count() == width));
    }
}
