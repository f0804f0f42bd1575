//! A synchronous rtnetlink socket with the few link operations a short-lived
//! CNI plugin needs. No async runtime: the plugin lives for milliseconds.

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST,
};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("netlink socket: {0}")]
    Io(#[from] io::Error),
    #[error("netlink {op} failed: {source}")]
    Request { op: &'static str, source: io::Error },
    #[error("cannot decode netlink reply: {0}")]
    Decode(String),
    #[error("link {name} did not appear within {waited_ms} ms")]
    Timeout { name: String, waited_ms: u128 },
}

/// What Linen needs to know about a network device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub up: bool,
    pub mtu: Option<u32>,
    /// Index of the bridge (or bond) the device is enslaved to.
    pub master: Option<u32>,
    /// `IFLA_INFO_KIND`: `bridge`, `veth`, `tun`, ...
    pub kind: Option<String>,
}

pub struct Netlink {
    socket: Socket,
    seq: u32,
}

impl Netlink {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Netlink, Error> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        set_recv_timeout(&socket, Some(Duration::from_secs(5)))?;
        Ok(Netlink { socket, seq: 0 })
    }

    pub fn link_by_name(&mut self, name: &str) -> Result<Option<Link>, Error> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.get_link(msg)
    }

    pub fn link_by_index(&mut self, index: u32) -> Result<Option<Link>, Error> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.get_link(msg)
    }

    fn get_link(&mut self, msg: LinkMessage) -> Result<Option<Link>, Error> {
        match self.request(RouteNetlinkMessage::GetLink(msg), NLM_F_REQUEST, "get link") {
            Ok(replies) => Ok(replies.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_from(&l)),
                _ => None,
            })),
            Err(Error::Request { source, .. }) if source.raw_os_error() == Some(libc::ENODEV) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    pub fn set_up(&mut self, index: u32) -> Result<(), Error> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.request(
            RouteNetlinkMessage::SetLink(msg),
            NLM_F_REQUEST | NLM_F_ACK,
            "set link up",
        )
        .map(drop)
    }

    pub fn set_master(&mut self, index: u32, master: u32) -> Result<(), Error> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::Controller(master));
        self.request(
            RouteNetlinkMessage::SetLink(msg),
            NLM_F_REQUEST | NLM_F_ACK,
            "set link master",
        )
        .map(drop)
    }

    /// Waits for a device to exist, woken by the kernel's link notifications
    /// rather than by sleeping.
    pub fn wait_for_link(&mut self, name: &str, timeout: Duration) -> Result<Link, Error> {
        // Subscribe before looking, so a device created in between is seen.
        let mut events = Socket::new(NETLINK_ROUTE)?;
        events.bind_auto()?;
        events.add_membership(libc::RTNLGRP_LINK)?;
        if let Some(l) = self.link_by_name(name)? {
            return Ok(l);
        }
        let start = Instant::now();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(Error::Timeout {
                    name: name.into(),
                    waited_ms: start.elapsed().as_millis(),
                });
            }
            set_recv_timeout(&events, Some(left))?;
            let n = match events.recv(&mut &mut buf[..], 0) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                // The event queue overflowed: we may have missed it, so look.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => 0,
                Err(e) => return Err(e.into()),
            };
            // Other devices' notifications (veths of parallel ADDs) may not
            // decode; they only mean "look again".
            let seen = match decode_all(&buf[..n]) {
                Ok(msgs) => msgs.into_iter().any(|(_, m)| match m {
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => {
                        link_from(&l).name == name
                    }
                    _ => false,
                }),
                Err(_) => true,
            };
            if seen || n == 0 {
                if let Some(l) = self.link_by_name(name)? {
                    return Ok(l);
                }
            }
        }
    }

    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: &'static str,
    ) -> Result<Vec<RouteNetlinkMessage>, Error> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        nl.finalize();
        let mut out = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut out);
        self.socket.send(&out, 0)?;

        let mut replies = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = self.socket.recv(&mut &mut buf[..], 0)?;
            // A reply to an earlier request that timed out is not ours.
            for (seq, payload) in decode_all(&buf[..n])? {
                if seq != self.seq {
                    continue;
                }
                match payload {
                    NetlinkPayload::InnerMessage(m) => {
                        replies.push(m);
                        if flags & NLM_F_ACK == 0 {
                            return Ok(replies);
                        }
                    }
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(replies),
                            Some(code) => Err(Error::Request {
                                op,
                                source: io::Error::from_raw_os_error(-code.get()),
                            }),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(replies),
                    _ => {}
                }
            }
        }
    }
}

/// Every message in one datagram, with its sequence number.
fn decode_all(mut bytes: &[u8]) -> Result<Vec<(u32, NetlinkPayload<RouteNetlinkMessage>)>, Error> {
    let mut out = Vec::new();
    while bytes.len() >= 16 {
        let len = u32::from_ne_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
        if len < 16 || len > bytes.len() {
            break;
        }
        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes[..len])
            .map_err(|e| Error::Decode(e.to_string()))?;
        out.push((msg.header.sequence_number, msg.payload));
        bytes = bytes.get((len + 3) & !3..).unwrap_or(&[]);
    }
    Ok(out)
}

fn link_from(l: &LinkMessage) -> Link {
    let mut link = Link {
        index: l.header.index,
        name: String::new(),
        up: l.header.flags.contains(LinkFlags::Up),
        mtu: None,
        master: None,
        kind: None,
    };
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Mtu(m) => link.mtu = Some(*m),
            LinkAttribute::Controller(m) => link.master = Some(*m),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        link.kind = Some(kind_name(k));
                    }
                }
            }
            _ => {}
        }
    }
    link
}

fn kind_name(k: &InfoKind) -> String {
    match k {
        InfoKind::Bridge => "bridge".into(),
        InfoKind::Veth => "veth".into(),
        InfoKind::Tun => "tun".into(),
        InfoKind::Dummy => "dummy".into(),
        InfoKind::Other(s) => s.clone(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn set_recv_timeout(socket: &Socket, timeout: Option<Duration>) -> Result<(), Error> {
    let tv = match timeout {
        Some(d) => libc::timeval {
            tv_sec: d.as_secs() as libc::time_t,
            tv_usec: d.subsec_micros().max(if d.is_zero() { 0 } else { 1 }) as libc::suseconds_t,
        },
        None => libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
    };
    // SAFETY: a valid socket fd and a correctly sized timeval.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error().into());
    }
    Ok(())
}
