use std::io::Result as IoResult;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::connection::Connection;
use crate::util::connection_table::Conn;

// PATCH(no-tls): the TLS variants are gone; a stream is a plain connection.
pub(crate) type Stream = Connection;

/// A half of a connection: closes its direction of the socket when dropped.
pub struct RefinedTcpStream {
    stream: Stream,
    close_read: bool,
    close_write: bool,
    /// PATCH(deadlines): the connection whose deadline every read must meet (reading half only),
    /// and the read timeout set on the socket last.
    conn: Option<Arc<Conn>>,
    timeout: Option<Option<Duration>>,
}

impl RefinedTcpStream {
    pub(crate) fn new<S>(stream: S) -> (RefinedTcpStream, RefinedTcpStream)
    where
        S: Into<Stream>,
    {
        let stream: Stream = stream.into();

        // PATCH(shared-socket): both halves share the socket; nothing to duplicate or fail.
        let (read, write) = (stream.share(), stream);

        let read = RefinedTcpStream {
            stream: read,
            close_read: true,
            close_write: false,
            conn: None,
            timeout: None,
        };

        let write = RefinedTcpStream {
            stream: write,
            close_read: false,
            close_write: true,
            conn: None,
            timeout: None,
        };

        (read, write)
    }

    /// PATCH(deadlines): reads through this half meet `conn`'s deadlines.
    pub(crate) fn with_deadlines(mut self, conn: Arc<Conn>) -> RefinedTcpStream {
        self.conn = Some(conn);
        self
    }

    pub(crate) fn peer_addr(&mut self) -> IoResult<Option<SocketAddr>> {
        self.stream.peer_addr()
    }
}

impl Drop for RefinedTcpStream {
    fn drop(&mut self) {
        if self.close_read {
            self.stream.shutdown(Shutdown::Read).ok();
        }

        if self.close_write {
            self.stream.shutdown(Shutdown::Write).ok();
        }
    }
}

impl Read for RefinedTcpStream {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        let conn = match &self.conn {
            Some(conn) => conn,
            None => return self.stream.read(buf),
        };
        // PATCH(deadlines): a read blocks until the connection's deadline at the most; the socket
        // option is set only when it changes, so a read without a deadline costs nothing more.
        let timeout = conn.read_timeout()?;
        if self.timeout != Some(timeout) {
            self.stream.set_read_timeout(timeout)?;
            self.timeout = Some(timeout);
        }
        match self.stream.read(buf) {
            Err(e)
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
                    && conn.deadline_passed() =>
            {
                Err(std::io::Error::new(ErrorKind::TimedOut, "deadline passed"))
            }
            other => other,
        }
    }
}

impl Write for RefinedTcpStream {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> IoResult<()> {
        self.stream.flush()
    }
}
