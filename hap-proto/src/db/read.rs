//! GET /characteristics (HAP §5.2).

use super::json::{self, Fields};
use super::{CharId, ClientState, Database, HapStatus, Perms};
use crate::http::Status;

impl Database {
    /// Answers GET /characteristics with `query` (the part after `?`) for the connection
    /// `client`: the status and the `application/hap+json` body (empty for 204).
    ///
    /// `id=<aid>.<iid>[,...]` is required; `meta`, `perms`, `type` and `ev` are flags written
    /// `0`/`1` (`true`/`false` accepted, as HAP-NodeJS does); `ev` reports this connection's
    /// subscription. Unknown keys are ignored; the query ends at `#` (as ADK). 200 when every
    /// read succeeds; else 207 with `status` on every entry (-70409 unknown, -70405 write-only).
    /// 204 for an empty id list, 400 for a malformed query.
    pub fn read(&self, query: &str, client: &ClientState) -> (Status, Vec<u8>) {
        let Some(q) = ReadQuery::parse(query) else {
            return (Status::BAD_REQUEST, Vec::new());
        };
        if q.ids.is_empty() {
            return (Status::NO_CONTENT, Vec::new());
        }
        let fields = Fields {
            meta: q.meta,
            perms: q.perms,
            ty: q.ty,
            value: true,
            description: false,
        };
        let mut failed = false;
        let mut entries = Vec::with_capacity(q.ids.len());
        for &id in &q.ids {
            let status = match self.characteristic(id) {
                None => HapStatus::RESOURCE_DOES_NOT_EXIST,
                Some(c) if !c.perms.contains(Perms::PR) => HapStatus::WRITE_ONLY,
                Some(c) => {
                    let mut e = json::characteristic(Some(id.aid), c, fields);
                    if let Some(answer) = client.answer(id) {
                        e.value = Some(answer.to_json());
                    }
                    if q.ev {
                        e.ev = Some(client.subscriptions.contains(&id));
                    }
                    entries.push(e);
                    continue;
                }
            };
            failed = true;
            entries.push(json::status_entry(id.aid, id.iid, status.0));
        }
        if failed {
            for e in entries.iter_mut().filter(|e| e.status.is_none()) {
                e.status = Some(HapStatus::SUCCESS.0);
            }
        }
        let status = if failed {
            Status::MULTI_STATUS
        } else {
            Status::OK
        };
        (status, json::characteristics_body(&entries))
    }
}

/// The parsed query of GET /characteristics.
#[derive(Debug, Default, PartialEq)]
struct ReadQuery {
    ids: Vec<CharId>,
    meta: bool,
    perms: bool,
    ty: bool,
    ev: bool,
}

impl ReadQuery {
    fn parse(query: &str) -> Option<Self> {
        let query = query.split('#').next().unwrap_or_default();
        let mut q = Self::default();
        let mut have_ids = false;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=')?;
            match key {
                "id" => {
                    have_ids = true;
                    for item in value.split(',').filter(|s| !s.is_empty()) {
                        let (aid, iid) = item.split_once('.')?;
                        q.ids
                            .push(CharId::new(aid.parse().ok()?, iid.parse().ok()?));
                    }
                }
                "meta" => q.meta = flag(value)?,
                "perms" => q.perms = flag(value)?,
                "type" => q.ty = flag(value)?,
                "ev" => q.ev = flag(value)?,
                _ => {}
            }
        }
        have_ids.then_some(q)
    }
}

fn flag(v: &str) -> Option<bool> {
    match v {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}
