//! `FaultProxy`: a TCP proxy on loopback between the edge and the hub that passes, refuses,
//! delays or cuts connections on command, to drive the sync through a bad network.
//!
//! The fault in force is read when a connection is accepted and again for every chunk
//! forwarded, so switching it affects connections already open too. Counters say what the
//! proxy did, so tests can wait until a fault was actually exercised instead of guessing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward both ways.
    Pass,
    /// Accept and close at once, before any byte is forwarded (a hub that is down behind a
    /// load balancer; the client sees a reset or EOF).
    Refuse,
    /// Forward the request; cut both sides as soon as the upstream's first answer bytes
    /// arrive, so the client never gets them (the hub stored the batch, the reply was lost).
    /// Plain HTTP only: with TLS the server speaks first.
    CutResponse,
    /// Hold each chunk this long before forwarding it (slow network, answers past the
    /// client's timeout).
    Delay(Duration),
}

#[derive(Debug, Default)]
pub struct Counters {
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    pub cut: AtomicU64,
    pub delayed_chunks: AtomicU64,
}

pub struct FaultProxy {
    pub addr: SocketAddr,
    pub counters: Arc<Counters>,
    fault: watch::Sender<Fault>,
    /// Where new connections go (a hub replaced by another at a new address).
    upstream: watch::Sender<SocketAddr>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1:0 and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr, fault: Fault) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = watch::channel(fault);
        let (upstream, to) = watch::channel(upstream);
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                c.accepted.fetch_add(1, Ordering::Relaxed);
                let (rx, c) = (rx.clone(), c.clone());
                tokio::spawn(connection(client, *to.borrow(), rx, c));
            }
        });
        FaultProxy { addr, counters, fault: tx, upstream, task }
    }

    /// Sends new connections to `upstream` (connections already open stay where they are).
    pub fn retarget(&self, upstream: SocketAddr) {
        self.upstream.send_replace(upstream);
    }

    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    pub fn count(&self, counter: fn(&Counters) -> &AtomicU64) -> u64 {
        counter(&self.counters).load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn connection(mut client: TcpStream, upstream: SocketAddr, fault: watch::Receiver<Fault>, c: Arc<Counters>) {
    if *fault.borrow() == Fault::Refuse {
        c.refused.fetch_add(1, Ordering::Relaxed);
        drop(client);
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (mut client_read, mut client_write) = client.split();
    let (mut server_read, mut server_write) = server.split();
    let up = pump(&mut client_read, &mut server_write, fault.clone(), &c, false);
    let down = pump(&mut server_read, &mut client_write, fault.clone(), &c, true);
    // Either direction ending (EOF, error, cut) ends the connection: a half-closed HTTP
    // connection is of no use to either side.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// Copies `from` to `to` chunk by chunk, applying the fault in force to each chunk. Returns
/// when either side is done or the connection is cut.
async fn pump<R, W>(from: &mut R, to: &mut W, fault: watch::Receiver<Fault>, c: &Counters, answers: bool)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let current = *fault.borrow();
        match current {
            Fault::Refuse => return,
            Fault::CutResponse if answers => {
                c.cut.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Fault::Delay(d) => {
                c.delayed_chunks.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(d).await;
            }
            _ => {}
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
