//! G.711 (ITU-T G.711 §A.2, §B.2): µ-law (RTP PCMU) and A-law (RTP PCMA) bytes to linear 16-bit
//! samples.

/// One µ-law byte as a linear sample.
pub fn ulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let sign = u & 0x80;
    let exponent = (u >> 4) & 0x07;
    let mantissa = i32::from(u & 0x0f);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    (if sign != 0 { -magnitude } else { magnitude }) as i16
}

/// One A-law byte as a linear sample.
pub fn alaw_to_linear(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let sign = a & 0x80;
    let exponent = (a >> 4) & 0x07;
    let mantissa = i32::from(a & 0x0f);
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    (if sign != 0 { magnitude } else { -magnitude }) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_values() {
        // Silence, and the extremes of each law (G.711 tables).
        assert_eq!(ulaw_to_linear(0xff), 0);
        assert_eq!(ulaw_to_linear(0x7f), 0);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(alaw_to_linear(0xd5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xaa), 32256);
        assert_eq!(alaw_to_linear(0x2a), -32256);
    }

    #[test]
    fn both_laws_are_monotonic_over_their_positive_codes() {
        let mu: Vec<i16> = (0x80..=0xffu8).rev().map(ulaw_to_linear).collect();
        assert!(mu.windows(2).all(|w| w[0] < w[1]), "{mu:?}");
        let a: Vec<i16> = (0x80..=0xffu8).map(|b| alaw_to_linear(b ^ 0x55)).collect();
        assert!(a.windows(2).all(|w| w[0] < w[1]) || a.windows(2).all(|w| w[0] > w[1]));
    }
}
