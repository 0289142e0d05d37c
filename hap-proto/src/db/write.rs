//! PUT /characteristics (HAP §5.3) and PUT /prepare (HAP §5.4).

use std::time::{Duration, Instant};

use serde_json::Value as Json;

use super::json::{self, CharJson};
use super::{
    Change, CharId, ClientState, Database, HapStatus, HapType, Perms, PreparedWrite, Value, store,
};
use crate::http::Status;

/// A validated value write, handed to the [`WriteHandler`] before it is stored.
#[derive(Debug)]
pub struct WriteRequest<'a> {
    /// The characteristic.
    pub id: CharId,
    /// Its type.
    pub ty: &'a HapType,
    /// The written value, already checked against format and constraints.
    pub value: &'a Value,
    /// Whether the controller asked for a write response (`"r":true`).
    pub response_requested: bool,
}

/// What a [`WriteHandler`] decided about a write.
#[derive(Clone, PartialEq, Debug)]
pub enum WriteResult {
    /// Store the written value.
    Store,
    /// Store this value instead. It is what a write response (`"r":true`) and later reads
    /// return.
    StoreValue(Value),
    /// Answer the writing connection only: its write response (`"r":true`) and its later reads
    /// of the characteristic return this value; nothing is stored, other connections read what
    /// they read before. Setup Endpoints (`118`) answers a write with the accessory's endpoints
    /// for that controller's session, which iOS reads right after writing (HAP §7.5): another
    /// controller's write in between must not replace it.
    Answer(Value),
    /// Fail the write with this status; nothing is stored.
    Fail(HapStatus),
}

/// Runs the side effects of writes: Identify, Setup Endpoints, Selected RTP Stream
/// Configuration, Active ... The bridge implements it; `()` stores every write unchanged.
pub trait WriteHandler {
    /// Called for every valid value write, before the value is stored.
    fn write(&mut self, request: &WriteRequest<'_>) -> WriteResult;
}

impl WriteHandler for () {
    fn write(&mut self, _: &WriteRequest<'_>) -> WriteResult {
        WriteResult::Store
    }
}

/// The answer to PUT /characteristics.
#[derive(Clone, PartialEq, Debug)]
pub struct WriteResponse {
    /// 204, 207 or 400.
    pub status: Status,
    /// The `application/hap+json` body; empty for 204 and 400.
    pub body: Vec<u8>,
    /// Changed values to pass to [`ClientState::notify`] of every **other** connection (the
    /// writer is not notified of its own change, HAP §5.8).
    pub changes: Vec<Change>,
}

impl Database {
    /// Answers PUT /characteristics with `body` for the connection `client` at `now`.
    ///
    /// Each entry may carry `value` (a write: -70404 read-only, -70410 invalid or a `tw`
    /// characteristic without a valid prepare, -70409 unknown), `ev` (subscribe or unsubscribe:
    /// -70406 without `ev` permission) and `r` (return the stored value after the write; honoured
    /// for `wr` and for readable characteristics). With `pid`, the write is the timed write
    /// prepared by [`Self::prepare`]: an unknown or expired `pid` fails every entry with -70410.
    /// 204 when everything succeeded and nothing is returned, else 207 with `status` on every
    /// entry; 400 for malformed JSON.
    pub fn write(
        &mut self,
        body: &[u8],
        client: &mut ClientState,
        now: Instant,
        handler: &mut dyn WriteHandler,
    ) -> WriteResponse {
        let Some(req) = parse_write(body) else {
            return WriteResponse {
                status: Status::BAD_REQUEST,
                body: Vec::new(),
                changes: Vec::new(),
            };
        };
        // A prepared transaction is used up by the first write naming a pid (§5.4).
        let timed_ok = match req.pid {
            Some(pid) => client
                .prepared
                .take()
                .is_some_and(|p| p.pid == pid && now < p.deadline),
            None => false,
        };
        let mut changes = Vec::new();
        let mut entries: Vec<CharJson<'static>> = Vec::with_capacity(req.entries.len());
        let mut respond = false;
        for e in &req.entries {
            let (status, value) = if req.pid.is_some() && !timed_ok {
                (HapStatus::INVALID_VALUE, None)
            } else {
                self.write_one(e, client, timed_ok, handler, &mut changes)
            };
            respond |= status != HapStatus::SUCCESS || value.is_some();
            let mut entry = json::status_entry(e.id.aid, e.id.iid, status.0);
            entry.value = value;
            entries.push(entry);
        }
        if !respond {
            return WriteResponse {
                status: Status::NO_CONTENT,
                body: Vec::new(),
                changes,
            };
        }
        WriteResponse {
            status: Status::MULTI_STATUS,
            body: json::characteristics_body(&entries),
            changes,
        }
    }

    /// Answers PUT /prepare (HAP §5.4): `{"ttl":<ms>,"pid":<n>}` prepares a timed write on this
    /// connection, replacing any earlier one → `200 {"status":0}`; malformed → 400.
    pub fn prepare(
        &self,
        body: &[u8],
        client: &mut ClientState,
        now: Instant,
    ) -> (Status, Vec<u8>) {
        let parsed = serde_json::from_slice::<Json>(body).ok().and_then(|j| {
            let ttl = j.get("ttl")?.as_u64()?;
            let pid = j.get("pid")?.as_u64()?;
            Some((ttl, pid))
        });
        let Some((ttl, pid)) = parsed else {
            return (Status::BAD_REQUEST, Vec::new());
        };
        let Some(deadline) = now.checked_add(Duration::from_millis(ttl)) else {
            return (Status::BAD_REQUEST, Vec::new());
        };
        client.prepared = Some(PreparedWrite { pid, deadline });
        (Status::OK, br#"{"status":0}"#.to_vec())
    }

    /// One entry of a write: its status and, when a response was requested, the value.
    fn write_one(
        &mut self,
        e: &WriteEntry,
        client: &mut ClientState,
        timed_ok: bool,
        handler: &mut dyn WriteHandler,
        changes: &mut Vec<Change>,
    ) -> (HapStatus, Option<Json>) {
        let Some(c) = self.characteristic_mut(e.id) else {
            return (HapStatus::RESOURCE_DOES_NOT_EXIST, None);
        };
        if e.value.is_none() && e.ev.is_none() {
            return (HapStatus::INVALID_VALUE, None);
        }
        let mut response = None;
        if let Some(json) = &e.value {
            if !c.perms.contains(Perms::PW) {
                return (HapStatus::READ_ONLY, None);
            }
            if c.perms.contains(Perms::TW) && !timed_ok {
                return (HapStatus::INVALID_VALUE, None);
            }
            let Some(value) = Value::from_json(json, c.format, &c.constraints) else {
                return (HapStatus::INVALID_VALUE, None);
            };
            let request = WriteRequest {
                id: e.id,
                ty: &c.ty,
                value: &value,
                response_requested: e.r,
            };
            let respond = e.r && (c.perms.contains(Perms::WR) || c.perms.contains(Perms::PR));
            match handler.write(&request) {
                WriteResult::Store => changes.extend(store(c, e.id, value)),
                // A handler value of the wrong format is a bridge bug; the write fails rather
                // than corrupting the database.
                WriteResult::StoreValue(v) if v.matches(c.format) => {
                    changes.extend(store(c, e.id, v));
                }
                WriteResult::Answer(v) if v.matches(c.format) => {
                    if respond {
                        response = Some(v.to_json());
                    }
                    client.set_answer(e.id, v);
                }
                WriteResult::StoreValue(_) | WriteResult::Answer(_) => {
                    return (HapStatus::SERVICE_COMMUNICATION_FAILURE, None);
                }
                WriteResult::Fail(s) => return (s, None),
            }
            if respond && response.is_none() {
                response = Some(c.value.to_json());
            }
        }
        if let Some(ev) = &e.ev {
            if !c.perms.contains(Perms::EV) {
                return (HapStatus::NOTIFICATION_NOT_SUPPORTED, None);
            }
            match json_bool(ev) {
                Some(true) => {
                    client.subscriptions.insert(e.id);
                }
                Some(false) => {
                    client.subscriptions.remove(&e.id);
                    client.events.forget(e.id);
                }
                None => return (HapStatus::INVALID_VALUE, None),
            }
        }
        (HapStatus::SUCCESS, response)
    }
}

struct WriteRequestBody {
    entries: Vec<WriteEntry>,
    pid: Option<u64>,
}

struct WriteEntry {
    id: CharId,
    value: Option<Json>,
    ev: Option<Json>,
    r: bool,
}

/// Parses the body; `None` (→ 400) unless it is `{"characteristics":[{"aid":n,"iid":n,...}]}`.
fn parse_write(body: &[u8]) -> Option<WriteRequestBody> {
    let mut j: Json = serde_json::from_slice(body).ok()?;
    let pid = match j.get("pid") {
        None => None,
        Some(p) => Some(p.as_u64()?),
    };
    let Json::Array(list) = j.get_mut("characteristics")?.take() else {
        return None;
    };
    let mut entries = Vec::with_capacity(list.len());
    for mut item in list {
        let aid = item.get("aid")?.as_u64()?;
        let iid = item.get("iid")?.as_u64()?;
        let r = match item.get("r") {
            None => false,
            Some(v) => json_bool(v)?,
        };
        let value = item.get_mut("value").map(Json::take);
        let ev = item.get_mut("ev").map(Json::take);
        entries.push(WriteEntry {
            id: CharId::new(aid, iid),
            value,
            ev,
            r,
        });
    }
    Some(WriteRequestBody { entries, pid })
}

/// `true`/`false`, or `1`/`0` as ADK writes them.
fn json_bool(v: &Json) -> Option<bool> {
    match v {
        Json::Bool(b) => Some(*b),
        Json::Number(n) => match n.as_u64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        _ => None,
    }
}
