//! What the host tells the plugin through its environment (go-plugin and Conduit variables).

use tracing::level_filters::LevelFilter;

/// The variable go-plugin sets so that a plugin knows it was started by its host.
pub const MAGIC_COOKIE_KEY: &str = "CONDUIT_PLUGIN_MAGIC_COOKIE";
/// Conduit's value of [`MAGIC_COOKIE_KEY`] (`pconnector.HandshakeConfig`).
pub const MAGIC_COOKIE_VALUE: &str =
    "204e8e812c3a1bb73b838928c575b42a105dd2e9aa449be481bc4590486df53f";
/// The application protocol versions the host offers, comma-separated in any order (`1,2`).
pub const PROTOCOL_VERSIONS: &str = "PLUGIN_PROTOCOL_VERSIONS";
/// The connector's ID (`<pipeline>:<connector>` for pipeline files), or a placeholder such as
/// `load-specifications` when Conduit only asks for the specification.
pub const CONNECTOR_ID: &str = "CONDUIT_CONNECTOR_ID";
/// The token a plugin sends with calls to Conduit's connector utilities (schema service).
pub const CONNECTOR_TOKEN: &str = "CONDUIT_CONNECTOR_TOKEN";
/// Address of Conduit's connector utilities gRPC server (the schema service), e.g. `[::]:43125`.
pub const UTILITIES_TARGET: &str = "CONDUIT_CONNECTOR_UTILITIES_GRPC_TARGET";
/// The connector logger's level as a zerolog level name (`trace`, `debug`, `info`, ...); not set
/// during the start-up scan.
pub const LOG_LEVEL: &str = "CONDUIT_CONNECTOR_LOG_LEVEL";
/// The largest gRPC message the plugin should accept, in bytes (`--connectors.max-receive-record-size`).
pub const MAX_RECEIVE_RECORD_SIZE: &str = "CONDUIT_CONNECTOR_MAX_RECEIVE_RECORD_SIZE";

/// The only application protocol version this runtime speaks.
pub const APP_PROTOCOL_VERSION: u32 = 2;
/// go-plugin's core protocol version.
pub const CORE_PROTOCOL_VERSION: u32 = 1;
/// The receive limit when [`MAX_RECEIVE_RECORD_SIZE`] is absent or unusable: Conduit's default,
/// 4 MiB.
pub const DEFAULT_MAX_RECEIVE_RECORD_SIZE: usize = 4 * 1024 * 1024;

/// Why the process cannot serve as a plugin of the host that started it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HandshakeError {
    /// The magic cookie is missing or wrong: most likely the binary was run by hand.
    #[error(
        "This binary is a plugin for Conduit (https://conduit.io). It is not meant to be executed \
         directly: put it in Conduit's connectors directory and reference it from a pipeline as \
         `standalone:<name>`, with the name from its specification."
    )]
    MissingMagicCookie,
    /// The host does not offer protocol version 2.
    #[error(
        "the host offers plugin protocol versions {offered:?} ({PROTOCOL_VERSIONS}), but this plugin \
         speaks only version 2: use Conduit v0.12 or newer"
    )]
    UnsupportedProtocol {
        /// The raw value of [`PROTOCOL_VERSIONS`].
        offered: String,
    },
}

/// Settings read from the environment at start-up.
#[derive(Debug, Clone)]
pub struct PluginEnv {
    /// [`CONNECTOR_ID`], when set and not blank.
    pub connector_id: Option<String>,
    /// [`UTILITIES_TARGET`], when set and not blank.
    pub utilities_target: Option<String>,
    /// [`LOG_LEVEL`] parsed by [`parse_log_level`]; the runtime's logger filters with it.
    pub log_level: LevelFilter,
    /// [`MAX_RECEIVE_RECORD_SIZE`], or [`DEFAULT_MAX_RECEIVE_RECORD_SIZE`]; applied to the
    /// source and destination services.
    pub max_receive_record_size: usize,
    token: Option<ConnectorToken>,
}

/// `CONDUIT_CONNECTOR_TOKEN`; its Debug output never shows the value.
#[derive(Clone)]
struct ConnectorToken(String);

impl std::fmt::Debug for ConnectorToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl PluginEnv {
    /// Reads and checks the environment through `lookup` (`std::env::var` in production).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, HandshakeError> {
        if lookup(MAGIC_COOKIE_KEY).as_deref() != Some(MAGIC_COOKIE_VALUE) {
            return Err(HandshakeError::MissingMagicCookie);
        }
        let offered = lookup(PROTOCOL_VERSIONS).unwrap_or_default();
        let speaks_ours = offered
            .split(',')
            .any(|v| v.trim().parse::<u32>() == Ok(APP_PROTOCOL_VERSION));
        if !speaks_ours {
            return Err(HandshakeError::UnsupportedProtocol { offered });
        }
        let non_empty = |key: &str| lookup(key).filter(|v| !v.trim().is_empty());
        Ok(PluginEnv {
            connector_id: non_empty(CONNECTOR_ID),
            utilities_target: non_empty(UTILITIES_TARGET),
            log_level: parse_log_level(lookup(LOG_LEVEL).as_deref()),
            max_receive_record_size: non_empty(MAX_RECEIVE_RECORD_SIZE)
                .and_then(|v| v.trim().parse::<usize>().ok())
                .filter(|&v| v > 0)
                .unwrap_or(DEFAULT_MAX_RECEIVE_RECORD_SIZE),
            token: non_empty(CONNECTOR_TOKEN).map(ConnectorToken),
        })
    }

    /// Reads and checks the process environment.
    pub fn from_process() -> Result<Self, HandshakeError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Whether [`CONNECTOR_TOKEN`] was set (it is, by every Conduit since v0.11).
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// `CONDUIT_CONNECTOR_TOKEN`, sent to Conduit's schema service. Keep it out of logs.
    pub fn token(&self) -> Option<&str> {
        self.token.as_ref().map(|t| t.0.as_str())
    }
}

/// Conduit passes zerolog level names. Like the Go SDK, anything unknown or absent (the start-up
/// scan sets no level) logs everything and leaves filtering to Conduit.
pub fn parse_log_level(level: Option<&str>) -> LevelFilter {
    match level.map(|l| l.trim().to_ascii_lowercase()).as_deref() {
        Some("debug") => LevelFilter::DEBUG,
        Some("info") => LevelFilter::INFO,
        Some("warn") | Some("warning") => LevelFilter::WARN,
        Some("error") | Some("fatal") | Some("panic") => LevelFilter::ERROR,
        Some("disabled") => LevelFilter::OFF,
        _ => LevelFilter::TRACE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn requires_the_magic_cookie() {
        let err = PluginEnv::from_lookup(env(&[(PROTOCOL_VERSIONS, "1,2")])).unwrap_err();
        assert_eq!(err, HandshakeError::MissingMagicCookie);
        let err = PluginEnv::from_lookup(env(&[
            (MAGIC_COOKIE_KEY, "wrong"),
            (PROTOCOL_VERSIONS, "2"),
        ]))
        .unwrap_err();
        assert_eq!(err, HandshakeError::MissingMagicCookie);
    }

    #[test]
    fn requires_version_two_in_any_order() {
        for offered in ["1,2", "2,1", "2", " 2 , 1"] {
            let e = PluginEnv::from_lookup(env(&[
                (MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE),
                (PROTOCOL_VERSIONS, offered),
            ]));
            assert!(e.is_ok(), "{offered}");
        }
        for offered in ["1", "", "3,4", "12"] {
            let e = PluginEnv::from_lookup(env(&[
                (MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE),
                (PROTOCOL_VERSIONS, offered),
            ]));
            assert!(
                matches!(e, Err(HandshakeError::UnsupportedProtocol { .. })),
                "{offered}"
            );
        }
    }

    #[test]
    fn defaults_when_scan_omits_settings() {
        let e = PluginEnv::from_lookup(env(&[
            (MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE),
            (PROTOCOL_VERSIONS, "1,2"),
        ]))
        .unwrap();
        assert_eq!(e.log_level, LevelFilter::TRACE);
        assert_eq!(e.max_receive_record_size, DEFAULT_MAX_RECEIVE_RECORD_SIZE);
        let e = PluginEnv::from_lookup(env(&[
            (MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE),
            (PROTOCOL_VERSIONS, "2"),
            (LOG_LEVEL, "warn"),
            (MAX_RECEIVE_RECORD_SIZE, "1024"),
        ]))
        .unwrap();
        assert_eq!(e.log_level, LevelFilter::WARN);
        assert_eq!(e.max_receive_record_size, 1024);
    }

    #[test]
    fn token_is_available_but_not_debug_printed() {
        let e = PluginEnv::from_lookup(env(&[
            (MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE),
            (PROTOCOL_VERSIONS, "2"),
            (
                CONNECTOR_TOKEN,
                r#"{"value":"secret-uuid","connector_id":"c"}"#,
            ),
        ]))
        .unwrap();
        assert!(e.has_token());
        assert_eq!(
            e.token(),
            Some(r#"{"value":"secret-uuid","connector_id":"c"}"#)
        );
        assert!(!format!("{e:?}").contains("secret-uuid"));
    }
}
