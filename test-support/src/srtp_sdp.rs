//! The SDP file an ffmpeg receiver reads for one SRTP H.264 stream, shared by the media runtime
//! tests and the bridge's e2e tests.

use std::path::{Path, PathBuf};

use media::srtp::encode_params;

/// Picks a free loopback UDP port and writes `dir/stream.sdp`: H.264 (RFC 6184,
/// packetization-mode 1) on payload type 99 at that port, RTCP multiplexed on it, and the
/// AES_CM_128_HMAC_SHA1_80 master key and salt in the crypto line (RFC 4568). Returns the port
/// and the file.
pub fn write(dir: &Path, key: &[u8], salt: &[u8]) -> (u16, PathBuf) {
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let sdp = format!(
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=hap-bridge test\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=video {port} RTP/SAVP 99\r\na=rtpmap:99 H264/90000\r\na=fmtp:99 packetization-mode=1\r\n\
         a=rtcp-mux\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{}\r\n",
        encode_params(key, salt).as_str()
    );
    let path = dir.join("stream.sdp");
    std::fs::write(&path, sdp).unwrap();
    (port, path)
}
