//! The process's open-file limit, and the connection budget that fits in it. At start the soft
//! limit is raised to the hard one, then `max_connections` is lowered (with a warning) until
//! every connection, the relay's own files and a reserve fit, and `max_streams` until short
//! requests such as `/healthz` always find a connection place beside the open streams: so no
//! legitimate load can make `accept` fail for want of a descriptor.

use crate::config::Config;

/// Descriptors kept for everything but connections: the listener, the journal and its lock, the
/// logs and their rotation, the session key, standard streams, and a margin.
pub(crate) const RESERVED: u64 = 64;

/// Raises the soft open-file limit to the hard limit; returns the soft limit now in force
/// (`None` where it cannot be read).
pub(crate) fn raise() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(e) => {
            log::warn!("cannot raise the open-file limit: {e}");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft)
        }
    }
}

/// Connection places kept free of streams and waiting fetches, out of `max_connections`.
pub(crate) fn headroom(max_connections: usize) -> usize {
    (max_connections / 8).clamp(1, 64)
}

/// Lowers `max_connections` and `max_streams` to what `limit` open files allow, saying so.
pub(crate) fn fit(config: &mut Config, limit: Option<u64>) {
    if let Some(limit) = limit {
        let room = limit.saturating_sub(RESERVED).max(1);
        if config.max_connections as u64 > room {
            log::warn!(
                "max_connections lowered from {} to {room}: the open-file limit is {limit} \
                 (raise it with `ulimit -n` or LimitNOFILE= to serve more)",
                config.max_connections
            );
            config.max_connections = room as usize;
        }
    }
    let streams = config
        .max_connections
        .saturating_sub(headroom(config.max_connections))
        .max(1);
    if config.max_streams > streams {
        log::warn!(
            "max_streams lowered from {} to {streams}, to keep connection places for short \
             requests out of max_connections = {}",
            config.max_streams,
            config.max_connections
        );
        config.max_streams = streams;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_low_open_file_limit_lowers_connections_then_streams() {
        let mut config = Config::default();
        fit(&mut config, Some(256));
        assert_eq!(config.max_connections, 256 - RESERVED as usize);
        assert_eq!(
            config.max_streams,
            config.max_connections - headroom(config.max_connections)
        );
        assert!(config.max_streams < config.max_connections);
    }

    #[test]
    fn the_defaults_fit_a_common_limit_unchanged() {
        let mut config = Config::default();
        fit(&mut config, Some(1_048_576));
        assert_eq!(config.max_connections, 1024);
        assert_eq!(config.max_streams, 512);
    }

    #[test]
    fn streams_never_take_every_connection_place() {
        let mut config = Config {
            max_connections: 100,
            max_streams: 100,
            ..Config::default()
        };
        fit(&mut config, None);
        assert_eq!(config.max_streams, 100 - headroom(100));
    }
}
