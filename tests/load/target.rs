//! The gateway under test (loopback only) and the loopback source addresses client sockets are
//! spread over, since one source address has only ~28k ephemeral ports towards one target.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{bail, Context};
use tokio::net::{TcpSocket, TcpStream};

/// A gateway address that is known to be on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target(SocketAddr);

impl Target {
    /// Accepts `IP:PORT` with a loopback IP, or `localhost:PORT`; refuses everything else, so
    /// the generator can never be pointed at someone else's server.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        let addr = match s.parse::<SocketAddr>() {
            Ok(addr) => addr,
            Err(_) => {
                let (host, port) = s
                    .rsplit_once(':')
                    .with_context(|| format!("target {s:?} is not HOST:PORT"))?;
                if !host.eq_ignore_ascii_case("localhost") {
                    bail!("refusing target {s:?}: only loopback addresses (127.0.0.0/8, ::1, localhost) may be driven");
                }
                let port = port
                    .parse::<u16>()
                    .with_context(|| format!("target {s:?} has no valid port"))?;
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port)
            }
        };
        if !addr.ip().is_loopback() {
            bail!("refusing non-loopback target {addr}: the load generator only drives a gateway on this machine");
        }
        if addr.port() == 0 {
            bail!("target {addr} has port 0");
        }
        Ok(Self(addr))
    }

    pub fn addr(&self) -> SocketAddr {
        self.0
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The gateways under test: one, or the nodes of one cluster (`--target a,b,c`), each new
/// connection going to the next in turn, as a load balancer would spread them.
#[derive(Debug)]
pub struct Targets {
    all: Vec<Target>,
    next: AtomicUsize,
}

impl Targets {
    /// A comma-separated list of [`Target::parse`] addresses, all of one address family.
    pub fn parse(list: &str) -> anyhow::Result<Self> {
        let all = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Target::parse)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let Some(first) = all.first() else {
            bail!("no target given");
        };
        if all
            .iter()
            .any(|t| t.addr().is_ipv4() != first.addr().is_ipv4())
        {
            bail!("targets {list:?} mix IPv4 and IPv6");
        }
        Ok(Self {
            all,
            next: AtomicUsize::new(0),
        })
    }

    /// The target of the next connection.
    pub fn next(&self) -> Target {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.all[i % self.all.len()]
    }

    pub fn first(&self) -> Target {
        self.all[0]
    }

    /// The target after `t` in the list (`t` itself when it is the only one): a node other
    /// than the one a connection went to.
    pub fn after(&self, t: Target) -> Target {
        let at = self.all.iter().position(|x| *x == t).unwrap_or(0);
        self.all[(at + 1) % self.all.len()]
    }
}

impl fmt::Display for Targets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.all.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            t.fmt(f)?;
        }
        Ok(())
    }
}

/// Round-robin over loopback source addresses 127.0.0.2, 127.0.0.3, … (IPv4 targets only;
/// IPv6 has a single loopback address, so sockets are left unbound there).
#[derive(Debug)]
pub struct Sources {
    addrs: Vec<IpAddr>,
    next: AtomicUsize,
}

impl Sources {
    pub fn new(target: Target, count: u16) -> Self {
        let addrs = match target.addr() {
            SocketAddr::V4(_) => {
                let first = u32::from(Ipv4Addr::new(127, 0, 0, 2));
                (0..u32::from(count))
                    .map(|i| IpAddr::V4(Ipv4Addr::from(first + i)))
                    .collect()
            }
            SocketAddr::V6(_) => Vec::new(),
        };
        Self {
            addrs,
            next: AtomicUsize::new(0),
        }
    }

    /// The source address for the next socket, or `None` to let the kernel choose.
    pub fn next(&self) -> Option<IpAddr> {
        if self.addrs.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        Some(self.addrs[i % self.addrs.len()])
    }
}

/// Opens a TCP connection to the target from `source` (port chosen by the kernel), with
/// Nagle off so that small frames are not held back and latency is the gateway's own.
pub async fn connect(target: Target, source: Option<IpAddr>) -> io::Result<TcpStream> {
    connect_with(target, source, None).await
}

/// [`connect`] with a receive buffer of `recv_buffer` bytes: a client that stops reading then
/// fills its side within a few frames, so the gateway, not the kernel, has to hold what follows.
pub async fn connect_with(
    target: Target,
    source: Option<IpAddr>,
    recv_buffer: Option<u32>,
) -> io::Result<TcpStream> {
    let socket = match target.addr() {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(bytes) = recv_buffer {
        socket.set_recv_buffer_size(bytes)?;
    }
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(target.addr()).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_targets_are_accepted() {
        for ok in [
            "127.0.0.1:8080",
            "127.1.2.3:9",
            "[::1]:8080",
            "localhost:8080",
        ] {
            assert!(Target::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn other_targets_are_refused() {
        for bad in [
            "10.0.0.1:8080",
            "0.0.0.0:8080",
            "192.168.1.1:80",
            "[2001:db8::1]:8080",
            "example.com:8080",
            "127.0.0.1",
            "127.0.0.1:0",
            "localhost:http",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn several_targets_take_connections_in_turn() {
        let targets = Targets::parse("127.0.0.1:8080, 127.0.0.1:8081").unwrap();
        let seen: Vec<_> = (0..3).map(|_| targets.next().to_string()).collect();
        assert_eq!(seen, ["127.0.0.1:8080", "127.0.0.1:8081", "127.0.0.1:8080"]);
        assert_eq!(targets.to_string(), "127.0.0.1:8080,127.0.0.1:8081");
        assert!(Targets::parse("127.0.0.1:8080,10.0.0.1:8080").is_err());
        assert!(Targets::parse("127.0.0.1:8080,[::1]:8080").is_err());
        assert!(Targets::parse(",").is_err());
    }

    #[test]
    fn the_target_after_one_is_another_unless_it_is_alone() {
        let targets = Targets::parse("127.0.0.1:8080,127.0.0.1:8081,127.0.0.1:8082").unwrap();
        let t = |s: &str| Target::parse(s).unwrap();
        assert_eq!(targets.after(t("127.0.0.1:8081")), t("127.0.0.1:8082"));
        assert_eq!(targets.after(t("127.0.0.1:8082")), t("127.0.0.1:8080"));
        let one = Targets::parse("127.0.0.1:8080").unwrap();
        assert_eq!(one.after(t("127.0.0.1:8080")), t("127.0.0.1:8080"));
    }

    #[test]
    fn sources_go_round_robin_from_127_0_0_2() {
        let target = Target::parse("127.0.0.1:8080").unwrap();
        let sources = Sources::new(target, 3);
        let seen: Vec<_> = (0..4)
            .map(|_| sources.next().unwrap().to_string())
            .collect();
        assert_eq!(seen, ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.2"]);
    }

    #[test]
    fn sources_cross_octet_boundaries() {
        let target = Target::parse("127.0.0.1:8080").unwrap();
        let sources = Sources::new(target, 300);
        let last = (0..300).map(|_| sources.next().unwrap()).last().unwrap();
        assert_eq!(last.to_string(), "127.0.1.45");
    }

    #[test]
    fn ipv6_targets_use_unbound_sockets() {
        let sources = Sources::new(Target::parse("[::1]:8080").unwrap(), 16);
        assert_eq!(sources.next(), None);
    }

    #[tokio::test]
    async fn connects_from_the_chosen_source_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = Target::parse(&listener.local_addr().unwrap().to_string()).unwrap();
        let source: IpAddr = "127.0.0.9".parse().unwrap();
        let client = connect(target, Some(source)).await.unwrap();
        let (_server, peer) = listener.accept().await.unwrap();
        assert_eq!(peer.ip(), source);
        assert_eq!(client.local_addr().unwrap().ip(), source);
    }
}
