//! The server's address for the `source`/`destination`/`measurement-agent` metadata: the
//! `--host-ip` override, else the logged host name resolved once (an address of the same
//! family as the peer, as the original chose), else the name itself, with one warning.

use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};

/// Resolves host names once per run.
#[derive(Debug, Default)]
pub struct Resolver {
    fixed: Option<String>,
    cache: HashMap<(String, Family), String>,
    /// The last answer: a log names one host, so this is the hot path and allocates
    /// nothing.
    last: Option<(String, Family, String)>,
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
    /// that does not resolve.
    pub fn address<'a>(
        &'a mut self,
        host: &'a str,
        peer: &str,
        warn: impl FnOnce(&str),
    ) -> &'a str {
        if let Some(fixed) = &self.fixed {
            return fixed;
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
                .or_insert_with(|| {
                    lookup(host, family).unwrap_or_else(|| {
                        warn(&format!(
                            "cannot resolve host {host:?}; recording the name (give --host-ip)"
                        ));
                        host.to_owned()
                    })
                })
                .clone();
            self.last = Some((host.to_owned(), family, address));
        }
        match &self.last {
            Some((_, _, address)) => address,
            None => host,
        }
    }
}

fn lookup(host: &str, family: Family) -> Option<String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(ip.to_string());
    }
    let addresses: Vec<IpAddr> = (host, 0).to_socket_addrs().ok()?.map(|a| a.ip()).collect();
    let wanted = |ip: &&IpAddr| match family {
        Family::V4 => ip.is_ipv4(),
        Family::V6 => ip.is_ipv6(),
        Family::Any => true,
    };
    addresses
        .iter()
        .find(wanted)
        .or(addresses.first())
        .map(IpAddr::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_literals_and_unresolvable_names() {
        let mut fixed = Resolver::new(Some("192.0.2.1".into()));
        assert_eq!(
            fixed.address("anything", "127.0.0.1", |_| panic!()),
            "192.0.2.1"
        );
        let mut resolver = Resolver::new(None);
        assert_eq!(
            resolver.address("10.1.2.3", "127.0.0.1", |_| panic!()),
            "10.1.2.3"
        );
        assert_eq!(
            resolver.address("localhost", "127.0.0.1", |_| panic!()),
            "127.0.0.1"
        );
        let mut warned = 0;
        let name = "no-such-host.invalid";
        assert_eq!(resolver.address(name, "127.0.0.1", |_| warned += 1), name);
        assert_eq!(resolver.address(name, "127.0.0.1", |_| warned += 1), name);
        assert_eq!(warned, 1);
    }
}
