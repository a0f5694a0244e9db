//! How a member is dialled: the name its certificate must carry, taken from its membership
//! entry, and the host of a peer URL.

use crate::types::Member;

/// The name a member is dialled by, which its certificate must carry. A member added by
/// `member add` has no name until it starts and publishes one (etcd's MemberAdd carries only
/// peer URLs): until then it is dialled, and its certificate checked, by the host of its peer
/// URL, which its certificate names too.
pub(crate) fn dial_name(node: &Member) -> String {
    match (&node.name, node.peer_urls.first()) {
        (name, _) if !name.is_empty() => name.clone(),
        (_, Some(url)) => url_host(url).to_string(),
        (name, None) => name.clone(),
    }
}

/// The host of a peer URL: `https://127.0.0.1:2380` -> `127.0.0.1`, `https://[::1]:2380` -> `::1`.
pub(crate) fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    }
}

#[cfg(test)]
mod tests {
    use super::url_host;

    #[test]
    fn hosts_of_peer_urls() {
        assert_eq!(url_host("https://127.0.0.1:2380"), "127.0.0.1");
        assert_eq!(url_host("https://[::1]:2380"), "::1");
        assert_eq!(url_host("https://node-4.example:2380/x"), "node-4.example");
        assert_eq!(url_host("127.0.0.1:2380"), "127.0.0.1");
    }
}
