//! The server's address for the `source`/`destination`/`measurement-agent` metadata: the
//! `--host-ip` override, else the logged host name resolved once to an address of the
//! peer's family (as the original chose), else the name itself, with one warning. A host
//! with no address of the peer's family is an error for that record: a measurement from an
//! IPv4 address to an IPv6 one is not a path that exists.

use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};

/// Resolves host names once per run.
#[derive(Debug, Default)]
pub struct Resolver {
    fixed: Option<String>,
    cache: HashMap<(String, Family), Result<String, String>>,
    /// The last answer: a log names one host, so this is the hot path and allocates
    /// nothing.
    last: Option<(String, Family, Result<String, String>)>,
}

/// The address family wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Family {
    V4,
    V6,
    Any,
}

impl Resolver {
    /// A resolver that answers `fixed` for every host, or looks names up when `None`.
    pub fn new(fixed: Option<String>) -> Self {
        Resolver {
            fixed,
            cache: HashMap::new(),
            last: None,
        }
    }

    /// The address to record for `host` talking to `peer`. `warn` is called once per name
    /// that does not resolve; a host without an address of the peer's family is an error.
    pub fn address<'a>(
        &'a mut self,
        host: &'a str,
        peer: &str,
        warn: impl FnOnce(&str),
    ) -> Result<&'a str, String> {
        if let Some(fixed) = &self.fixed {
            return Ok(fixed);
        }
        let family = match peer.parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => Family::V4,
            Ok(IpAddr::V6(_)) => Family::V6,
            Err(_) => Family::Any,
        };
        let hit = matches!(&self.last, Some((h, f, _)) if h == host && *f == family);
        if !hit {
            let key = (host.to_owned(), family);
            let address = self
                .cache
                .entry(key)
                .or_insert_with(|| match lookup(host, family) {
                    Lookup::Found(address) => Ok(address),
                    Lookup::Unknown => {
                        warn(&format!(
                            "cannot resolve host {host:?}; recording the name (give --host-ip)"
                        ));
                        Ok(host.to_owned())
                    }
                    Lookup::OtherFamily(other) => Err(format!(
                        "host {host:?} has no {} address to pair with the peer {peer} (it has {other}); give --host-ip",
                        if family == Family::V6 { "IPv6" } else { "IPv4" }
                    )),
                })
                .clone();
            self.last = Some((host.to_owned(), family, address));
        }
        match &self.last {
            Some((_, _, Ok(address))) => Ok(address),
            Some((_, _, Err(cause))) => Err(cause.clone()),
            None => Ok(host),
        }
    }
}

/// What a host name resolved to.
enum Lookup {
    /// An address of the wanted family.
    Found(String),
    /// Nothing.
    Unknown,
    /// Only addresses of the other family (the first one).
    OtherFamily(String),
}

fn lookup(host: &str, family: Family) -> Lookup {
    let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => match (host, 0).to_socket_addrs() {
            Ok(found) => found.map(|a| a.ip()).collect(),
            Err(_) => return Lookup::Unknown,
        },
    };
    let wanted = |ip: &&IpAddr| match family {
        Family::V4 => ip.is_ipv4(),
        Family::V6 => ip.is_ipv6(),
        Family::Any => true,
    };
    match (addresses.iter().find(wanted), addresses.first()) {
        (Some(ip), _) => Lookup::Found(ip.to_string()),
        (None, Some(other)) => Lookup::OtherFamily(other.to_string()),
        (None, None) => Lookup::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_literals_and_unresolvable_names() {
        let mut fixed = Resolver::new(Some("192.0.2.1".into()));
        assert_eq!(
            fixed.address("anything", "127.0.0.1", |_| panic!()),
            Ok("192.0.2.1")
        );
        let mut resolver = Resolver::new(None);
        assert_eq!(
            resolver.address("10.1.2.3", "127.0.0.1", |_| panic!()),
            Ok("10.1.2.3")
        );
        assert_eq!(
            resolver.address("localhost", "127.0.0.1", |_| panic!()),
            Ok("127.0.0.1")
        );
        let mut warned = 0;
        let name = "no-such-host.invalid";
        assert_eq!(
            resolver.address(name, "127.0.0.1", |_| warned += 1),
            Ok(name)
        );
        assert_eq!(
            resolver.address(name, "127.0.0.1", |_| warned += 1),
            Ok(name)
        );
        assert_eq!(warned, 1);
    }

    /// `DEST=[::1] HOST=10.1.2.3` once gave source ::1 and destination 10.1.2.3.
    #[test]
    fn a_host_is_never_paired_with_a_peer_of_the_other_family() {
        let mut resolver = Resolver::new(None);
        let cause = "host \"10.1.2.3\" has no IPv6 address to pair with the peer ::1 (it has 10.1.2.3); give --host-ip";
        for _ in 0..2 {
            assert_eq!(
                resolver.address("10.1.2.3", "::1", |_| panic!()),
                Err(cause.to_owned())
            );
        }
        assert_eq!(resolver.address("::1", "::2", |_| panic!()), Ok("::1"));
        assert_eq!(
            resolver.address("::1", "10.0.0.1", |_| panic!()),
            Err("host \"::1\" has no IPv4 address to pair with the peer 10.0.0.1 (it has ::1); give --host-ip".to_owned())
        );
    }
}
