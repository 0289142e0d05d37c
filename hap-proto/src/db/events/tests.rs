use super::*;
use crate::db::ClientState;

const A: CharId = CharId { aid: 2, iid: 10 };
const B: CharId = CharId { aid: 2, iid: 11 };
const PSE: CharId = CharId { aid: 2, iid: 12 };

fn ms(t0: Instant, n: u64) -> Instant {
    t0 + Duration::from_millis(n)
}

fn change(id: CharId, v: u64) -> Change {
    Change {
        id,
        value: Value::Uint(v),
        immediate: id == PSE,
    }
}

fn batch(items: &[(CharId, u64)]) -> Option<Vec<(CharId, Value)>> {
    Some(items.iter().map(|&(id, v)| (id, Value::Uint(v))).collect())
}

#[test]
fn first_change_goes_out_at_once_later_ones_once_per_second() {
    let t0 = Instant::now();
    let mut q = EventQueue::default();
    q.push(change(A, 1), t0);
    assert_eq!(q.poll_timeout(), None);
    assert_eq!(q.poll_event(t0), batch(&[(A, 1)]));
    assert_eq!(q.poll_event(t0), None);

    // Two changes within the second: held, the latest wins.
    q.push(change(A, 2), ms(t0, 100));
    assert_eq!(q.poll_event(ms(t0, 100)), None);
    q.push(change(A, 3), ms(t0, 700));
    assert_eq!(q.poll_timeout(), Some(ms(t0, 1000)));
    assert_eq!(q.poll_event(ms(t0, 999)), None);
    assert_eq!(q.poll_event(ms(t0, 1000)), batch(&[(A, 3)]));
    assert_eq!(q.poll_timeout(), None);
    assert!(q.is_empty());

    // That send opened a new interval: a change at 1.5 s waits until 2.0 s.
    q.push(change(A, 4), ms(t0, 1500));
    assert_eq!(q.poll_event(ms(t0, 1500)), None);
    assert_eq!(q.poll_timeout(), Some(ms(t0, 2000)));
    // A late poll sends it then, and the next interval starts at the actual send time.
    assert_eq!(q.poll_event(ms(t0, 2300)), batch(&[(A, 4)]));
    q.push(change(A, 5), ms(t0, 3000));
    assert_eq!(q.poll_timeout(), Some(ms(t0, 3300)));

    // After a quiet second the next change is sent at once again.
    assert_eq!(q.poll_event(ms(t0, 3300)), batch(&[(A, 5)]));
    q.push(change(A, 6), ms(t0, 4400));
    assert_eq!(q.poll_event(ms(t0, 4400)), batch(&[(A, 6)]));
}

#[test]
fn characteristics_are_paced_independently_and_batched() {
    let t0 = Instant::now();
    let mut q = EventQueue::default();
    q.push(change(A, 1), t0);
    q.push(change(B, 1), ms(t0, 10));
    assert_eq!(q.poll_event(ms(t0, 10)), batch(&[(A, 1), (B, 1)]));
    q.push(change(A, 2), ms(t0, 500));
    q.push(change(B, 2), ms(t0, 600));
    assert_eq!(q.poll_timeout(), Some(ms(t0, 1000)));
    assert_eq!(q.poll_event(ms(t0, 1000)), batch(&[(A, 2)]));
    assert_eq!(q.poll_timeout(), Some(ms(t0, 1010)));
    assert_eq!(q.poll_event(ms(t0, 1010)), batch(&[(B, 2)]));
    // Both due together go out in one batch.
    q.push(change(A, 3), ms(t0, 1100));
    q.push(change(B, 3), ms(t0, 1100));
    assert_eq!(q.poll_event(ms(t0, 2100)), batch(&[(A, 3), (B, 3)]));
}

#[test]
fn programmable_switch_event_is_never_coalesced() {
    let t0 = Instant::now();
    let mut q = EventQueue::default();
    q.push(change(PSE, 0), t0);
    q.push(change(PSE, 0), ms(t0, 1));
    q.push(change(A, 1), ms(t0, 2));
    q.push(change(PSE, 2), ms(t0, 3));
    assert_eq!(
        q.poll_event(ms(t0, 3)),
        batch(&[(PSE, 0), (PSE, 0), (A, 1), (PSE, 2)])
    );
    q.push(change(PSE, 1), ms(t0, 50));
    assert_eq!(q.poll_event(ms(t0, 50)), batch(&[(PSE, 1)]));
    assert_eq!(q.poll_timeout(), None);
}

#[test]
fn forget_drops_held_and_ready_events() {
    let t0 = Instant::now();
    let mut q = EventQueue::default();
    q.push(change(A, 1), t0);
    q.forget(A);
    assert_eq!(q.poll_event(t0), None);
    q.push(change(A, 2), t0);
    q.poll_event(t0);
    q.push(change(A, 3), ms(t0, 10));
    q.forget(A);
    assert!(q.is_empty());
    assert_eq!(q.poll_timeout(), None);
}

#[test]
fn notify_filters_on_subscriptions() {
    let t0 = Instant::now();
    let mut writer = ClientState::default();
    let mut other = ClientState::default();
    let mut unsubscribed = ClientState::default();
    writer.subscriptions.insert(A);
    other.subscriptions.insert(A);
    // The bridge notifies every connection except the writer's.
    for c in [&mut other, &mut unsubscribed] {
        c.notify(&change(A, 7), t0);
    }
    assert_eq!(other.events.poll_event(t0), batch(&[(A, 7)]));
    assert_eq!(unsubscribed.events.poll_event(t0), None);
    assert_eq!(writer.events.poll_event(t0), None);
}

#[test]
fn encode_event_message_bytes() {
    let mut out = Vec::new();
    encode(
        &[
            (A, Value::Bool(true)),
            (PSE, Value::Uint(0)),
            (B, Value::Tlv8(vec![1, 1, 0])),
        ],
        &mut out,
    );
    let body = br#"{"characteristics":[{"aid":2,"iid":10,"value":true},{"aid":2,"iid":12,"value":0},{"aid":2,"iid":11,"value":"AQEA"}]}"#;
    let mut want = format!(
        "EVENT/1.0 200 OK\r\nContent-Type: application/hap+json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    want.extend_from_slice(body);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        String::from_utf8(want).unwrap()
    );
}
