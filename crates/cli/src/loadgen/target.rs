//! The server under load: its base URL, checked to be on this machine unless remote targets are
//! allowed explicitly.

use reqwest::Url;

/// Why a server URL is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    /// The URL does not parse.
    #[error("server URL {url:?} is not a valid URL: {reason}")]
    Invalid {
        /// The URL as given.
        url: String,
        /// The parser's reason.
        reason: String,
    },
    /// Not plain `http` (this client has no TLS).
    #[error("server URL {url:?}: only http:// is supported (no TLS), got scheme {scheme:?}")]
    Scheme {
        /// The URL as given.
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// The host is not a loopback address or `localhost`, and remote targets are not allowed.
    #[error("server host {host:?} is not on this machine (loopback: 127.0.0.0/8, ::1, localhost); load is only sent elsewhere when remote targets are allowed explicitly")]
    NotLoopback {
        /// The host as written in the URL.
        host: String,
    },
}

/// The base URL of an OpenAI-compatible server (no trailing `/v1`), e.g. `http://127.0.0.1:8080/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    base: Url,
}

impl Target {
    /// Checks `url` (`http://HOST:PORT`, optionally with a path prefix or a trailing `/v1`).
    /// Its host must be loopback — decided from the text of the URL, never by resolving a name —
    /// unless `allow_remote`.
    pub fn parse(url: &str, allow_remote: bool) -> Result<Self, TargetError> {
        let mut base = Url::parse(url).map_err(|e| TargetError::Invalid {
            url: url.into(),
            reason: e.to_string(),
        })?;
        if base.scheme() != "http" {
            return Err(TargetError::Scheme {
                url: url.into(),
                scheme: base.scheme().into(),
            });
        }
        let host = base.host_str().unwrap_or_default();
        let loopback = match host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
        {
            Ok(ip) => ip.is_loopback(),
            Err(_) => {
                host.eq_ignore_ascii_case("localhost") || host.eq_ignore_ascii_case("localhost.")
            }
        };
        if !loopback && !allow_remote {
            return Err(TargetError::NotLoopback {
                host: base.host_str().unwrap_or_default().to_string(),
            });
        }
        let path = base.path().trim_end_matches('/');
        let path = path.strip_suffix("/v1").unwrap_or(path).to_string();
        base.set_path(&format!("{path}/"));
        base.set_query(None);
        base.set_fragment(None);
        Ok(Self { base })
    }

    /// The full URL of `path` (relative, e.g. `v1/models`) on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `HOST:PORT` of the server (a default label).
    pub fn host_port(&self) -> String {
        let host = self.base.host_str().unwrap_or_default();
        match self.base.port_or_known_default() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_accepted_and_paths_normalised() {
        for (url, models) in [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/v1/models"),
            ("http://127.3.4.5:1/v1/", "http://127.3.4.5:1/v1/models"),
            ("http://localhost:9/v1", "http://localhost:9/v1/models"),
            ("http://LOCALHOST:9/", "http://localhost:9/v1/models"),
            ("http://[::1]:80/api/v1?x=1", "http://[::1]/api/v1/models"),
        ] {
            let t = Target::parse(url, false).unwrap();
            assert_eq!(t.url("v1/models"), models, "{url}");
        }
        assert_eq!(
            Target::parse("http://127.0.0.1:8080", false)
                .unwrap()
                .host_port(),
            "127.0.0.1:8080"
        );
    }

    #[test]
    fn other_hosts_are_refused_unless_allowed() {
        for url in [
            "http://10.0.0.1:8080",
            "http://192.168.1.2/",
            "http://[2001:db8::1]:80",
            "http://localhost.example:80",
            "http://0.0.0.0:8080",
            "http://example.invalid/v1",
        ] {
            assert!(
                matches!(
                    Target::parse(url, false),
                    Err(TargetError::NotLoopback { .. })
                ),
                "{url}"
            );
            assert!(Target::parse(url, true).is_ok(), "{url}");
        }
    }

    #[test]
    fn bad_urls_and_schemes_are_refused() {
        assert!(matches!(
            Target::parse("127.0.0.1:8080", false),
            Err(TargetError::Scheme { .. } | TargetError::Invalid { .. })
        ));
        assert!(matches!(
            Target::parse("not a url", false),
            Err(TargetError::Invalid { .. })
        ));
        assert!(matches!(
            Target::parse("https://127.0.0.1:8443", false),
            Err(TargetError::Scheme { .. })
        ));
    }
}
