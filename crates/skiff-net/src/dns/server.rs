//! The DNS listeners: UDP and TCP on one port, answering from the shared index. Wire-format
//! work (parsing, FORMERR, EDNS, truncation) lives in [`respond`], a pure function of the
//! index and the packet bytes, so it is tested without sockets.

use std::net::SocketAddr;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::DNSClass;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use super::{Error, Records, SharedRecords};
use crate::metrics::{DnsMetrics, Proto};
use hickory_proto::rr::RecordType;

/// Largest UDP answer without EDNS (RFC 1035).
const CLASSIC_UDP: usize = 512;
/// The UDP payload size this server advertises and the cap on what a client may ask for:
/// the DNS flag day 2020 value, which avoids IP fragmentation on every common path.
const OUR_UDP_PAYLOAD: u16 = 1232;
/// Receive buffer for UDP queries; a query larger than this is malformed anyway.
const UDP_BUFFER: usize = 4096;
/// How long an idle TCP connection is kept (RFC 7766 suggests seconds, not minutes).
const TCP_IDLE: Duration = Duration::from_secs(10);
/// TCP connections served at once; beyond this new ones are closed, so a flood of idle
/// connections cannot exhaust file descriptors.
const MAX_TCP_CONNECTIONS: usize = 256;

/// Bound UDP and TCP sockets, ready to [`Server::run`]. Binding is separate from running so
/// a caller (or a test on port 0) learns the address before queries can arrive.
#[derive(Debug)]
pub struct Server {
    udp: Arc<UdpSocket>,
    tcp: TcpListener,
    records: SharedRecords,
    metrics: DnsMetrics,
}

/// Which transport a query came over: it decides the answer size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Udp,
    Tcp,
}

impl Server {
    /// Binds UDP and TCP on `addr`. With port 0 both get the same ephemeral port.
    pub async fn bind(addr: SocketAddr, records: SharedRecords) -> Result<Server, Error> {
        let bind_err = |proto, source| Error::Bind {
            proto,
            addr,
            source,
        };
        // With port 0 the UDP port may be taken for TCP by someone else; try a few.
        let attempts = if addr.port() == 0 { 16 } else { 1 };
        let mut last = None;
        for _ in 0..attempts {
            let udp = UdpSocket::bind(addr)
                .await
                .map_err(|e| bind_err("UDP", e))?;
            let port = udp.local_addr().map_err(|e| bind_err("UDP", e))?.port();
            match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
                Ok(tcp) => {
                    return Ok(Server {
                        udp: Arc::new(udp),
                        tcp,
                        records,
                        metrics: DnsMetrics::default(),
                    })
                }
                Err(e) => last = Some(e),
            }
        }
        Err(bind_err(
            "TCP",
            last.unwrap_or_else(|| std::io::Error::other("no attempt")),
        ))
    }

    /// The bound address (UDP and TCP share it).
    pub fn local_addr(&self) -> SocketAddr {
        self.tcp
            .local_addr()
            .or_else(|_| self.udp.local_addr())
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Records queries and answers in `metrics` (labelled with this server's address).
    pub fn with_metrics(mut self, metrics: &DnsMetrics) -> Server {
        self.metrics = metrics.for_server(self.local_addr());
        self
    }

    /// Serves forever: one UDP receive loop per core on the shared socket (each answers
    /// inline, lookups take microseconds) and a task per TCP connection.
    pub async fn run(self) {
        let addr = self.local_addr();
        info!(%addr, "cluster DNS listening (UDP and TCP)");
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..workers {
            tasks.spawn(udp_loop(
                self.udp.clone(),
                self.records.clone(),
                self.metrics.clone(),
            ));
        }
        tasks.spawn(tcp_loop(self.tcp, self.records, self.metrics));
        while tasks.join_next().await.is_some() {}
    }
}

/// Binds `addr` and serves from `records` forever; returns only if binding fails.
pub async fn serve(addr: SocketAddr, records: SharedRecords) -> Result<(), Error> {
    Server::bind(addr, records).await?.run().await;
    Ok(())
}

async fn udp_loop(socket: Arc<UdpSocket>, records: SharedRecords, metrics: DnsMetrics) {
    let mut buf = vec![0u8; UDP_BUFFER];
    loop {
        let (len, peer) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // ICMP errors from earlier sends surface here on some systems; not fatal.
                debug!(error = %e, "DNS UDP receive failed");
                continue;
            }
        };
        let Some((reply, asked)) = answer(&records, &buf[..len], Transport::Udp) else {
            continue;
        };
        metrics.answered(Proto::Udp, peer.is_ipv6(), asked.0, asked.1);
        if let Err(e) = socket.send_to(&reply, peer).await {
            debug!(%peer, error = %e, "DNS UDP send failed");
        }
    }
}

async fn tcp_loop(listener: TcpListener, records: SharedRecords, metrics: DnsMetrics) {
    let limit = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Usually out of file descriptors: back off instead of spinning.
                warn!(error = %e, "DNS TCP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            debug!(%peer, "too many DNS TCP connections; closing");
            continue;
        };
        let records = records.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = tcp_connection(stream, &records, &metrics).await {
                debug!(%peer, error = %e, "DNS TCP connection ended");
            }
            drop(permit);
        });
    }
}

/// Length-prefixed messages (RFC 1035 4.2.2), answered in order until the client closes
/// or stays idle for [`TCP_IDLE`].
async fn tcp_connection(
    mut stream: TcpStream,
    records: &SharedRecords,
    metrics: &DnsMetrics,
) -> std::io::Result<()> {
    let ipv6 = stream.peer_addr().is_ok_and(|a| a.is_ipv6());
    let mut buf = Vec::new();
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await {
            Err(_) => return Ok(()),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(r) => r?,
        };
        buf.resize(usize::from(u16::from_be_bytes(len)), 0);
        tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut buf))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "partial query"))??;
        let Some((reply, asked)) = answer(records, &buf, Transport::Tcp) else {
            return Ok(());
        };
        metrics.answered(Proto::Tcp, ipv6, asked.0, asked.1);
        // respond() keeps TCP answers within u16 by truncating.
        let reply_len = u16::try_from(reply.len()).unwrap_or(u16::MAX);
        let mut out = Vec::with_capacity(reply.len() + 2);
        out.extend_from_slice(&reply_len.to_be_bytes());
        out.extend_from_slice(&reply);
        stream.write_all(&out).await?;
    }
}

/// The reply to one packet, or None to drop it (too short to carry an ID, or a response:
/// answering responses invites loops).
#[cfg(test)]
pub(crate) fn respond(
    records: &SharedRecords,
    packet: &[u8],
    transport: Transport,
) -> Option<Vec<u8>> {
    answer(records, packet, transport).map(|(reply, _)| reply)
}

/// What a query asked (its type, when it could be read) and the answer's code, for the
/// metrics.
type Asked = (Option<RecordType>, ResponseCode);

/// [`respond`] with what was asked and answered.
fn answer(
    records: &SharedRecords,
    packet: &[u8],
    transport: Transport,
) -> Option<(Vec<u8>, Asked)> {
    if packet.len() < 12 || packet[2] & 0x80 != 0 {
        return None;
    }
    let request = match Message::from_vec(packet) {
        Ok(m) => m,
        Err(e) => {
            debug!(error = %e, "malformed DNS query");
            return Some((formerr(packet), (None, ResponseCode::FormErr)));
        }
    };
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.add_queries(request.queries.iter().cloned());
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(OUR_UDP_PAYLOAD);
        response.set_edns(edns);
    }
    let limit = match transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => match &request.edns {
            Some(edns) => usize::from(
                edns.max_payload()
                    .clamp(CLASSIC_UDP as u16, OUR_UDP_PAYLOAD),
            ),
            None => CLASSIC_UDP,
        },
    };
    let rcode = if request.metadata.op_code != OpCode::Query {
        ResponseCode::NotImp
    } else if request.metadata.message_type != MessageType::Query || request.queries.len() != 1 {
        ResponseCode::FormErr
    } else if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
        ResponseCode::BADVERS
    } else if request.queries[0].query_class() != DNSClass::IN {
        ResponseCode::Refused
    } else {
        let query = &request.queries[0];
        let answer = lock(records).lookup(query.name(), query.query_type());
        response.metadata.authoritative = answer.authoritative;
        response.answers = answer.answers;
        response.authorities = answer.authorities;
        response.additionals = answer.additionals;
        answer.rcode
    };
    response.metadata.response_code = rcode;
    let asked = request.queries.first().map(|q| q.query_type());
    fit(response, limit).map(|reply| (reply, (asked, rcode)))
}

/// Serialises within `limit` bytes: first whole; then without the additional section (its
/// records are optional, RFC 2181 9); then as an empty answer with TC set, which tells the
/// client to retry over TCP.
fn fit(mut response: Message, limit: usize) -> Option<Vec<u8>> {
    let bytes = response.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    response.additionals.clear();
    if let Ok(bytes) = response.to_vec() {
        if bytes.len() <= limit {
            return Some(bytes);
        }
    }
    response.answers.clear();
    response.authorities.clear();
    response.metadata.truncation = true;
    response.to_vec().ok()
}

/// FORMERR for a packet that does not parse: its header's ID and opcode echoed, no
/// sections (the question may be what is broken).
fn formerr(packet: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 12];
    out[0] = packet[0];
    out[1] = packet[1];
    // QR=1, the request's opcode and RD; RCODE=1 (FORMERR).
    out[2] = 0x80 | (packet[2] & 0x79);
    out[3] = ResponseCode::FormErr.low();
    out
}

/// The read guard. A panic while holding the write lock cannot leave the index half
/// updated in a way that matters more than stopping DNS would, so poisoning is ignored.
fn lock(records: &SharedRecords) -> std::sync::RwLockReadGuard<'_, Records> {
    records.read().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::{Name, RecordType};

    fn query(name: &str, qtype: RecordType, edns: Option<u16>) -> Message {
        let mut m = Message::query();
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
        if let Some(size) = edns {
            let mut e = Edns::new();
            e.set_max_payload(size);
            m.set_edns(e);
        }
        m
    }

    /// A headless service with `n` ready endpoints: its A answer is ~16 bytes per endpoint.
    fn big(n: u8) -> SharedRecords {
        let mut r = records();
        r.apply_service(&headless("ns", "big", false));
        let ips: Vec<String> = (1..=n).map(|i| format!("10.0.1.{i}")).collect();
        let eps: Vec<E> = ips.iter().map(|ip| (ip.as_str(), None, None)).collect();
        r.apply_endpoint_slice(&slice("ns", "big-1", "big", &[("http", "TCP", 80)], &eps));
        r.apply_service(&cluster_ip(
            "ns",
            "web",
            "10.96.0.5",
            &[("http", "TCP", 80)],
        ));
        shared(r)
    }

    fn ask_wire(records: &SharedRecords, q: &Message, t: Transport) -> (Message, usize) {
        let bytes = respond(records, &q.to_vec().expect("encode"), t).expect("a reply");
        (
            Message::from_vec(&bytes).expect("reply parses"),
            bytes.len(),
        )
    }

    #[test]
    fn udp_answer_over_512_bytes_without_edns_is_truncated() {
        let records = big(60);
        let q = query("big.ns.svc.cluster.local.", RecordType::A, None);
        let (reply, len) = ask_wire(&records, &q, Transport::Udp);
        assert!(reply.metadata.truncation, "TC must be set");
        assert!(reply.answers.is_empty());
        assert!(len <= 512, "{len}");
        assert_eq!(reply.metadata.id, q.metadata.id);
        assert_eq!(reply.queries, q.queries);
    }

    #[test]
    fn edns_payload_size_is_honoured() {
        let records = big(60);
        let q = query("big.ns.svc.cluster.local.", RecordType::A, Some(4096));
        let (reply, len) = ask_wire(&records, &q, Transport::Udp);
        assert!(!reply.metadata.truncation);
        assert_eq!(reply.answers.len(), 60);
        assert!(len > 512);
        assert_eq!(
            reply.edns.as_ref().map(Edns::max_payload),
            Some(OUR_UDP_PAYLOAD)
        );
        // A client that says 512 with EDNS gets 512.
        let q = query("big.ns.svc.cluster.local.", RecordType::A, Some(512));
        assert!(ask_wire(&records, &q, Transport::Udp).0.metadata.truncation);
    }

    #[test]
    fn tcp_answers_are_never_truncated_at_512() {
        let records = big(60);
        let q = query("big.ns.svc.cluster.local.", RecordType::A, None);
        let (reply, _) = ask_wire(&records, &q, Transport::Tcp);
        assert!(!reply.metadata.truncation);
        assert_eq!(reply.answers.len(), 60);
    }

    #[test]
    fn oversized_srv_drops_additionals_before_truncating() {
        // SRV targets are never compressed (RFC 2782): ~53 bytes a record.
        let records = big(8);
        let q = query(
            "_http._tcp.big.ns.svc.cluster.local.",
            RecordType::SRV,
            None,
        );
        let (whole, whole_len) = ask_wire(&records, &q, Transport::Tcp);
        assert!(
            whole_len > 512 && whole.additionals.len() == 8,
            "{whole_len}"
        );
        let (reply, len) = ask_wire(&records, &q, Transport::Udp);
        assert!(len <= 512);
        assert!(!reply.metadata.truncation);
        assert_eq!(reply.answers.len(), 8);
        assert!(reply.additionals.is_empty());
    }

    #[test]
    fn header_flags_of_an_answer() {
        let records = big(1);
        let q = query("web.ns.svc.cluster.local.", RecordType::A, None);
        let (reply, _) = ask_wire(&records, &q, Transport::Udp);
        assert_eq!(reply.metadata.message_type, MessageType::Response);
        assert!(reply.metadata.authoritative);
        assert!(reply.metadata.recursion_desired);
        assert!(!reply.metadata.recursion_available);
        assert_eq!(reply.answers.len(), 1);
        let q = query("example.com.", RecordType::A, None);
        let (reply, _) = ask_wire(&records, &q, Transport::Udp);
        assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
        assert!(!reply.metadata.authoritative);
    }

    #[test]
    fn malformed_packets_get_formerr_or_are_dropped() {
        let records = big(1);
        // Too short for a header, and responses: dropped.
        assert_eq!(respond(&records, &[1, 2, 3], Transport::Udp), None);
        let mut reply = query("web.ns.svc.cluster.local.", RecordType::A, None);
        reply.metadata.message_type = MessageType::Response;
        assert_eq!(
            respond(&records, &reply.to_vec().expect("encode"), Transport::Udp),
            None
        );
        // A header announcing a question that is not there.
        let garbage = [0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
        let bytes = respond(&records, &garbage, Transport::Udp).expect("FORMERR");
        let m = Message::from_vec(&bytes).expect("parses");
        assert_eq!(m.metadata.id, 0xbeef);
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        assert!(m.metadata.recursion_desired);
        // Two questions, a non-query opcode, an unknown EDNS version.
        let mut two = query("web.ns.svc.cluster.local.", RecordType::A, None);
        two.add_query(Query::query(
            Name::from_ascii("x.").expect("name"),
            RecordType::A,
        ));
        assert_eq!(
            ask_wire(&records, &two, Transport::Udp)
                .0
                .metadata
                .response_code,
            ResponseCode::FormErr
        );
        let mut notify = query("web.ns.svc.cluster.local.", RecordType::A, None);
        notify.metadata.op_code = OpCode::Notify;
        assert_eq!(
            ask_wire(&records, &notify, Transport::Udp)
                .0
                .metadata
                .response_code,
            ResponseCode::NotImp
        );
        let mut v1 = query("web.ns.svc.cluster.local.", RecordType::A, Some(1232));
        if let Some(e) = v1.edns.as_mut() {
            e.set_version(1);
        }
        // 16 is BADVERS in an OPT context (hickory decodes it by its TSIG name, BADSIG).
        let rcode = ask_wire(&records, &v1, Transport::Udp)
            .0
            .metadata
            .response_code;
        assert_eq!(u16::from(rcode), 16);
    }

    #[test]
    fn random_bytes_never_panic() {
        let records = big(3);
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let valid = query(
            "_http._tcp.big.ns.svc.cluster.local.",
            RecordType::SRV,
            Some(1232),
        )
        .to_vec()
        .expect("encode");
        for _ in 0..20_000 {
            let mut p = valid.clone();
            // Flip a few bytes of a valid query, or cut it short.
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % p.len();
                p[i] = next() as u8;
            }
            p.truncate((next() as usize) % (p.len() + 1));
            let _ = respond(&records, &p, Transport::Udp);
        }
    }

    async fn udp_ask(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        sock.send_to(bytes, addr).await.expect("send");
        let mut buf = vec![0u8; 65535];
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
            .await
            .expect("UDP reply in time")
            .expect("recv");
        buf.truncate(n);
        buf
    }

    async fn tcp_ask(stream: &mut TcpStream, bytes: &[u8]) -> Vec<u8> {
        let len = u16::try_from(bytes.len()).expect("small").to_be_bytes();
        stream.write_all(&len).await.expect("write");
        stream.write_all(bytes).await.expect("write");
        let mut len = [0u8; 2];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut len))
            .await
            .expect("TCP reply in time")
            .expect("read");
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut buf).await.expect("read");
        buf
    }

    #[tokio::test]
    async fn serves_udp_and_tcp_on_one_port_and_survives_garbage() {
        let records = big(60);
        let server = Server::bind("127.0.0.1:0".parse().expect("addr"), records.clone())
            .await
            .expect("bind");
        let addr = server.local_addr();
        let task = tokio::spawn(server.run());

        // UDP: an answer, then garbage, then a truncated big answer, then a live update.
        let q = query("web.ns.svc.cluster.local.", RecordType::A, None);
        let reply =
            Message::from_vec(&udp_ask(addr, &q.to_vec().expect("encode")).await).expect("parse");
        assert_eq!(reply.metadata.id, q.metadata.id);
        assert_eq!(reply.answers.len(), 1);
        assert_eq!(
            reply.answers[0].to_string(),
            "web.ns.svc.cluster.local. 5 IN A 10.96.0.5"
        );

        let garbage = [0x12, 0x34, 0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0x3f];
        let reply = Message::from_vec(&udp_ask(addr, &garbage).await).expect("parse");
        assert_eq!(
            (reply.metadata.id, reply.metadata.response_code),
            (0x1234, ResponseCode::FormErr)
        );

        let big_q = query("big.ns.svc.cluster.local.", RecordType::A, None)
            .to_vec()
            .expect("encode");
        let reply = Message::from_vec(&udp_ask(addr, &big_q).await).expect("parse");
        assert!(reply.metadata.truncation);

        records
            .write()
            .expect("lock")
            .apply_service(&cluster_ip("ns", "new", "10.96.0.77", &[]));
        let q = query("new.ns.svc.cluster.local.", RecordType::A, None);
        let reply =
            Message::from_vec(&udp_ask(addr, &q.to_vec().expect("encode")).await).expect("parse");
        assert_eq!(
            reply.answers.len(),
            1,
            "an index change is answered at once"
        );

        // TCP: the big answer whole, garbage answered FORMERR, same connection reused.
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let reply = Message::from_vec(&tcp_ask(&mut stream, &big_q).await).expect("parse");
        assert!(!reply.metadata.truncation);
        assert_eq!(reply.answers.len(), 60);
        let reply = Message::from_vec(&tcp_ask(&mut stream, &garbage).await).expect("parse");
        assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
        let q = query(
            "_http._tcp.web.ns.svc.cluster.local.",
            RecordType::SRV,
            None,
        );
        let reply = Message::from_vec(&tcp_ask(&mut stream, &q.to_vec().expect("encode")).await)
            .expect("parse");
        assert_eq!(
            reply.answers[0].to_string(),
            "_http._tcp.web.ns.svc.cluster.local. 5 IN SRV 0 100 80 web.ns.svc.cluster.local."
        );

        task.abort();
    }
}
