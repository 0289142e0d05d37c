//! Stable IID allocation (HAP §6.1) and the accessory builder.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::services::ACCESSORY_INFORMATION;
use super::{Accessory, HapType, Service};

/// The IIDs of one accessory, keyed by a stable path, with a high-water mark.
///
/// Keys are `"<service type>#<n>"` for the n-th service of a type (counted from 0 in the order
/// services are added) and `"<service type>#<n>/<characteristic type>"` for its characteristics
/// (`"/<k>"` is appended for the k-th repeat of a type within one service, k ≥ 1). An entry is
/// never removed, and `next_iid` only grows, so a removed object's IID is never given to another
/// and a re-added one gets its old IID back. The caller persists the allocator (it is
/// `serde`-serializable) per aid and passes it back at the next start.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct IidAllocator {
    /// Path → IID.
    pub entries: BTreeMap<String, u64>,
    /// The next IID to hand out; never decreases.
    pub next_iid: u64,
}

impl Default for IidAllocator {
    fn default() -> Self {
        // IID 1 is Accessory Information (§6.1); the builder asks for it first.
        Self {
            entries: BTreeMap::new(),
            next_iid: 1,
        }
    }
}

impl IidAllocator {
    /// The IID for `key`, allocating the next free one for a new key.
    pub fn iid(&mut self, key: &str) -> u64 {
        if let Some(&iid) = self.entries.get(key) {
            return iid;
        }
        let iid = self.next_iid.max(1);
        self.next_iid = iid.saturating_add(1);
        self.entries.insert(key.to_owned(), iid);
        iid
    }
}

/// Builds one accessory, assigning IIDs from an [`IidAllocator`].
///
/// It cannot be created without the Accessory Information service, which always gets IID 1
/// (§6.1) and its characteristics the IIDs after it on a fresh allocator.
#[derive(Debug)]
pub struct AccessoryBuilder<'a> {
    aid: u64,
    services: Vec<Service>,
    iids: &'a mut IidAllocator,
    counts: BTreeMap<HapType, usize>,
}

impl<'a> AccessoryBuilder<'a> {
    /// Starts accessory `aid` with its Accessory Information service.
    pub fn new(aid: u64, information: Service, iids: &'a mut IidAllocator) -> Self {
        // IID 1 is reserved for Accessory Information whatever the allocator holds.
        iids.entries
            .insert(format!("{:X}#0", ACCESSORY_INFORMATION), 1);
        iids.next_iid = iids.next_iid.max(2);
        let mut b = Self {
            aid,
            services: Vec::new(),
            iids,
            counts: BTreeMap::new(),
        };
        let mut information = information;
        information.ty = HapType::Apple(ACCESSORY_INFORMATION);
        b.add_service(information);
        b
    }

    /// Adds a service template, assigns IIDs to it and its characteristics, and returns the
    /// service's IID (for [`Self::link`]).
    pub fn add_service(&mut self, service: Service) -> u64 {
        let count = self.counts.entry(service.ty.clone()).or_insert(0);
        let key = format!("{}#{count}", service.ty);
        *count += 1;
        self.add_service_keyed(&key, service)
    }

    /// Adds a service under a caller-chosen stable key instead of `"<type>#<n>"`, e.g.
    /// `"stream:main"`, so that its IIDs survive the removal of a service of the same type
    /// added before it. Keys must be unique within the accessory and must not contain `/`.
    pub fn add_service_keyed(&mut self, key: &str, mut service: Service) -> u64 {
        service.iid = self.iids.iid(key);
        let mut seen: BTreeMap<HapType, usize> = BTreeMap::new();
        for c in &mut service.characteristics {
            let k = seen.entry(c.ty.clone()).or_insert(0);
            let ckey = match *k {
                0 => format!("{key}/{}", c.ty),
                n => format!("{key}/{}/{n}", c.ty),
            };
            *k += 1;
            c.iid = self.iids.iid(&ckey);
        }
        let iid = service.iid;
        self.services.push(service);
        iid
    }

    /// Links service `to` to service `from` (`linked` of §6.2); both are IIDs from
    /// [`Self::add_service`]. Unknown IIDs are ignored.
    pub fn link(&mut self, from: u64, to: u64) {
        if !self.services.iter().any(|s| s.iid == to) {
            return;
        }
        if let Some(s) = self.services.iter_mut().find(|s| s.iid == from)
            && !s.linked.contains(&to)
        {
            s.linked.push(to);
        }
    }

    /// The accessory.
    pub fn build(self) -> Accessory {
        Accessory {
            aid: self.aid,
            services: self.services,
        }
    }
}
