//! [`SinkError`]: why a sink could not be set up.

use crate::error::BoxError;

/// Why a sink could not be set up: its settings are wrong, or its server could not be
/// reached (or refused what the sink needs, such as its stream or exchange). A delivery's
/// own failures are the relay's to record and retry, not this type's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// A setting is not usable (a malformed secret, URL, stream name, …); the message says
    /// which and why.
    #[error("{0}")]
    Config(String),
    /// The server could not be reached or refused the set-up.
    #[error("{sink}: {what}")]
    Connect {
        /// The sink (`"nats"`, `"amqp"`, `"webhook"`).
        sink: &'static str,
        /// What was being done (`connecting to nats://…`, `declaring exchange cart.events`).
        what: String,
        /// The client's error.
        #[source]
        source: BoxError,
    },
}

impl SinkError {
    pub(crate) fn connect(
        sink: &'static str,
        what: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> SinkError {
        SinkError::Connect {
            sink,
            what: what.into(),
            source: source.into(),
        }
    }
}

/// `url` without a user or password, for error messages.
pub(crate) fn redacted(url: &str) -> String {
    url.split(',')
        .map(|one| {
            let (scheme, rest) = match one.find("://") {
                Some(i) => one.split_at(i + 3),
                None => ("", one),
            };
            let authority = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            match rest[..authority].rfind('@') {
                Some(at) => format!("{scheme}…@{}", &rest[at + 1..]),
                None => one.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(redacted("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(redacted("nats://u:p@host:4222"), "nats://…@host:4222");
        assert_eq!(redacted("u:p@host,nats://a"), "…@host,nats://a");
        assert_eq!(
            redacted("https://u:p@h/hooks/a@b?x=@"),
            "https://…@h/hooks/a@b?x=@"
        );
        assert_eq!(redacted("https://h/a@b"), "https://h/a@b");
    }
}
