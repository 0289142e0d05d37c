//! [`PairSetupGate`]: one pair-setup at a time across the connections of one accessory server
//! (HAP §2.5), and a bound on the total time one connection may hold it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Identifies one connection to the [`PairSetupGate`]. Any value unique among the live
/// connections of one accessory server works (e.g. a connection counter).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub u64);

/// Serializes pair-setup across the connections of one accessory server (HAP §2.5): the first
/// connection to send M1 owns the procedure until it completes, fails or closes; others get
/// `Busy`. An owner silent for [`TAKEOVER_AFTER`] is taken over by the next M1 (ADK).
///
/// One connection holds the gate for at most [`MAX_HOLD_PER_CONNECTION`] in all: a peer that
/// repeats M1 just under every [`TAKEOVER_AFTER`] would otherwise keep every other controller
/// out for ever without using a single try. Past that bound it is refused `Busy` and the gate
/// is freed; that connection is refused from then on.
#[derive(Debug, Default)]
pub struct PairSetupGate {
    owner: Option<Owner>,
    /// How long connections held the gate in their earlier turns, until they close; at most
    /// [`MAX_TRACKED_CONNECTIONS`], the oldest forgotten first.
    held: VecDeque<(ConnectionId, Duration)>,
}

#[derive(Debug, Clone, Copy)]
struct Owner {
    conn: ConnectionId,
    /// When its current turn began.
    since: Instant,
    last_message: Instant,
}

impl PairSetupGate {
    /// A free gate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Releases the gate if `conn` owns it and forgets its time. Call when a connection closes.
    pub fn connection_closed(&mut self, conn: ConnectionId) {
        if self.owner.is_some_and(|o| o.conn == conn) {
            self.owner = None;
        }
        self.held.retain(|(c, _)| *c != conn);
    }

    /// The connection that owns the procedure, if any.
    pub fn owner(&self) -> Option<ConnectionId> {
        self.owner.map(|o| o.conn)
    }

    /// Takes the gate for `conn` (at M1) if it is free, already `conn`'s, or its owner has been
    /// silent for [`TAKEOVER_AFTER`], and `conn` has time left.
    pub(super) fn acquire(&mut self, conn: ConnectionId, now: Instant) -> bool {
        match self.owner {
            Some(o) if o.conn == conn => return self.touch(conn, now),
            Some(o) if now.saturating_duration_since(o.last_message) < TAKEOVER_AFTER => {
                return false;
            }
            // Silent for too long: taken over.
            Some(o) => self.release(o.conn, now),
            None => {}
        }
        if self.held_before(conn) >= MAX_HOLD_PER_CONNECTION {
            return false;
        }
        self.owner = Some(Owner {
            conn,
            since: now,
            last_message: now,
        });
        true
    }

    /// Records a message from the owner; `false` if `conn` no longer owns the gate, or has now
    /// held it for [`MAX_HOLD_PER_CONNECTION`] (the gate is then released).
    pub(super) fn touch(&mut self, conn: ConnectionId, now: Instant) -> bool {
        let Some(o) = self.owner.filter(|o| o.conn == conn) else {
            return false;
        };
        let total = self
            .held_before(conn)
            .saturating_add(now.saturating_duration_since(o.since));
        if total >= MAX_HOLD_PER_CONNECTION {
            self.release(conn, now);
            return false;
        }
        self.owner = Some(Owner {
            last_message: now,
            ..o
        });
        true
    }

    /// Ends `conn`'s turn, if it owns the gate, adding the turn to its time.
    pub(super) fn release(&mut self, conn: ConnectionId, now: Instant) {
        let Some(o) = self.owner.filter(|o| o.conn == conn) else {
            return;
        };
        self.owner = None;
        let turn = now.saturating_duration_since(o.since);
        match self.held.iter_mut().find(|(c, _)| *c == conn) {
            Some((_, held)) => *held = held.saturating_add(turn),
            None => {
                if self.held.len() >= MAX_TRACKED_CONNECTIONS {
                    self.held.pop_front();
                }
                self.held.push_back((conn, turn));
            }
        }
    }

    /// The time `conn` held the gate before its current turn.
    fn held_before(&self, conn: ConnectionId) -> Duration {
        self.held
            .iter()
            .find(|(c, _)| *c == conn)
            .map_or(Duration::ZERO, |(_, held)| *held)
    }
}

/// A pair-setup owner silent this long is taken over by another connection's M1 (ADK).
pub const TAKEOVER_AFTER: Duration = Duration::from_secs(30);
/// The most time one connection may hold the gate in all, over every M1 it sends; a real
/// pair-setup takes seconds.
pub const MAX_HOLD_PER_CONNECTION: Duration = Duration::from_secs(120);
/// Connections whose gate time is remembered (callers report closed connections, which frees
/// their entry; this bounds it when they do not).
const MAX_TRACKED_CONNECTIONS: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_repeating_m1_cannot_hold_the_gate_for_ever() {
        let t0 = Instant::now();
        let (a, b) = (ConnectionId(1), ConnectionId(2));
        let mut gate = PairSetupGate::new();
        assert!(gate.acquire(a, t0));
        // M1 again every 29 s: never silent long enough to be taken over.
        let mut now = t0;
        for _ in 0..4 {
            now += Duration::from_secs(29);
            assert!(gate.acquire(a, now));
            assert!(!gate.acquire(b, now), "B is Busy meanwhile");
        }
        // At 2 minutes of holding, A is refused and the gate freed.
        now = t0 + MAX_HOLD_PER_CONNECTION;
        assert!(!gate.acquire(a, now));
        assert_eq!(gate.owner(), None);
        assert!(
            !gate.acquire(a, now),
            "A stays refused, also with the gate free"
        );
        assert!(gate.acquire(b, now), "another controller gets its turn");
        assert!(gate.touch(b, now + Duration::from_secs(1)));
        gate.connection_closed(b);
        assert_eq!(gate.owner(), None);
    }

    #[test]
    fn the_bound_counts_every_turn_of_a_connection() {
        let t0 = Instant::now();
        let a = ConnectionId(1);
        let mut gate = PairSetupGate::new();
        // Turns of 50 s each (M1, then a wrong proof): the third ends at the bound.
        let turn = Duration::from_secs(50);
        let mut now = t0;
        for _ in 0..2 {
            assert!(gate.acquire(a, now));
            now += turn;
            assert!(gate.touch(a, now));
            gate.release(a, now);
        }
        assert!(gate.acquire(a, now));
        assert!(!gate.touch(a, now + Duration::from_secs(20)), "at 120 s");
        assert_eq!(gate.owner(), None);
        // Closing forgets it: a connection id reused later starts afresh.
        gate.connection_closed(a);
        assert!(gate.acquire(a, now + Duration::from_secs(30)));
    }

    #[test]
    fn a_silent_owner_is_taken_over_and_charged() {
        let t0 = Instant::now();
        let (a, b) = (ConnectionId(1), ConnectionId(2));
        let mut gate = PairSetupGate::new();
        assert!(gate.acquire(a, t0));
        assert!(!gate.acquire(b, t0 + TAKEOVER_AFTER - Duration::from_millis(1)));
        assert!(gate.acquire(b, t0 + TAKEOVER_AFTER));
        assert_eq!(gate.owner(), Some(b));
        assert_eq!(gate.held_before(a), TAKEOVER_AFTER);
    }
}
