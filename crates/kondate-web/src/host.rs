//! Requests must name this server: a `Host` that is a domain name other than `localhost`,
//! the host of `server.public_url` or one in `server.allowed_hosts` is refused with 421.
//!
//! This stops DNS rebinding: a web page on an attacker's domain whose name is made to
//! resolve to 127.0.0.1 could otherwise have a browser on the same machine call a
//! loopback-only kondate. Such a request names the attacker's domain in `Host`. An IP
//! address in `Host` cannot be rebound, so IP addresses are always accepted, as is a
//! request without `Host` (not from a browser).

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::ApiError;

/// The names this server answers to (lower case, without port); shared, as it is handed to
/// every request.
#[derive(Debug, Clone)]
pub struct AllowedHosts(std::sync::Arc<Vec<String>>);

impl AllowedHosts {
    /// From the configuration: `localhost`, the public URL's host and the allowed hosts.
    pub fn from_config(config: &kondate_core::Config) -> AllowedHosts {
        let mut names = vec!["localhost".to_string()];
        if let Some(u) = config
            .server
            .public_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            && let Some(h) = u.host_str()
        {
            names.push(h.to_ascii_lowercase());
        }
        names.extend(
            config
                .server
                .allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase()),
        );
        AllowedHosts(std::sync::Arc::new(names))
    }

    /// Whether a request with `Host: host` is for this server.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        // `[::1]:7878`, `127.0.0.1:7878`, `name:7878`, `name`.
        let name = if let Some(rest) = host.strip_prefix('[') {
            match rest.split_once(']') {
                Some((ip, _)) => return ip.parse::<std::net::Ipv6Addr>().is_ok(),
                None => return false,
            }
        } else {
            host.rsplit_once(':')
                .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
                .map_or(host.as_str(), |(n, _)| n)
        };
        if name.parse::<std::net::IpAddr>().is_ok() {
            return true;
        }
        let name = name.trim_end_matches('.');
        self.0.iter().any(|a| a == name)
    }
}

pub(crate) async fn check(State(hosts): State<AllowedHosts>, req: Request, next: Next) -> Response {
    if let Some(host) = req.headers().get(header::HOST) {
        let text = host.to_str().unwrap_or("");
        if !hosts.allows(text) {
            return ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                "misdirected_request",
                format!(
                    "`{text}` is not a name of this server; reach it by its IP address, \
                     localhost or server.public_url's host, or add the name to \
                     server.allowed_hosts"
                ),
            )
            .into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ip_addresses_and_configured_names_are_this_server() {
        let mut c = kondate_core::Config::default();
        c.server.public_url = Some("https://Kondate.example.com/".into());
        c.server.allowed_hosts = vec!["kondate.internal".into()];
        let h = AllowedHosts::from_config(&c);
        for ok in [
            "127.0.0.1:7878",
            "127.0.0.1",
            "[::1]:7878",
            "10.1.2.3:80",
            "localhost:7878",
            "LOCALHOST",
            "kondate.example.com",
            "kondate.example.com.",
            "kondate.internal:7878",
        ] {
            assert!(h.allows(ok), "{ok}");
        }
        for refused in [
            "evil.example",
            "evil.example:7878",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "[::1",
            "",
        ] {
            assert!(!h.allows(refused), "{refused}");
        }
    }
}
