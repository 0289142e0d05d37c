//! Sliding replay window over packet indexes (RFC 3711 §3.3.2).

/// Remembers the highest index accepted and which of the [`WINDOW`] indexes below it were seen.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ReplayWindow {
    highest: Option<u64>,
    /// Bit i set: index `highest - i` was accepted.
    seen: u64,
}

impl ReplayWindow {
    /// Whether `index` is new (not seen, not older than the window).
    pub(crate) fn check(&self, index: u64) -> bool {
        let Some(highest) = self.highest else {
            return true;
        };
        if index > highest {
            return true;
        }
        let age = highest - index;
        age < WINDOW && self.seen & (1 << age) == 0
    }

    /// Records `index` as received; call only after [`check`](Self::check) and authentication.
    pub(crate) fn accept(&mut self, index: u64) {
        match self.highest {
            None => {
                self.highest = Some(index);
                self.seen = 1;
            }
            Some(highest) if index > highest => {
                let shift = index - highest;
                self.seen = if shift >= WINDOW {
                    0
                } else {
                    self.seen << shift
                };
                self.seen |= 1;
                self.highest = Some(index);
            }
            Some(highest) => {
                let age = highest - index;
                if age < WINDOW {
                    self.seen |= 1 << age;
                }
            }
        }
    }
}

/// Replay window size in packets (RFC 3711 §3.3.2 asks for at least 64).
const WINDOW: u64 = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_new_and_late_rejects_replayed_and_old() {
        let mut w = ReplayWindow::default();
        for i in [10, 12, 11] {
            assert!(w.check(i));
            w.accept(i);
        }
        assert!(!w.check(11));
        assert!(!w.check(12));
        assert!(w.check(9));
        w.accept(200);
        assert!(!w.check(200 - 64));
        assert!(w.check(200 - 63));
        assert!(!w.check(12));
    }
}
