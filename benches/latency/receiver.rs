//! The measuring receiver: SRTP in on a loopback UDP socket, decrypted with `media::srtp`,
//! depacketized (RFC 6184), every access unit decoded with openh264 and identified by the index
//! blocks of its picture. A picture's arrival time is the receive time of its marker-bit packet,
//! taken by a thread that does nothing but receive, before any decoding.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use media::rtp::{H264Depacketizer, RtpPacket};
use media::srtp::{SrtpContext, SrtpSuite};
use openh264::decoder::Decoder;

use crate::clip;

/// One picture as received.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Arrival {
    /// Receive time of its last (marker-bit) packet.
    pub(crate) at: Instant,
    /// The clip index read from the decoded picture; `None` when it did not decode (no
    /// reference yet) or the blocks did not check out.
    pub(crate) index: Option<u32>,
    pub(crate) size: (usize, usize),
}

#[derive(Default)]
pub(crate) struct Received {
    pub(crate) first_packet: Option<Instant>,
    pub(crate) packets: u64,
    pub(crate) bad_srtp: u64,
    /// RTP sequence gaps (lost packets).
    pub(crate) gaps: u64,
    pub(crate) arrivals: Vec<Arrival>,
}

pub(crate) struct Receiver {
    pub(crate) addr: SocketAddr,
    pub(crate) received: Arc<Mutex<Received>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Receiver {
    pub(crate) fn start(key: &[u8; 16], salt: &[u8; 14]) -> Self {
        // A 4 MB receive buffer (net.core.rmem_max permitting) so that a burst (an IDR, the
        // prebuffered GOP) is not lost while this process waits for a core.
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        let _ = socket.set_recv_buffer_size(RECV_BUFFER);
        socket
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        let socket: UdpSocket = socket.into();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Received::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<(Vec<u8>, Instant)>();
        let st = Arc::clone(&stop);
        let rx_thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !st.load(Ordering::Acquire) {
                if let Ok(n) = socket.recv(&mut buf) {
                    let at = Instant::now();
                    let _ = tx.send((buf[..n].to_vec(), at));
                }
            }
        });
        let mut srtp = SrtpContext::new(SrtpSuite::AesCm128HmacSha1_80, key, salt).unwrap();
        let r = Arc::clone(&received);
        let decode_thread = std::thread::spawn(move || {
            let mut depacketizer = H264Depacketizer::new();
            let mut decoder = Decoder::new().unwrap();
            let mut annex_b = Vec::new();
            for (packet, at) in rx {
                // RTCP multiplexed on the same port (RFC 5761 §4): payload types 200..=204.
                if packet.get(1).is_some_and(|b| (200..=204).contains(b)) {
                    continue;
                }
                let Ok(plain) = srtp.unprotect_rtp(&packet) else {
                    r.lock().unwrap().bad_srtp += 1;
                    continue;
                };
                {
                    let mut r = r.lock().unwrap();
                    r.first_packet.get_or_insert(at);
                    r.packets += 1;
                }
                let Ok(rtp) = RtpPacket::parse(&plain) else {
                    continue;
                };
                let Ok(Some(nals)) = depacketizer.push(&rtp) else {
                    continue;
                };
                annex_b.clear();
                for nal in &nals {
                    annex_b.extend_from_slice(&[0, 0, 0, 1]);
                    annex_b.extend_from_slice(nal);
                }
                let (index, size) = match decoder.decode(&annex_b) {
                    Ok(Some(picture)) => {
                        use openh264::formats::YUVSource as _;
                        (clip::read_index(&picture), picture.dimensions())
                    }
                    _ => (None, (0, 0)),
                };
                let mut r = r.lock().unwrap();
                r.arrivals.push(Arrival { at, index, size });
                r.gaps = depacketizer.gaps();
            }
        });
        Self {
            addr,
            received,
            stop,
            threads: vec![rx_thread, decode_thread],
        }
    }

    /// Stops receiving and waits for the decoder to drain.
    pub(crate) fn finish(mut self) -> Received {
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        std::mem::take(&mut *self.received.lock().unwrap())
    }
}

const RECV_BUFFER: usize = 4 << 20;
