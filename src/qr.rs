//! QR codes of the `X-HM://` setup URI (HAP §9.4): Unicode art for the terminal, PNG for the
//! admin API.

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

/// The URI as a PNG image (black on white, with its quiet zone), at least [`PNG_SIZE`] pixels
/// wide.
pub(crate) fn png(uri: &str) -> anyhow::Result<Vec<u8>> {
    let code = QrCode::new(uri.as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot encode the setup URI as a QR code: {e}"))?;
    let image = code
        .render::<image::Luma<u8>>()
        .min_dimensions(PNG_SIZE, PNG_SIZE)
        .build();
    let mut out = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| anyhow::anyhow!("cannot encode the QR code as PNG: {e}"))?;
    Ok(out.into_inner())
}

/// `png` as a `data:image/png;base64,` URI.
pub(crate) fn png_data_uri(uri: &str) -> anyhow::Result<String> {
    use base64::Engine as _;
    let png = png(uri)?;
    Ok(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    ))
}

/// Minimum width and height of the PNG in pixels.
const PNG_SIZE: u32 = 256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_decodes_back_to_the_uri() {
        let uri = "X-HM://0023NJY591QJ8";
        let png = png(uri).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let img = image::load_from_memory(&png).unwrap().to_luma8();
        assert!(img.width() >= PNG_SIZE);
        let (w, h) = (img.width() as usize, img.height() as usize);
        let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| {
            img.get_pixel(x as u32, y as u32).0[0]
        });
        let grids = prepared.detect_grids();
        assert_eq!(grids.len(), 1);
        let (_, content) = grids[0].decode().unwrap();
        assert_eq!(content, uri);
        assert!(
            png_data_uri(uri)
                .unwrap()
                .starts_with("data:image/png;base64,iVBORw0KGgo")
        );
    }

    #[test]
    fn renders_a_square_block() {
        let art = terminal("X-HM://0023NJY591QJ8");
        let lines: Vec<&str> = art.lines().collect();
        assert!(lines.len() > 10);
        let width = lines[0].chars().count();
        assert!(lines.iter().all(|l| l.chars().count() == width));
    }
}
