//! A Socket.IO client (protocol v5) over rust_engineio's WebSocket transport,
//! written so that every packet the server sends is accounted for.
//!
//! rust_socketio drops some packets before any callback sees them (an event
//! nested deeper than serde_json's limit of 128 levels, a number out of range:
//! its `serde_json::from_str::<Value>` fails and the packet is skipped), so the
//! recorder could not keep `stored + rejected = received`. Here each event
//! comes out as a [`Received`] with its arguments as raw JSON text; parsing
//! them, and rejecting what cannot be parsed, is the caller's business.

use std::collections::{HashSet, VecDeque};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use rust_engineio::asynchronous::{Client as EngineClient, ClientBuilder as EngineBuilder};
use rust_engineio::{Packet as EnginePacket, PacketId as EnginePacketId};
use serde_json::value::RawValue;
use serde_json::Value;

/// What the server sent, one item per Socket.IO packet that carries data.
#[derive(Debug)]
pub enum Received {
    /// An event: its name and its arguments, unparsed.
    Event {
        name: String,
        args: Vec<Box<RawValue>>,
    },
    /// An event read in one pass: its name and its first argument, parsed
    /// (when that pass fails, the event comes as [`Received::Event`]).
    Parsed { name: String, first: Option<Value> },
    /// An event (or acknowledgement) with binary attachments, `bytes` in all.
    Binary { name: Option<String>, bytes: usize },
    /// A packet that is no usable event, with the reason and its text.
    Unusable {
        name: Option<String>,
        reason: String,
        text: String,
    },
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The server closed the connection or the Socket.IO session, or the
    /// network failed; the reason in words.
    Lost(String),
    /// The transport met a frame it could not decode (not UTF-8, too large, a
    /// broken engine.io packet): that frame is lost and the connection with it.
    /// `reported`: the frame was an awaited attachment, already reported as
    /// an unusable item.
    Unparseable { reason: String, reported: bool },
}

/// The header of a Socket.IO packet: `<type>[<attachments>-][<nsp>,][<ack id>]<data>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header<'a> {
    pub kind: Kind,
    pub attachments: usize,
    pub nsp: &'a str,
    pub ack_id: Option<u64>,
    pub data: &'a str,
}

/// Socket.IO packet types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Connect,
    Disconnect,
    Event,
    Ack,
    ConnectError,
    BinaryEvent,
    BinaryAck,
}

/// Splits a Socket.IO packet into its header fields and its data text.
pub fn decode(text: &str) -> Result<Header<'_>, String> {
    let mut chars = text.chars();
    let kind = match chars.next() {
        Some('0') => Kind::Connect,
        Some('1') => Kind::Disconnect,
        Some('2') => Kind::Event,
        Some('3') => Kind::Ack,
        Some('4') => Kind::ConnectError,
        Some('5') => Kind::BinaryEvent,
        Some('6') => Kind::BinaryAck,
        Some(c) => return Err(format!("unknown Socket.IO packet type {c:?}")),
        None => return Err("empty Socket.IO packet".into()),
    };
    let mut rest = &text[1..];
    let mut attachments = 0;
    if matches!(kind, Kind::BinaryEvent | Kind::BinaryAck) {
        let (count, after) = rest
            .split_once('-')
            .ok_or("binary packet without an attachment count")?;
        attachments = count
            .parse()
            .map_err(|_| format!("invalid attachment count {count:?}"))?;
        rest = after;
    }
    let mut nsp = "/";
    if rest.starts_with('/') {
        // The namespace ends at the first comma; a packet for the main
        // namespace with data but no comma does not start with '/'.
        let end = rest.find(',').unwrap_or(rest.len());
        nsp = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or("");
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let ack_id = if digits > 0 {
        Some(
            rest[..digits]
                .parse()
                .map_err(|_| format!("invalid acknowledgement id {:?}", &rest[..digits]))?,
        )
    } else {
        None
    };
    Ok(Header {
        kind,
        attachments,
        nsp,
        ack_id,
        data: &rest[digits..],
    })
}

/// Splits an event's data (`["name", arg, …]`) into its name and raw
/// arguments, without parsing the arguments: their depth is not limited here.
pub fn split_event(data: &str) -> Result<(String, Vec<Box<RawValue>>), String> {
    let mut items: Vec<Box<RawValue>> =
        serde_json::from_str(data).map_err(|e| format!("not a Socket.IO event array: {e}"))?;
    if items.is_empty() {
        return Err("an empty Socket.IO event array".into());
    }
    // As in socket.io itself, an array without a leading name is a `message`.
    match serde_json::from_str::<String>(items[0].get()) {
        Ok(name) => {
            items.remove(0);
            Ok((name, items))
        }
        Err(_) => Ok(("message".to_string(), items)),
    }
}

/// An event array read in one pass: its name and first argument.
struct NameAndFirst(String, Option<Value>);

impl<'de> serde::Deserialize<'de> for NameAndFirst {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Items;
        impl<'de> serde::de::Visitor<'de> for Items {
            type Value = NameAndFirst;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of an event name and its arguments")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<NameAndFirst, A::Error> {
                let name: String = seq
                    .next_element()?
                    .ok_or_else(|| serde::de::Error::custom("no name"))?;
                let first = seq.next_element()?;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(NameAndFirst(name, first))
            }
        }
        d.deserialize_seq(Items)
    }
}

/// An event's name and first argument in one pass over its data, for the
/// usual event (`["name", {...}, ...]`); `None` for anything else (no name, a
/// value the parser cannot take), which [`split_event`] then reads.
pub fn parse_event(data: &str) -> Option<(String, Option<Value>)> {
    serde_json::from_str::<NameAndFirst>(data)
        .ok()
        .map(|NameAndFirst(name, first)| (name, first))
}

/// Whether an engine.io error means a frame was lost rather than the network.
fn frame_lost(e: &rust_engineio::Error) -> bool {
    use rust_engineio::Error as E;
    match e {
        E::InvalidPacketId(_)
        | E::IncompletePacket()
        | E::InvalidPacket()
        | E::InvalidUtf8(_)
        | E::InvalidBase64(_)
        | E::InvalidJson(_) => true,
        // tungstenite is not a dependency of ours, so its error is told by
        // its text: a message over the size limit, or text that is not UTF-8.
        E::WebsocketError(w) => {
            let text = w.to_string();
            text.starts_with("Space limit exceeded") || text.starts_with("UTF-8 encoding error")
        }
        _ => false,
    }
}

/// Why an error happened, in words: the libraries' own messages ("EngineIO
/// Error") hide the cause in the source chain.
pub fn reason(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    crate::error::one_line(&last)
}

/// Attachments still expected for a binary packet.
struct PendingBinary {
    name: Option<String>,
    remaining: usize,
    bytes: usize,
}

/// While a stream is dense, the reader waits for this much to be buffered
/// (`SO_RCVLOWAT`) instead of waking for every TCP segment: a python-socketio
/// monitor sends every event in a WebSocket frame and a segment of its own,
/// and a wakeup costs more than decoding a frame. The kernel wakes the reader
/// as soon as that much is there (or its buffer is under pressure), so a fast
/// stream is never held back.
const LOW_WATER: libc::c_int = 16 * 1024;
/// The longest the reader waits for [`LOW_WATER`] before it reads what there is.
const LOW_WAIT: Duration = Duration::from_millis(8);
/// A stream is dense when the reader, waiting for any byte, waited less than this.
const DENSE_WAIT: Duration = Duration::from_micros(500);

/// How the reader waits for the socket (see [`LOW_WATER`]).
#[derive(Default)]
struct Pacer {
    /// The transport's TCP socket, when it was found.
    fd: Option<RawFd>,
    /// `SO_RCVLOWAT` is [`LOW_WATER`] now (else 1).
    low: bool,
    dense: bool,
}

/// The file descriptors of this process's sockets.
fn socket_fds() -> HashSet<RawFd> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return HashSet::new();
    };
    dir.flatten()
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
        })
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// The remote port of socket `fd`, if it is a connected TCP/IP socket.
fn peer_port(fd: RawFd) -> Option<u16> {
    // SAFETY: getpeername writes at most `len` bytes into the storage it is given.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let ok = unsafe { libc::getpeername(fd, (&raw mut addr).cast(), &mut len) } == 0;
    if !ok {
        return None;
    }
    match i32::from(addr.ss_family) {
        // SAFETY: the family says which address type the storage holds.
        libc::AF_INET => Some(u16::from_be(unsafe {
            (*(&raw const addr).cast::<libc::sockaddr_in>()).sin_port
        })),
        libc::AF_INET6 => Some(u16::from_be(unsafe {
            (*(&raw const addr).cast::<libc::sockaddr_in6>()).sin6_port
        })),
        _ => None,
    }
}

/// The socket the transport opened to the monitor: rust_engineio does not
/// expose it, so it is the one that appeared while connecting whose peer is
/// the monitor's port (none when that is not exactly one).
fn transport_socket(before: &HashSet<RawFd>, port: u16) -> Option<RawFd> {
    let mut new = socket_fds()
        .into_iter()
        .filter(|fd| !before.contains(fd) && peer_port(*fd) == Some(port));
    let fd = new.next()?;
    new.next().is_none().then_some(fd)
}

fn set_low_water(fd: RawFd, bytes: libc::c_int) {
    // SAFETY: SO_RCVLOWAT takes a c_int; a failure leaves the socket as it was.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&raw const bytes).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// One open Socket.IO connection on the main namespace.
pub struct Connection {
    engine: EngineClient,
    pacer: Pacer,
    /// Items read while waiting for the server to acknowledge the connection.
    backlog: VecDeque<Received>,
    pending: Option<PendingBinary>,
    ended: Option<Ended>,
}

/// One step of reading.
enum Step {
    Item(Received),
    Connected,
    Ended(Ended),
    Nothing,
}

impl Connection {
    /// Connects to `url` (`http://host:port`) and waits until the server has
    /// acknowledged the Socket.IO session, all within `timeout`.
    pub async fn open(url: &str, timeout: Duration) -> Result<Connection, String> {
        match tokio::time::timeout(timeout, Self::open_inner(url)).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "no Socket.IO connection within {}s",
                timeout.as_secs()
            )),
        }
    }

    async fn open_inner(url: &str) -> Result<Connection, String> {
        let parsed = url::Url::parse(&format!("{}/socket.io/", url.trim_end_matches('/')))
            .map_err(|e| format!("invalid monitor URL: {e}"))?;
        // WebSocket only: rust_engineio's long-polling transport was seen to
        // cut a packet in two and stall. claude-mpm's monitor (aiohttp) and
        // any Socket.IO v4+ server accept a direct WebSocket connection.
        let port = parsed.port_or_known_default();
        let before = socket_fds();
        let engine = EngineBuilder::new(parsed)
            .build_websocket()
            .await
            .map_err(|e| reason(&e))?;
        let fd = port.and_then(|p| transport_socket(&before, p));
        engine.connect().await.map_err(|e| reason(&e))?;
        let mut conn = Connection {
            engine,
            pacer: Pacer {
                fd,
                ..Pacer::default()
            },
            backlog: VecDeque::new(),
            pending: None,
            ended: None,
        };
        conn.send("0".to_string()).await?;
        loop {
            match conn.step().await {
                Step::Connected => return Ok(conn),
                Step::Item(item) => conn.backlog.push_back(item),
                Step::Ended(Ended::Lost(r) | Ended::Unparseable { reason: r, .. }) => {
                    return Err(r)
                }
                Step::Nothing => {}
            }
        }
    }

    /// The next item, or how the connection ended. Cancel-safe: nothing is
    /// lost when the future is dropped between packets.
    pub async fn next(&mut self) -> Result<Received, Ended> {
        loop {
            if let Some(item) = self.backlog.pop_front() {
                return Ok(item);
            }
            if let Some(end) = &self.ended {
                return Err(end.clone());
            }
            match self.step().await {
                Step::Item(item) => return Ok(item),
                Step::Ended(mut end) => {
                    // An event whose attachments were still awaited is lost
                    // with the connection; when the frame the transport
                    // could not decode was one of them, it is that event.
                    let pending = self.pending.take().map(|p| {
                        let reason = match &mut end {
                            Ended::Unparseable { reason, reported } => {
                                *reported = true;
                                format!(
                                    "a binary attachment the transport could not decode: {reason}"
                                )
                            }
                            Ended::Lost(_) => {
                                "a binary event cut off by the end of the connection".to_string()
                            }
                        };
                        Received::Unusable {
                            name: p.name,
                            reason,
                            text: String::new(),
                        }
                    });
                    self.ended = Some(end);
                    if let Some(item) = pending {
                        return Ok(item);
                    }
                }
                Step::Connected | Step::Nothing => {}
            }
        }
    }

    /// The next engine.io packet: at once when one is buffered, else once
    /// enough is (see [`LOW_WATER`]). The stream keeps its state between
    /// polls: nothing is lost when this future is dropped.
    async fn next_packet(&mut self) -> Option<Result<EnginePacket, rust_engineio::Error>> {
        if let Some(p) = self.engine.next().now_or_never() {
            return p;
        }
        let Some(fd) = self.pacer.fd else {
            return self.engine.next().await;
        };
        if self.pacer.dense {
            if !self.pacer.low {
                set_low_water(fd, LOW_WATER);
                self.pacer.low = true;
            }
            if let Ok(p) = tokio::time::timeout(LOW_WAIT, self.engine.next()).await {
                return p;
            }
            // Lowering it signals what is buffered, if anything.
            set_low_water(fd, 1);
            self.pacer.low = false;
        }
        let began = Instant::now();
        let p = self.engine.next().await;
        self.pacer.dense = began.elapsed() < DENSE_WAIT;
        p
    }

    /// Reads one engine.io packet and decodes it.
    async fn step(&mut self) -> Step {
        let packet = match self.next_packet().await {
            None => return Step::Ended(Ended::Lost("the connection was closed".into())),
            Some(Err(e)) => {
                let why = reason(&e);
                return Step::Ended(if frame_lost(&e) {
                    Ended::Unparseable {
                        reason: why,
                        reported: false,
                    }
                } else {
                    Ended::Lost(why)
                });
            }
            Some(Ok(p)) => p,
        };
        match packet.packet_id {
            EnginePacketId::Message | EnginePacketId::MessageBinary => {}
            EnginePacketId::Close => {
                return Step::Ended(Ended::Lost("the server closed the connection".into()))
            }
            _ => return Step::Nothing,
        }
        if let Some(p) = &mut self.pending {
            p.bytes += packet.data.len();
            p.remaining -= 1;
            if p.remaining == 0 {
                let p = self.pending.take().expect("pending checked above");
                return Step::Item(Received::Binary {
                    name: p.name,
                    bytes: p.bytes,
                });
            }
            return Step::Nothing;
        }
        let text = match std::str::from_utf8(&packet.data) {
            Ok(t) => t,
            Err(_) => {
                return Step::Item(Received::Unusable {
                    name: None,
                    reason: format!(
                        "a binary frame of {} bytes outside any binary event",
                        packet.data.len()
                    ),
                    text: String::new(),
                })
            }
        };
        self.handle_text(text).await
    }

    async fn handle_text(&mut self, text: &str) -> Step {
        let unusable = |name: Option<String>, reason: String| {
            Step::Item(Received::Unusable {
                name,
                reason,
                text: text.to_string(),
            })
        };
        let header = match decode(text) {
            Ok(h) => h,
            Err(e) => return unusable(None, format!("not a Socket.IO packet: {e}")),
        };
        if header.nsp != "/" {
            return unusable(
                None,
                format!(
                    "sent to namespace {}, which the recorder did not join",
                    header.nsp
                ),
            );
        }
        match header.kind {
            Kind::Connect => Step::Connected,
            Kind::Disconnect => {
                Step::Ended(Ended::Lost("the server ended the Socket.IO session".into()))
            }
            Kind::ConnectError => {
                let message = serde_json::from_str::<Value>(header.data)
                    .ok()
                    .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or_else(|| header.data.to_string());
                Step::Ended(Ended::Lost(format!(
                    "the server refused the connection: {}",
                    crate::error::one_line(&message)
                )))
            }
            Kind::Event => {
                if let Some(id) = header.ack_id {
                    // The server asked for an acknowledgement: an empty one.
                    let _ = self.send(format!("3{id}[]")).await;
                }
                if let Some((name, first)) = parse_event(header.data) {
                    return Step::Item(Received::Parsed { name, first });
                }
                match split_event(header.data) {
                    Ok((name, args)) => Step::Item(Received::Event { name, args }),
                    Err(e) => unusable(None, e),
                }
            }
            Kind::Ack => unusable(
                None,
                "an acknowledgement the recorder did not ask for".into(),
            ),
            Kind::BinaryEvent | Kind::BinaryAck => {
                let name = (header.kind == Kind::BinaryEvent)
                    .then(|| split_event(header.data).ok().map(|(n, _)| n))
                    .flatten();
                if header.attachments == 0 {
                    return Step::Item(Received::Binary { name, bytes: 0 });
                }
                self.pending = Some(PendingBinary {
                    name,
                    remaining: header.attachments,
                    bytes: 0,
                });
                Step::Nothing
            }
        }
    }

    async fn send(&self, text: String) -> Result<(), String> {
        self.engine
            .emit(EnginePacket::new(EnginePacketId::Message, text))
            .await
            .map_err(|e| reason(&e))
    }

    /// Emits `event` with one argument.
    pub async fn emit(&self, event: &str, data: &Value) -> Result<(), String> {
        self.send(format!("2{}", serde_json::json!([event, data])))
            .await
    }

    /// Ends the Socket.IO session and closes the transport.
    pub async fn close(&self) {
        let _ = self.send("1".to_string()).await;
        let _ = self.engine.disconnect().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_headers() {
        let h = decode(r#"2["claude_event",{"a":1}]"#).unwrap();
        assert_eq!(h.kind, Kind::Event);
        assert_eq!(h.nsp, "/");
        assert_eq!(h.ack_id, None);
        assert_eq!(h.data, r#"["claude_event",{"a":1}]"#);

        let h = decode(r#"51-/admin,7["x",{"_placeholder":true,"num":0}]"#).unwrap();
        assert_eq!(h.kind, Kind::BinaryEvent);
        assert_eq!(h.attachments, 1);
        assert_eq!(h.nsp, "/admin");
        assert_eq!(h.ack_id, Some(7));

        let h = decode(r#"0{"sid":"abc"}"#).unwrap();
        assert_eq!((h.kind, h.data), (Kind::Connect, r#"{"sid":"abc"}"#));
        assert_eq!(decode("1").unwrap().kind, Kind::Disconnect);
        assert_eq!(decode("0/admin").unwrap().nsp, "/admin");
    }

    #[test]
    fn refuses_malformed_headers_without_panicking() {
        for bad in ["", "9[]", "5x-[]", "5[]", "299999999999999999999999[]", "é"] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
    }

    /// The one-pass reading gives what the two passes (raw split, then the
    /// first argument parsed) give, on every real payload, as python-socketio
    /// and as serde_json write them; anything else is left to the two passes.
    #[test]
    fn one_pass_reading_equals_the_two_passes() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures");
        let mut payloads: Vec<(String, String)> = Vec::new();
        for capture in [
            "claude-mpm-monitor-capture.jsonl",
            "claude-code-2.1/a-mpm-fast/monitor-capture.jsonl",
            "claude-code-2.1/a-mpm-full/monitor-capture.jsonl",
        ] {
            for line in std::fs::read_to_string(root.join(capture)).unwrap().lines() {
                let Ok(v) = serde_json::from_str::<Value>(line) else {
                    continue;
                };
                let name = v["event"].as_str().unwrap_or("claude_event").to_string();
                let data = serde_json::to_string(&v["data"]).unwrap();
                // python-socketio's spacing and key order: the line's own text of `data`.
                let own = line
                    .split_once("\"data\": ")
                    .and_then(|(_, d)| d.trim_end().strip_suffix('}'))
                    .map(str::to_string);
                payloads.push((name.clone(), data));
                payloads.extend(own.map(|d| (name.clone(), d)));
            }
        }
        for hooks in [
            "claude-code-hooks.jsonl",
            "claude-code-2.1/a-mpm-full/hooks.jsonl",
        ] {
            for line in std::fs::read_to_string(root.join(hooks)).unwrap().lines() {
                payloads.push(("claude_event".into(), line.to_string()));
            }
        }
        assert!(payloads.len() > 200, "{} payloads", payloads.len());
        let mut compared = 0;
        for (name, data) in &payloads {
            let text = format!("[\"{name}\", {data}, 7]");
            let two_passes = split_event(&text).ok().and_then(|(n, args)| {
                let first = args
                    .first()
                    .map(|a| serde_json::from_str::<Value>(a.get()).ok());
                match first {
                    Some(None) => None,
                    Some(Some(v)) => Some((n, Some(v))),
                    None => Some((n, None)),
                }
            });
            if two_passes.is_some() {
                compared += 1;
            }
            assert_eq!(parse_event(&text), two_passes, "{text}");
        }
        // Every payload read by both (the python-socketio texts included).
        assert_eq!(compared, payloads.len());

        let mut deep = String::from("1");
        for _ in 0..400 {
            deep = format!("[{deep}]");
        }
        for other in [
            r#"[{"a":1}]"#.to_string(),
            "[]".into(),
            "[1,2]".into(),
            r#"["x",{"a":1}"#.into(),
            r#"["x","\ud800"]"#.into(),
            format!(r#"["x",{deep}]"#),
        ] {
            assert_eq!(parse_event(&other), None, "{other}");
        }
        assert_eq!(parse_event(r#"["x"]"#), Some(("x".into(), None)));
    }

    #[test]
    fn splits_events_without_a_depth_limit() {
        let mut deep = String::from("1");
        for _ in 0..400 {
            deep = format!("[{deep}]");
        }
        let (name, args) = split_event(&format!(r#"["claude_event",{{"x":{deep}}},2]"#)).unwrap();
        assert_eq!(name, "claude_event");
        assert_eq!(args.len(), 2);
        assert!(serde_json::from_str::<Value>(args[0].get()).is_err());
        assert_eq!(args[1].get(), "2");

        let (name, args) = split_event(r#"[{"a":1}]"#).unwrap();
        assert_eq!((name.as_str(), args.len()), ("message", 1));
        assert!(split_event("[]").is_err());
        assert!(split_event(r#"{"a":1}"#).is_err());
        assert!(split_event("[1,").is_err());
    }
}
