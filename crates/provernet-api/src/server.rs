//! Serving the API to strangers: limits on connections, slow clients and long-lived streams.
//!
//! `axum::serve` has no header timeout and no connection limit, so the API runs its own accept
//! loop over hyper's HTTP/1 connection, with:
//! - a cap on open connections, overall and per client IP (a connection over either is closed
//!   at once, before a byte is read);
//! - a header timeout that also bounds idle keep-alive connections (hyper starts it whenever it
//!   waits for a request head), so half-open connections are dropped;
//! - a time limit on every request that is neither a blob transfer nor an event stream;
//! - caps on event-stream subscribers and on uploads in progress ([`Gate`]), answered with
//!   `503` and a stable code when full.
//!
//! A reverse proxy in front of the API makes every client one IP: raise the per-IP limits
//! there, or have the proxy enforce its own.

use axum::extract::Request;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The API's limits. Every field has a default; a validator's `[api_limits]` table overrides
/// any of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeLimits {
    /// Open connections, all clients together.
    pub connections: usize,
    /// Open connections from one IP address.
    pub connections_per_ip: usize,
    /// Seconds a client has to send a request's head, and the longest a kept-alive connection
    /// may sit idle.
    pub header_timeout_s: u64,
    /// Seconds any request other than a blob transfer or an event stream may take.
    pub request_timeout_s: u64,
    /// Event-stream (SSE) subscribers, overall and from one IP.
    pub subscribers: usize,
    pub subscribers_per_ip: usize,
    /// Blob uploads in progress, overall and from one IP.
    pub uploads: usize,
    pub uploads_per_ip: usize,
    /// Seconds an upload may send nothing before it is given up.
    pub upload_idle_s: u64,
    /// The most bytes one upload request may carry; larger blobs are sent in pieces over
    /// several requests (`POST /v1/blobs/{hash}/uploads`).
    pub upload_request_bytes: u64,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            connections: 4096,
            connections_per_ip: 256,
            header_timeout_s: 30,
            request_timeout_s: 30,
            subscribers: 1024,
            subscribers_per_ip: 64,
            uploads: 32,
            uploads_per_ip: 8,
            upload_idle_s: 30,
            upload_request_bytes: provernet_types::limits::UPLOAD_REQUEST_BYTES_MAX.0,
        }
    }
}

/// The client's address, put in every request's extensions by [`serve_router`].
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// Counts holders of something limited (connections, subscribers, uploads), overall and per
/// IP. A [`Pass`] holds one place until it is dropped.
#[derive(Debug)]
pub struct Gate {
    total_max: usize,
    per_ip_max: usize,
    held: Mutex<(usize, BTreeMap<IpAddr, usize>)>,
}

/// Why a [`Gate`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Full {
    Total(usize),
    PerIp(usize),
}

impl Gate {
    pub fn new(total_max: usize, per_ip_max: usize) -> Arc<Gate> {
        Arc::new(Gate { total_max, per_ip_max, held: Mutex::new((0, BTreeMap::new())) })
    }

    /// Takes a place for `ip` (`None`: a client of unknown address, counted overall only).
    pub fn enter(self: &Arc<Gate>, ip: Option<IpAddr>) -> Result<Pass, Full> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if held.0 >= self.total_max {
            return Err(Full::Total(self.total_max));
        }
        if let Some(ip) = ip {
            let n = held.1.entry(ip).or_insert(0);
            if *n >= self.per_ip_max {
                return Err(Full::PerIp(self.per_ip_max));
            }
            *n += 1;
        }
        held.0 += 1;
        Ok(Pass { gate: self.clone(), ip })
    }

    /// Places held now.
    pub fn held(&self) -> usize {
        self.held.lock().unwrap_or_else(PoisonError::into_inner).0
    }
}

/// One place in a [`Gate`], given back on drop.
#[derive(Debug)]
pub struct Pass {
    gate: Arc<Gate>,
    ip: Option<IpAddr>,
}

impl Drop for Pass {
    fn drop(&mut self) {
        let mut held = self.gate.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.0 -= 1;
        if let Some(ip) = self.ip {
            if let Some(n) = held.1.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    held.1.remove(&ip);
                }
            }
        }
    }
}

/// Accepts connections on `listener` and serves `router` on each, within `limits`, until the
/// task is dropped.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: ServeLimits,
) -> std::io::Result<()> {
    // Never more connections than descriptors: the rest of the validator (p2p, storage) needs
    // its own, and `accept` failing for want of one would refuse everyone alike.
    let room = descriptor_room();
    if room < limits.connections {
        tracing::warn!(
            configured = limits.connections,
            room,
            "the open-file limit allows fewer API connections than configured; raise `ulimit -n`"
        );
    }
    let connections = Gate::new(limits.connections.min(room), limits.connections_per_ip);
    let header_timeout = Duration::from_secs(limits.header_timeout_s.max(1));
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(a) => a,
            // Out of descriptors or a connection reset before accept: wait, go on.
            Err(e) => {
                tracing::warn!("accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let pass = match connections.enter(Some(addr.ip())) {
            Ok(p) => p,
            Err(full) => {
                tracing::debug!(%addr, ?full, "connection refused: too many open");
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
                req.extensions_mut().insert(Peer(addr));
                let req: Request = req.map(axum::body::Body::new);
                let mut router = router.clone();
                async move {
                    use tower::Service;
                    router.call(req).await
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(true)
                .max_buf_size(64 << 10)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(%addr, "connection ended: {e}");
            }
            drop(pass);
        });
    }
}

/// Descriptors this process may hold, less a reserve of 512 for everything but API
/// connections.
fn descriptor_room() -> usize {
    use nix::sys::resource::{getrlimit, Resource};
    let soft = getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft);
    usize::try_from(soft.saturating_sub(512)).unwrap_or(usize::MAX).max(16)
}

/// Raises this process's soft open-file limit to its hard limit, as servers do at start.
pub fn raise_descriptor_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!("raising the open-file limit from {soft} to {hard}: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gate_counts_overall_and_per_ip_and_frees_on_drop() {
        let g = Gate::new(3, 2);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let p1 = g.enter(Some(a)).unwrap();
        let p2 = g.enter(Some(a)).unwrap();
        assert_eq!(g.enter(Some(a)).unwrap_err(), Full::PerIp(2));
        let p3 = g.enter(Some(b)).unwrap();
        assert_eq!(g.enter(Some(b)).unwrap_err(), Full::Total(3));
        drop(p1);
        let _p4 = g.enter(Some(a)).unwrap();
        drop((p2, p3));
        assert_eq!(g.held(), 1);
    }
}
