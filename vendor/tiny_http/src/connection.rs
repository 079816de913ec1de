//! Abstractions of Tcp and Unix socket types

#[cfg(any(target_os = "linux", target_os = "android"))]
use std::os::fd::AsFd;
#[cfg(unix)]
use std::os::unix::net as unix_net;
use std::{
    fs::File,
    net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

/// Unified listener. Either a [`TcpListener`] or [`std::os::unix::net::UnixListener`]
pub enum Listener {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(unix_net::UnixListener),
}
impl Listener {
    pub(crate) fn local_addr(&self) -> std::io::Result<ListenAddr> {
        match self {
            Self::Tcp(l) => l.local_addr().map(ListenAddr::from),
            #[cfg(unix)]
            Self::Unix(l) => l.local_addr().map(ListenAddr::from),
        }
    }

    pub(crate) fn accept(&self) -> std::io::Result<(Connection, Option<SocketAddr>)> {
        match self {
            Self::Tcp(l) => l
                .accept()
                .map(|(conn, addr)| (Connection::from(conn), Some(addr))),
            #[cfg(unix)]
            Self::Unix(l) => l.accept().map(|(conn, _)| (Connection::from(conn), None)),
        }
    }
}
impl From<TcpListener> for Listener {
    fn from(s: TcpListener) -> Self {
        Self::Tcp(s)
    }
}
#[cfg(unix)]
impl From<unix_net::UnixListener> for Listener {
    fn from(s: unix_net::UnixListener) -> Self {
        Self::Unix(s)
    }
}

/// Unified connection. Either a [`TcpStream`] or [`std::os::unix::net::UnixStream`].
#[derive(Debug)]
pub(crate) enum Connection {
    // PATCH(shared-socket): one socket shared by the reading and the writing half instead of a
    // `dup`ed descriptor each: half the descriptors per connection, and no `try_clone` that can
    // fail (and panic) when the process is out of descriptors.
    Tcp(Arc<TcpStream>),
    #[cfg(unix)]
    Unix(Arc<unix_net::UnixStream>),
}
impl std::io::Read for Connection {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Tcp(s) => (&**s).read(buf),
            #[cfg(unix)]
            Self::Unix(s) => (&**s).read(buf),
        }
    }
}
impl std::io::Write for Connection {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Tcp(s) => (&**s).write(buf),
            #[cfg(unix)]
            Self::Unix(s) => (&**s).write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Tcp(s) => (&**s).flush(),
            #[cfg(unix)]
            Self::Unix(s) => (&**s).flush(),
        }
    }
}
impl Connection {
    /// Gets the peer's address. Some for TCP, None for Unix sockets.
    pub(crate) fn peer_addr(&mut self) -> std::io::Result<Option<SocketAddr>> {
        match self {
            Self::Tcp(s) => s.peer_addr().map(Some),
            #[cfg(unix)]
            Self::Unix(_) => Ok(None),
        }
    }

    pub(crate) fn shutdown(&self, how: Shutdown) -> std::io::Result<()> {
        match self {
            Self::Tcp(s) => s.shutdown(how),
            #[cfg(unix)]
            Self::Unix(s) => s.shutdown(how),
        }
    }

    /// PATCH(peer-gone): whether the peer has closed or reset the connection, looked at
    /// without blocking and without taking a byte: bytes waiting (a pipelined request) say it
    /// is there. Only for the thread serving the connection, the one that reads it. A Unix
    /// socket is never said to be gone (the standard library cannot peek at one).
    pub(crate) fn peer_gone(&self) -> bool {
        match self {
            Self::Tcp(s) => {
                if s.set_nonblocking(true).is_err() {
                    return false;
                }
                let gone = match s.peek(&mut [0u8; 1]) {
                    Ok(n) => n == 0,
                    Err(e) => !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                    ),
                };
                // Were this to fail, a later read would fail at once and end the connection.
                let _ = s.set_nonblocking(false);
                gone
            }
            #[cfg(unix)]
            Self::Unix(_) => false,
        }
    }

    /// PATCH(file-pieces): sends `len` bytes of `file` from `offset` to the socket with
    /// `sendfile(2)`, from the file to the socket in the kernel, whatever it takes: calls that
    /// send part of it, or are interrupted, go on where they stopped. The socket's write timeout
    /// applies as to a write, and errors are those a write would give. A file that ends first
    /// is `UnexpectedEof`. Where there is no `sendfile`, the file is read and written.
    ///
    /// On a connection its peer has closed, `sendfile` raises `SIGPIPE` (where the standard
    /// library's `send` passes `MSG_NOSIGNAL`): a Rust program ignores that signal from the
    /// start, and the call fails with `BrokenPipe` as a write does.
    pub(crate) fn send_file(&self, file: &File, offset: u64, len: usize) -> std::io::Result<()> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let socket = match self {
                Self::Tcp(s) => s.as_fd(),
                #[cfg(unix)]
                Self::Unix(s) => s.as_fd(),
            };
            let mut at = offset;
            let mut sent = 0;
            while sent < len {
                match rustix::fs::sendfile(socket, file, Some(&mut at), len - sent) {
                    Ok(0) => return Err(crate::response::file_ended(offset, len, sent)),
                    Ok(n) => sent += n,
                    Err(rustix::io::Errno::INTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(())
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            crate::response::copy_file(file, offset, len, &mut self.share())
        }
    }

    /// Another handle on the same socket (PATCH(shared-socket)).
    pub(crate) fn share(&self) -> Self {
        match self {
            Self::Tcp(s) => Self::Tcp(Arc::clone(s)),
            #[cfg(unix)]
            Self::Unix(s) => Self::Unix(Arc::clone(s)),
        }
    }

    /// PATCH(deadlines): how long a read may block before it fails.
    pub(crate) fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_read_timeout(timeout),
            #[cfg(unix)]
            Self::Unix(s) => s.set_read_timeout(timeout),
        }
    }

    /// PATCH(deadlines): how long a write may block before it fails.
    pub(crate) fn set_write_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_write_timeout(timeout),
            #[cfg(unix)]
            Self::Unix(s) => s.set_write_timeout(timeout),
        }
    }
}
impl From<TcpStream> for Connection {
    fn from(s: TcpStream) -> Self {
        Self::Tcp(Arc::new(s))
    }
}
#[cfg(unix)]
impl From<unix_net::UnixStream> for Connection {
    fn from(s: unix_net::UnixStream) -> Self {
        Self::Unix(Arc::new(s))
    }
}

#[derive(Debug, Clone)]
pub enum ConfigListenAddr {
    IP(Vec<SocketAddr>),
    #[cfg(unix)]
    // TODO: use SocketAddr when bind_addr is stabilized
    Unix(std::path::PathBuf),
}
impl ConfigListenAddr {
    pub fn from_socket_addrs<A: ToSocketAddrs>(addrs: A) -> std::io::Result<Self> {
        addrs.to_socket_addrs().map(|it| Self::IP(it.collect()))
    }

    #[cfg(unix)]
    pub fn unix_from_path<P: Into<PathBuf>>(path: P) -> Self {
        Self::Unix(path.into())
    }

    pub(crate) fn bind(&self) -> std::io::Result<Listener> {
        match self {
            Self::IP(a) => TcpListener::bind(a.as_slice()).map(Listener::from),
            #[cfg(unix)]
            Self::Unix(a) => unix_net::UnixListener::bind(a).map(Listener::from),
        }
    }
}

/// Unified listen socket address. Either a [`SocketAddr`] or [`std::os::unix::net::SocketAddr`].
#[derive(Debug, Clone)]
pub enum ListenAddr {
    IP(SocketAddr),
    #[cfg(unix)]
    Unix(unix_net::SocketAddr),
}
impl ListenAddr {
    pub fn to_ip(self) -> Option<SocketAddr> {
        match self {
            Self::IP(s) => Some(s),
            #[cfg(unix)]
            Self::Unix(_) => None,
        }
    }

    /// Gets the Unix socket address.
    ///
    /// This is also available on non-Unix platforms, for ease of use, but always returns `None`.
    #[cfg(unix)]
    pub fn to_unix(self) -> Option<unix_net::SocketAddr> {
        match self {
            Self::IP(_) => None,
            Self::Unix(s) => Some(s),
        }
    }
    #[cfg(not(unix))]
    pub fn to_unix(self) -> Option<SocketAddr> {
        None
    }
}
impl From<SocketAddr> for ListenAddr {
    fn from(s: SocketAddr) -> Self {
        Self::IP(s)
    }
}
#[cfg(unix)]
impl From<unix_net::SocketAddr> for ListenAddr {
    fn from(s: unix_net::SocketAddr) -> Self {
        Self::Unix(s)
    }
}
impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::IP(s) => s.fmt(f),
            #[cfg(unix)]
            Self::Unix(s) => std::fmt::Debug::fmt(s, f),
        }
    }
}
