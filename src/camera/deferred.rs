//! Work that camera writes must not do under the server lock. A characteristic write is answered
//! while its server's state is locked (HAP §6.7.2: the reply carries the write's outcome), so the
//! write handlers only change the slot's state and queue the rest here: Streaming Status updates,
//! the expiry of prepared sessions, starting stream tasks, and binding the UDP sockets that Setup
//! Endpoints hands out (bound ahead of time, per local address, by this module's task).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// A job for the camera task.
pub(super) enum Job {
    /// Run this on the camera task (e.g. write a Streaming Status once the lock is free).
    Now(Box<dyn FnOnce() + Send>),
    /// Run this after a delay (e.g. expire a prepared session that was never started).
    After(Duration, Box<dyn FnOnce() + Send>),
    /// Run this future on its own task (a stream).
    Spawn(Pin<Box<dyn Future<Output = ()> + Send>>),
    /// Bind sockets on this local address until the pool holds [`POOL_PER_ADDRESS`].
    Refill(SocketAddr),
}

/// The queue of deferred camera work and the pool of prepared stream sockets.
pub(crate) struct Deferred {
    jobs: mpsc::UnboundedSender<Job>,
    pool: Arc<Pool>,
    /// Delayed jobs not run yet.
    timers: Arc<AtomicUsize>,
}

/// Sockets bound ahead of time, by local bind address (port 0).
#[derive(Default)]
struct Pool(Mutex<HashMap<SocketAddr, Vec<UdpSocket>>>);

impl Deferred {
    /// Starts the camera task on the current tokio runtime; it ends when this is dropped.
    pub(super) fn start() -> Self {
        let (jobs, rx) = mpsc::unbounded_channel();
        let pool = Arc::new(Pool::default());
        let timers = Arc::new(AtomicUsize::new(0));
        tokio::spawn(run(rx, pool.clone(), timers.clone()));
        Self { jobs, pool, timers }
    }

    /// Delayed jobs waiting (for metrics: it must stay small however controllers write).
    pub(super) fn pending_timers(&self) -> usize {
        self.timers.load(Ordering::Relaxed)
    }

    /// Queues a job (never blocks).
    pub(super) fn push(&self, job: Job) {
        // The task only ends when this sender is dropped: a send cannot fail before.
        let _ = self.jobs.send(job);
    }

    /// A socket bound on `bind` (port 0 = any), if one is prepared; another is bound behind it.
    /// Never binds itself: it runs under the server lock.
    pub(super) fn take_socket(&self, bind: SocketAddr) -> Option<UdpSocket> {
        let socket = self.pool.lock().get_mut(&bind).and_then(Vec::pop);
        self.push(Job::Refill(bind));
        socket
    }

    /// Binds sockets on `bind` now, for the Setup Endpoints writes to come (a controller
    /// completed pair-verify through that address). Called outside the server lock, before the
    /// connection reads its next request, so a first Setup Endpoints finds a socket ready.
    pub(super) fn prepare(&self, bind: SocketAddr) {
        self.pool.refill(bind);
    }
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, HashMap<SocketAddr, Vec<UdpSocket>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Binds sockets on `bind` up to the pool's size; a failure is logged once per call.
    fn refill(&self, bind: SocketAddr) {
        let missing = {
            let pool = self.lock();
            if pool.len() >= MAX_POOL_ADDRESSES && !pool.contains_key(&bind) {
                // Addresses come from the server's own listening interfaces; a bound keeps a
                // peer from making us hold sockets on many (IPv6 scopes, say).
                return;
            }
            POOL_PER_ADDRESS.saturating_sub(pool.get(&bind).map_or(0, Vec::len))
        };
        let mut bound = Vec::with_capacity(missing);
        for _ in 0..missing {
            match bind_udp(bind) {
                Ok(socket) => bound.push(socket),
                Err(e) => {
                    tracing::warn!(address = %bind, error = %e, "cannot bind a UDP socket for camera streams");
                    break;
                }
            }
        }
        self.lock().entry(bind).or_default().extend(bound);
    }
}

async fn run(mut rx: mpsc::UnboundedReceiver<Job>, pool: Arc<Pool>, timers: Arc<AtomicUsize>) {
    while let Some(job) = rx.recv().await {
        match job {
            Job::Now(f) => f(),
            Job::After(delay, f) => {
                timers.fetch_add(1, Ordering::Relaxed);
                let timers = timers.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    timers.fetch_sub(1, Ordering::Relaxed);
                    f();
                });
            }
            Job::Spawn(future) => {
                tokio::spawn(future);
            }
            Job::Refill(bind) => pool.refill(bind),
        }
    }
}

fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = std::net::UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket)
}

/// Sockets kept ready per local address: a controller sets up one stream per camera view, and
/// a refill follows each one taken.
const POOL_PER_ADDRESS: usize = 4;
/// Local addresses with prepared sockets at most.
const MAX_POOL_ADDRESSES: usize = 16;
