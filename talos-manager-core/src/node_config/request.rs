//! What a `/config` request asks for, read from the request alone: the address it comes from
//! (the peer, or, when the peer is one of our reverse proxies (`TRUSTED_PROXIES`), the client it
//! names in `X-Forwarded-For`; `/config` trusts nothing else) and the SMBIOS UUID in its query.
//!
//! Pure and total: any query and header text gives an answer, never a panic (the
//! `config_request` fuzz target checks it).

use std::net::IpAddr;

use ipnet::IpNet;

use super::ServerLookup;

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

    fn contains(&self, address: IpAddr) -> bool {
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

/// The client's address: the peer, unless the peer is a trusted proxy; then the last address
/// of `X-Forwarded-For` that is not a trusted proxy itself (addresses further left could be
/// forged by the client).
pub fn client_address(
    peer: IpAddr,
    forwarded_for: Option<&str>,
    trusted: &TrustedProxies,
) -> IpAddr {
    let peer = canonical(peer);
    if !trusted.contains(peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    let hops: Vec<IpAddr> = header
        .split(',')
        .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
        .map(canonical)
        .collect();
    hops.iter()
        .rev()
        .find(|hop| !trusted.contains(**hop))
        .or(hops.first())
        .copied()
        .unwrap_or(peer)
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
    /// `forwarded_for` the `X-Forwarded-For` header. Percent-escapes that are not UTF-8 decode
    /// to U+FFFD, as every form decoder does; such a UUID matches no server.
    pub fn parse(
        query: &str,
        peer: IpAddr,
        forwarded_for: Option<&str>,
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
    /// the request comes from (the original's behaviour).
    pub fn lookup(&self) -> ServerLookup {
        match &self.uuid {
            Some(uuid) => ServerLookup::uuid(uuid),
            None => ServerLookup::ipv4(self.source.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(peer: &str, forwarded_for: Option<&str>, trusted: &str, expect: &str) {
        let trusted = TrustedProxies::parse(trusted).unwrap();
        let address = client_address(peer.parse().unwrap(), forwarded_for, &trusted);
        assert_eq!(address.to_string(), expect);
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
        check("10.0.0.2", Some("garbage"), "10.0.0.2", "10.0.0.2");
        check(
            "::ffff:10.0.0.2",
            Some("2001:db8::1"),
            "10.0.0.2",
            "2001:db8::1",
        );
    }

    #[test]
    fn the_uuid_is_read_from_the_query() {
        let read = |query: &str| {
            ConfigRequest::parse(
                query,
                "203.0.113.7".parse().unwrap(),
                None,
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
