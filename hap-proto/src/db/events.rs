//! Event notifications of one connection (HAP §5.8), sans-IO.
//!
//! Each connection owns an [`EventQueue`] (inside the database's `ClientState`). The bridge
//! passes every [`Change`] to `ClientState::notify` of each connection except the
//! writer's; the queue keeps only subscribed characteristics' changes and paces them:
//!
//! - the first change of a characteristic goes out at once;
//! - a later change within [`COALESCE_INTERVAL`] of the last one sent is held, and the latest
//!   held value goes out when the interval is up (leading-edge coalescing);
//! - a Programmable Switch Event (`immediate`) goes out at once on every trigger, even with the
//!   same value, and is never merged.
//!
//! The connection calls [`EventQueue::poll_event`] when no request is in progress (never inside
//! a response, §5.8) and arms a timer for [`EventQueue::poll_timeout`].
//!
//! ```
//! use std::time::{Duration, Instant};
//! use hap_proto::db::{Change, CharId, Value};
//! use hap_proto::events::EventQueue;
//! let t0 = Instant::now();
//! let mut q = EventQueue::default();
//! let id = CharId::new(2, 10);
//! q.push(Change { id, value: Value::Bool(true), immediate: false }, t0);
//! assert_eq!(q.poll_event(t0).map(|b| b.len()), Some(1));
//! q.push(Change { id, value: Value::Bool(false), immediate: false }, t0 + Duration::from_millis(200));
//! assert_eq!(q.poll_event(t0 + Duration::from_millis(200)), None);
//! assert_eq!(q.poll_timeout(), Some(t0 + Duration::from_secs(1)));
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::change::{Change, CharId};
use super::value::Value;
use crate::http::encode_event;

/// The pending events of one connection.
#[derive(Debug, Default)]
pub struct EventQueue {
    /// Events due now, in arrival order.
    ready: Vec<(CharId, Value)>,
    /// Held values and when they are due.
    held: BTreeMap<CharId, (Value, Instant)>,
    /// When each characteristic's last event was sent (queued as ready).
    last_sent: BTreeMap<CharId, Instant>,
}

impl EventQueue {
    /// Queues `change`, seen at `now`.
    pub fn push(&mut self, change: Change, now: Instant) {
        let Change {
            id,
            value,
            immediate,
        } = change;
        if immediate {
            self.ready.push((id, value));
            return;
        }
        if let Some(held) = self.held.get_mut(&id) {
            held.0 = value;
            return;
        }
        match self.last_sent.get(&id) {
            Some(&last) if now < after(last) => {
                self.held.insert(id, (value, after(last)));
            }
            _ => {
                self.last_sent.insert(id, now);
                self.ready.retain(|(r, _)| *r != id);
                self.ready.push((id, value));
            }
        }
    }

    /// Drops everything queued for `id` (the connection unsubscribed).
    pub fn forget(&mut self, id: CharId) {
        self.ready.retain(|(r, _)| *r != id);
        self.held.remove(&id);
        self.last_sent.remove(&id);
    }

    /// The events to send at `now`, as one batch (one `EVENT/1.0` message), or `None`.
    pub fn poll_event(&mut self, now: Instant) -> Option<Vec<(CharId, Value)>> {
        let due: Vec<CharId> = self
            .held
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some((value, _)) = self.held.remove(&id) {
                self.last_sent.insert(id, now);
                self.ready.push((id, value));
            }
        }
        // Forget send times old enough not to matter, so the map stays small.
        self.last_sent.retain(|_, at| now < after(*at));
        if self.ready.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.ready))
        }
    }

    /// When [`Self::poll_event`] next has something to send: `None` if nothing is held. Events
    /// ready now are returned by the `poll_event` the caller makes after each push.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.held.values().map(|(_, at)| *at).min()
    }

    /// Whether nothing is queued or held.
    pub fn is_empty(&self) -> bool {
        self.ready.is_empty() && self.held.is_empty()
    }
}

/// Appends the `EVENT/1.0` message carrying `batch` to `out` (HAP §5.8).
pub fn encode(batch: &[(CharId, Value)], out: &mut Vec<u8>) {
    #[derive(serde::Serialize)]
    struct Entry {
        aid: u64,
        iid: u64,
        value: serde_json::Value,
    }
    #[derive(serde::Serialize)]
    struct Body {
        characteristics: Vec<Entry>,
    }
    let body = Body {
        characteristics: batch
            .iter()
            .map(|(id, v)| Entry {
                aid: id.aid,
                iid: id.iid,
                value: v.to_json(),
            })
            .collect(),
    };
    // Serializing plain structs with string keys cannot fail.
    let json = serde_json::to_vec(&body).unwrap_or_default();
    encode_event(&json, out);
}

/// The end of the coalescing interval that starts at `t`.
fn after(t: Instant) -> Instant {
    // An Instant near the end of time cannot hold events back anyway.
    t.checked_add(COALESCE_INTERVAL).unwrap_or(t)
}

/// The minimum spacing of two events of one characteristic (ADK batches up to 1 s, §5.8).
pub const COALESCE_INTERVAL: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests;
