//! A fault-injecting TCP proxy in front of each node's gRPC port.
//!
//! Every node is advertised to the cluster at its proxy's port (`--advertise-grpc`) and dials
//! the others from an address of its own (`--source-ip 127.0.0.1N`, see [`source_ip`]), so
//! the proxy of node `dst` knows for each connection which node `src` opened it and can
//! cut, hold or delay each direction of the link `src → dst`. The harness's own clients
//! talk to the nodes' listen ports directly: a partition separates nodes, not clients.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Node id; 0 stands for anything that is not a node (a client).
pub type Id = u64;

/// The loopback address node `id` dials from.
pub fn source_ip(id: Id) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10 + id as u8))
}

fn node_of(ip: IpAddr) -> Id {
    match ip {
        IpAddr::V4(v4) if v4.octets()[..3] == [127, 0, 0] && v4.octets()[3] > 10 => {
            (v4.octets()[3] - 10) as Id
        }
        _ => 0,
    }
}

/// What happens to bytes going from one node to another.
#[derive(Default)]
struct Links {
    /// Directions (from, to) that carry nothing.
    cut: HashSet<(Id, Id)>,
    /// Directions that carry everything this much later.
    delay: HashMap<(Id, Id), Duration>,
}

/// The network between the nodes, shared by every proxy. Changing it wakes every open
/// connection, which then applies the new state at once.
#[derive(Clone)]
pub struct Net {
    links: Arc<Mutex<Links>>,
    changed: watch::Sender<u64>,
}

impl Net {
    pub fn new() -> Net {
        Net {
            links: Arc::default(),
            changed: watch::channel(0).0,
        }
    }

    fn update(&self, f: impl FnOnce(&mut Links)) {
        f(&mut self.links.lock().expect("links"));
        self.changed.send_modify(|v| *v += 1);
    }

    fn is_cut(&self, from: Id, to: Id) -> bool {
        self.links.lock().expect("links").cut.contains(&(from, to))
    }

    fn delay(&self, from: Id, to: Id) -> Duration {
        let links = self.links.lock().expect("links");
        links.delay.get(&(from, to)).copied().unwrap_or_default()
    }

    /// Nothing goes from `from` to `to` any more (the other direction is untouched).
    pub fn cut(&self, from: Id, to: Id) {
        self.update(|l| {
            l.cut.insert((from, to));
        });
    }

    /// Every message between the two groups is lost, both ways.
    pub fn partition(&self, a: &[Id], b: &[Id]) {
        self.update(|l| {
            for &x in a {
                for &y in b {
                    l.cut.insert((x, y));
                    l.cut.insert((y, x));
                }
            }
        });
    }

    /// Every direction between the given nodes arrives `by` late.
    pub fn slow(&self, nodes: &[Id], by: Duration) {
        self.update(|l| {
            for &x in nodes {
                for &y in nodes.iter().filter(|&&y| y != x) {
                    l.delay.insert((x, y), by);
                }
            }
        });
    }

    /// Back to a network that loses and delays nothing.
    pub fn heal(&self) {
        self.update(|l| {
            l.cut.clear();
            l.delay.clear();
        });
    }

    /// Starts the proxy for node `dst`: listening on `listen`, forwarding to `upstream`.
    pub async fn proxy(&self, dst: Id, listen: SocketAddr, upstream: SocketAddr) {
        let listener = TcpListener::bind(listen).await.expect("bind proxy port");
        let net = self.clone();
        tokio::spawn(async move {
            while let Ok((conn, peer)) = listener.accept().await {
                let src = node_of(peer.ip());
                if net.is_cut(src, dst) {
                    continue; // dropped: the dialler sees the connection reset
                }
                let net = net.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return; // the node is down: so is the connection
                    };
                    let _ = conn.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    net.splice(conn, server, src, dst).await;
                });
            }
        });
    }

    /// Carries one connection from `src` to node `dst` until either end closes it or the
    /// link `src → dst` is cut. While `dst → src` is cut, replies are held back (not
    /// dropped: the byte stream stays intact for when the link heals).
    async fn splice(&self, client: TcpStream, server: TcpStream, src: Id, dst: Id) {
        let (client_read, client_write) = client.into_split();
        let (server_read, server_write) = server.into_split();
        let mut changed = self.changed.subscribe();
        let up = self.pump(client_read, server_write, src, dst);
        let down = self.pump(server_read, client_write, dst, src);
        let cut = async {
            loop {
                if self.is_cut(src, dst) {
                    return;
                }
                if changed.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        // Dropping the halves closes both sockets.
        tokio::select! {
            _ = up => {}
            _ = down => {}
            _ = cut => {}
        }
    }

    /// Copies bytes `from → to`, each chunk delivered no earlier than the link's delay after
    /// it was read, none while that direction is cut.
    async fn pump(&self, mut read: OwnedReadHalf, mut write: OwnedWriteHalf, from: Id, to: Id) {
        let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(1024);
        let reader = async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match read.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if tx.send((Instant::now(), buf[..n].to_vec())).await.is_err() {
                            return;
                        }
                    }
                }
            }
        };
        let mut changed = self.changed.subscribe();
        let writer = async move {
            while let Some((read_at, chunk)) = rx.recv().await {
                tokio::time::sleep_until(read_at + self.delay(from, to)).await;
                while self.is_cut(from, to) {
                    if changed.changed().await.is_err() {
                        return;
                    }
                }
                if write.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        };
        // The reader's end closes the queue, and the writer delivers what is left in it.
        tokio::join!(reader, writer);
    }
}
