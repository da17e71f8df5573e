//! What a `/config` request asks for, read from the request alone: the address it comes from
//! (the peer, or, when the peer is one of our reverse proxies (`TRUSTED_PROXIES`), the client it
//! names in `X-Forwarded-For`; `/config` trusts nothing else) and the SMBIOS UUID in its query.
//!
//! Pure and total: any query and header text gives an answer, never a panic (the
//! `config_request` fuzz target checks it).

use std::net::IpAddr;

use ipnet::IpNet;

use super::ServerLookup;
use crate::store::Server;

/// The networks whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`, empty by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses a comma-separated list of CIDR networks or single addresses.
    pub fn parse(text: &str) -> Result<TrustedProxies, String> {
        let mut networks = Vec::new();
        for item in text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            let network = item
                .parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{item:?} is not a CIDR network or an IP address"))?;
            networks.push(network);
        }
        Ok(TrustedProxies(networks))
    }

    /// Whether `address` is in one of the networks.
    pub fn contains(&self, address: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(&address))
    }
}

/// `::ffff:a.b.c.d` is the IPv4 address a.b.c.d.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        IpAddr::V4(_) => address,
    }
}

/// One `X-Forwarded-For` hop as an address: `ip`, `ip:port`, `[v6]` or `[v6]:port`
/// (surrounding spaces ignored); `None` for anything else (`unknown`, an obfuscated name,
/// garbage).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(address) = hop.parse::<IpAddr>() {
        return Some(address);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let port_ok = after.is_empty()
            || after
                .strip_prefix(':')
                .is_some_and(|port| port.parse::<u16>().is_ok());
        return port_ok
            .then(|| inside.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6))
            .flatten();
    }
    hop.parse::<std::net::SocketAddrV4>()
        .ok()
        .map(|socket| IpAddr::V4(*socket.ip()))
}

/// The client's address: the peer, unless the peer is a trusted proxy; then the rightmost
/// hop of `X-Forwarded-For` that is not a trusted proxy itself (addresses further left could
/// be forged by the client).
///
/// `forwarded_for` holds every `X-Forwarded-For` header line in the order received; they are
/// read as one list (a proxy such as HAProxy with `option forwardfor` adds its own line
/// after the client's). Hops may carry a port (`ip:port`, `[v6]:port`). Fails closed: when a
/// hop on the way from the peer to the client cannot be read, or every hop is a trusted
/// proxy (or there is none), the peer counts, never a hop the client could have written.
pub fn client_address(peer: IpAddr, forwarded_for: &[&str], trusted: &TrustedProxies) -> IpAddr {
    let peer = canonical(peer);
    if !trusted.contains(peer) {
        return peer;
    }
    let hops = forwarded_for
        .iter()
        .flat_map(|line| line.split(','))
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        if hop.trim().is_empty() {
            // `a,,b` or a trailing comma: nothing there, as every proxy reads it.
            continue;
        }
        let Some(address) = parse_hop(hop).map(canonical) else {
            return peer;
        };
        if !trusted.contains(address) {
            return address;
        }
    }
    peer
}

/// What a `/config` request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRequest {
    /// The address the request comes from (see [`client_address`]).
    pub source: IpAddr,
    /// The SMBIOS UUID the node sent, trimmed: `None` when the query has none, an empty one,
    /// or one Talos left unfilled (`${uuid}`). With several, the last counts.
    pub uuid: Option<String>,
}

impl ConfigRequest {
    /// Reads a request: `query` is the raw query string (without `?`), `peer` the TCP peer,
    /// `forwarded_for` every `X-Forwarded-For` header line in order. Percent-escapes that are not UTF-8 decode
    /// to U+FFFD, as every form decoder does; such a UUID matches no server.
    pub fn parse(
        query: &str,
        peer: IpAddr,
        forwarded_for: &[&str],
        trusted: &TrustedProxies,
    ) -> ConfigRequest {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
        let uuid = pairs
            .iter()
            .rev()
            .find(|(key, _)| key == "uuid")
            .map(|(_, uuid)| uuid.trim())
            .filter(|uuid| !uuid.is_empty() && !uuid.contains("${"))
            .map(str::to_owned);
        ConfigRequest {
            source: client_address(peer, forwarded_for, trusted),
            uuid,
        }
    }

    /// How the server is looked up: by its UUID when the node sent one, else by the address
    /// the request comes from (the original's behaviour; a server found that way is served
    /// only when it has no recorded UUID, see [`ServerLookup::Ipv4`]).
    pub fn lookup(&self) -> ServerLookup {
        match &self.uuid {
            Some(uuid) => ServerLookup::uuid(uuid),
            None => ServerLookup::ipv4(self.source.to_string()),
        }
    }
}

/// Whether `address` is the server's IPv4 address or inside its IPv6 network. Providers list
/// the IPv6 network as its bare network address (`2a01:4f8:111:4221::`): without a prefix it
/// is taken as a /64, the size Hetzner assigns.
pub fn is_server_address(server: &Server, address: IpAddr) -> bool {
    let inventory = &server.inventory;
    match canonical(address) {
        IpAddr::V4(v4) => {
            inventory
                .ipv4
                .as_deref()
                .and_then(|ipv4| ipv4.trim().parse::<std::net::Ipv4Addr>().ok())
                == Some(v4)
        }
        address @ IpAddr::V6(_) => inventory.ipv6.as_deref().is_some_and(|network| {
            let network = network.trim();
            network
                .parse::<IpNet>()
                .ok()
                .or_else(|| {
                    network
                        .parse::<std::net::Ipv6Addr>()
                        .ok()
                        .and_then(|base| ipnet::Ipv6Net::new(base, 64).ok())
                        .map(IpNet::V6)
                })
                .is_some_and(|net| net.contains(&address))
        }),
    }
}

impl ConfigRequest {
    /// Whether this request identifies `server` (the one [`ConfigRequest::lookup`] found)
    /// well enough to be served its config:
    /// - with a UUID, when the request comes from the server's IPv4 address or IPv6 network;
    /// - without one, only when `allow_ip_only` (`CONFIG_ALLOW_IP_ONLY`) and the server has
    ///   no recorded SMBIOS UUID and was never bootstrapped by talos-manager (whose images
    ///   always send `?uuid=`), and the request comes from its IPv4 address.
    pub fn may_serve(&self, server: &Server, allow_ip_only: bool) -> bool {
        match &self.uuid {
            Some(uuid) => {
                server
                    .uuid
                    .as_deref()
                    .is_some_and(|recorded| recorded.trim().eq_ignore_ascii_case(uuid))
                    && is_server_address(server, self.source)
            }
            None => {
                allow_ip_only
                    && server.uuid.is_none()
                    && server.bootstrap_disk.is_none()
                    && self.source.is_ipv4()
                    && is_server_address(server, self.source)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_lines(peer: &str, forwarded_for: &[&str], trusted: &str, expect: &str) {
        let trusted = TrustedProxies::parse(trusted).unwrap();
        let address = client_address(peer.parse().unwrap(), forwarded_for, &trusted);
        assert_eq!(address.to_string(), expect);
    }

    #[track_caller]
    fn check(peer: &str, forwarded_for: Option<&str>, trusted: &str, expect: &str) {
        let lines: Vec<&str> = forwarded_for.into_iter().collect();
        check_lines(peer, &lines, trusted, expect);
    }

    #[test]
    fn untrusted_peers_are_the_client_whatever_they_claim() {
        check("203.0.113.7", Some("198.51.100.1"), "", "203.0.113.7");
        check(
            "203.0.113.7",
            Some("198.51.100.1"),
            "10.0.0.0/8",
            "203.0.113.7",
        );
    }

    #[test]
    fn trusted_proxies_name_the_client() {
        check(
            "10.0.0.2",
            Some("198.51.100.1"),
            "10.0.0.0/8",
            "198.51.100.1",
        );
        // The client put a forged address first; our proxy appended the real one.
        check(
            "10.0.0.2",
            Some("1.2.3.4, 198.51.100.1"),
            "10.0.0.0/8",
            "198.51.100.1",
        );
        // Two proxies of ours in a row.
        check(
            "10.0.0.2",
            Some("198.51.100.1, 10.0.0.3"),
            "10.0.0.0/8",
            "198.51.100.1",
        );
        check("10.0.0.2", None, "10.0.0.0/8", "10.0.0.2");
        check(
            "::ffff:10.0.0.2",
            Some("2001:db8::1"),
            "10.0.0.2",
            "2001:db8::1",
        );
    }

    #[test]
    fn every_header_line_is_read_in_order() {
        // HAProxy `option forwardfor`: the client's forged line, then the proxy's own.
        check_lines(
            "10.0.0.2",
            &["203.0.113.10", "198.51.100.77"],
            "10.0.0.0/8",
            "198.51.100.77",
        );
        check_lines(
            "10.0.0.2",
            &["203.0.113.10, 1.2.3.4", "198.51.100.77, 10.0.0.9"],
            "10.0.0.0/8",
            "198.51.100.77",
        );
    }

    #[test]
    fn hops_with_ports_are_understood() {
        check(
            "10.0.0.2",
            Some("203.0.113.10, 198.51.100.7:4711"),
            "10.0.0.0/8",
            "198.51.100.7",
        );
        check(
            "10.0.0.2",
            Some("203.0.113.10, [2001:db8::7]:4711"),
            "10.0.0.0/8",
            "2001:db8::7",
        );
        check(
            "10.0.0.2",
            Some("203.0.113.10, [2001:db8::8]"),
            "10.0.0.0/8",
            "2001:db8::8",
        );
        check(
            "10.0.0.2",
            Some("198.51.100.7:4711, 10.0.0.3:80"),
            "10.0.0.0/8",
            "198.51.100.7",
        );
    }

    #[test]
    fn unreadable_hops_and_all_trusted_lists_fail_closed() {
        check("10.0.0.2", Some("garbage"), "10.0.0.2", "10.0.0.2");
        // The real hop does not parse: the forged one further left must not win.
        check(
            "10.0.0.2",
            Some("203.0.113.10, unknown"),
            "10.0.0.0/8",
            "10.0.0.2",
        );
        check(
            "10.0.0.2",
            Some("203.0.113.10, 198.51.100.7:99999"),
            "10.0.0.0/8",
            "10.0.0.2",
        );
        check(
            "10.0.0.2",
            Some("[2001:db8::1]x, 10.0.0.3"),
            "10.0.0.0/8",
            "10.0.0.2",
        );
        // Every hop is one of ours: the client's first hop never counts.
        check(
            "10.0.0.2",
            Some("10.9.9.9, 10.0.0.3"),
            "10.0.0.0/8",
            "10.0.0.2",
        );
        check("10.0.0.2", Some(""), "10.0.0.0/8", "10.0.0.2");
        // A hop past an unreadable one is not reached.
        check(
            "10.0.0.2",
            Some("198.51.100.1, ???, 10.0.0.3"),
            "10.0.0.0/8",
            "10.0.0.2",
        );
        // Empty items are skipped, as proxies read them.
        check(
            "10.0.0.2",
            Some("198.51.100.1,, "),
            "10.0.0.0/8",
            "198.51.100.1",
        );
    }

    #[test]
    fn the_uuid_is_read_from_the_query() {
        let read = |query: &str| {
            ConfigRequest::parse(
                query,
                "203.0.113.7".parse().unwrap(),
                &[],
                &TrustedProxies::default(),
            )
        };
        let uuid = |query: &str| read(query).uuid;
        assert_eq!(uuid("uuid=ABC-1"), Some("ABC-1".into()));
        assert_eq!(uuid("uuid=%20abc%20&x=1"), Some("abc".into()));
        assert_eq!(uuid("uuid=a&uuid=b"), Some("b".into()));
        assert_eq!(uuid("uuid=$%7Buuid%7D"), None);
        assert_eq!(uuid("uuid="), None);
        assert_eq!(uuid(""), None);
        assert_eq!(uuid("uuid=%FF"), Some("\u{fffd}".into()));
        assert_eq!(read("uuid=ABC").lookup(), ServerLookup::uuid("abc"));
        assert_eq!(read("").lookup(), ServerLookup::ipv4("203.0.113.7"));
    }

    #[test]
    fn trusted_proxies_parse_networks_and_addresses() {
        assert!(TrustedProxies::parse("10.0.0.0/8, 192.0.2.1,2001:db8::/32").is_ok());
        assert_eq!(
            TrustedProxies::parse("10.0.0.0/8,cloudflare").unwrap_err(),
            "\"cloudflare\" is not a CIDR network or an IP address"
        );
        assert_eq!(
            TrustedProxies::parse("").unwrap(),
            TrustedProxies::default()
        );
    }
}
