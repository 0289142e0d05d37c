//! Who may start the costly unauthenticated steps (pair-setup and pair-verify M1, see
//! [`hap_proto::admission`]): a token bucket per peer, so that one host on the LAN cannot keep
//! the server's lock and the runtime's workers busy with cryptography. A peer is an IPv4 address
//! or an IPv6 /64 (one host can hold a whole /64). Refusals are logged once per peer and
//! interval, with their count.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use hap_proto::admission::{Admission, CostlyStep};

/// A token bucket: `burst` tokens, refilled at `per_second`.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Rate, now: Instant) -> Self {
        Self {
            tokens: rate.burst,
            at: now,
        }
    }

    fn take(&mut self, rate: Rate, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A bucket's size and refill rate.
#[derive(Clone, Copy, Debug)]
struct Rate {
    burst: f64,
    per_second: f64,
}

/// One peer's buckets and refusals.
#[derive(Debug)]
struct Peer {
    setup: Bucket,
    verify: Bucket,
    seen: Instant,
    refused: u64,
    warned: Option<Instant>,
}

/// The buckets of a server's peers.
#[derive(Debug, Default)]
pub(super) struct PeerLimits {
    peers: HashMap<IpAddr, Peer>,
}

impl PeerLimits {
    /// Whether `peer` may start `step` at `now` (taking a token when it may).
    pub(super) fn admit(&mut self, peer: IpAddr, step: CostlyStep, now: Instant) -> bool {
        let key = peer_key(peer);
        if !self.peers.contains_key(&key) && self.peers.len() >= MAX_PEERS {
            self.peers
                .retain(|_, p| now.saturating_duration_since(p.seen) < FORGET_AFTER);
            if self.peers.len() >= MAX_PEERS {
                // Thousands of active peers: start over rather than grow (still bounded per
                // peer from here on).
                self.peers.clear();
            }
        }
        let p = self.peers.entry(key).or_insert_with(|| Peer {
            setup: Bucket::full(SETUP_RATE, now),
            verify: Bucket::full(VERIFY_RATE, now),
            seen: now,
            refused: 0,
            warned: None,
        });
        p.seen = now;
        let admitted = match step {
            CostlyStep::PairSetupStart => p.setup.take(SETUP_RATE, now),
            CostlyStep::PairVerifyStart => p.verify.take(VERIFY_RATE, now),
        };
        if !admitted {
            p.refused += 1;
            let due = p
                .warned
                .is_none_or(|at| now.saturating_duration_since(at) >= WARN_EVERY);
            if due {
                tracing::warn!(%peer, refused = p.refused, "pairing attempts from this peer refused (rate limit)");
                p.warned = Some(now);
                p.refused = 0;
            }
        }
        admitted
    }
}

/// A connection's view of its server's limits: its own peer.
pub(super) struct ForPeer<'a> {
    pub(super) limits: &'a mut PeerLimits,
    pub(super) peer: IpAddr,
}

impl Admission for ForPeer<'_> {
    fn admit(&mut self, step: CostlyStep, now: Instant) -> bool {
        self.limits.admit(self.peer, step, now)
    }
}

/// An IPv4 address (also when mapped into IPv6), or the /64 of an IPv6 address.
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Pair-setup starts per peer: 16 at once, then 4 a second (each costs ~9 ms of SRP).
const SETUP_RATE: Rate = Rate {
    burst: 16.0,
    per_second: 4.0,
};
/// Pair-verify starts per peer: 64 at once, then 32 a second (each costs ~0.3 ms).
const VERIFY_RATE: Rate = Rate {
    burst: 64.0,
    per_second: 32.0,
};
/// Peers tracked per server at most.
const MAX_PEERS: usize = 4096;
/// A peer not seen for this long is forgotten when room is needed.
const FORGET_AFTER: Duration = Duration::from_secs(60);
/// At most one warning per peer this often.
const WARN_EVERY: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_gets_its_burst_then_the_rate() {
        let mut limits = PeerLimits::default();
        let t0 = Instant::now();
        let a = IpAddr::V4([192, 0, 2, 1].into());
        let admitted = (0..100)
            .filter(|_| limits.admit(a, CostlyStep::PairVerifyStart, t0))
            .count();
        assert_eq!(admitted, 64);
        assert!(!limits.admit(a, CostlyStep::PairVerifyStart, t0));
        // Half a second later: 16 more.
        let t1 = t0 + Duration::from_millis(500);
        let later = (0..100)
            .filter(|_| limits.admit(a, CostlyStep::PairVerifyStart, t1))
            .count();
        assert_eq!(later, 16);
        // Pair-setup has its own bucket; another peer its own buckets.
        assert!(limits.admit(a, CostlyStep::PairSetupStart, t1));
        let b = IpAddr::V4([192, 0, 2, 2].into());
        assert!(limits.admit(b, CostlyStep::PairVerifyStart, t1));
    }

    #[test]
    fn ipv6_peers_count_per_64_and_the_table_is_bounded() {
        let mut limits = PeerLimits::default();
        let t0 = Instant::now();
        let setups = (0u16..40)
            .filter(|i| {
                let ip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, *i));
                limits.admit(ip, CostlyStep::PairSetupStart, t0)
            })
            .count();
        assert_eq!(setups, 16, "one /64, one bucket");
        for i in 0..(MAX_PEERS as u32 + 10) {
            limits.admit(IpAddr::V4(i.into()), CostlyStep::PairVerifyStart, t0);
        }
        assert!(limits.peers.len() <= MAX_PEERS);
    }
}
