//! PATCH(bounded-chunks): the decoder of a `Transfer-Encoding: chunked` request body.
//!
//! 0.12.0 used `chunked_transfer::Decoder`, which collects a chunk-size line of any length in
//! memory: a client sending hex digits without end grew the server without bound. Here a
//! chunk-size line (with its extensions) and the trailer section are bounded, and anything
//! malformed is an `InvalidData` error.

use std::convert::TryFrom;
use std::io::{Error as IoError, ErrorKind, Read, Result as IoResult};

/// Longest chunk-size line, extensions included.
const MAX_SIZE_LINE: usize = 1024;
/// Longest trailer section after the last chunk.
const MAX_TRAILERS: usize = 8 * 1024;

pub(crate) struct ChunkedDecoder<R: Read> {
    source: R,
    /// Bytes left in the current chunk; `None` before a chunk-size line.
    in_chunk: Option<u64>,
    done: bool,
}

fn malformed(what: &str) -> IoError {
    IoError::new(
        ErrorKind::InvalidData,
        format!("malformed chunked body: {}", what),
    )
}

/// PATCH(chunk-lines): whether a trailer line is a field line, `NAME ":" OWS VALUE` with a
/// `NAME` that is a token, as a header line must be (`refusal-reasons`); 0.12.0 took any line.
fn is_field_line(line: &[u8]) -> bool {
    let name = line.split(|&b| b == b':').next().unwrap_or_default();
    name.len() < line.len() && std::str::from_utf8(name).is_ok_and(crate::common::is_token)
}

impl<R: Read> ChunkedDecoder<R> {
    pub(crate) fn new(source: R) -> ChunkedDecoder<R> {
        ChunkedDecoder {
            source,
            in_chunk: None,
            done: false,
        }
    }

    fn byte(&mut self) -> IoResult<u8> {
        let mut b = [0u8];
        match self.source.read(&mut b)? {
            0 => Err(IoError::new(
                ErrorKind::UnexpectedEof,
                "chunked body cut short",
            )),
            _ => Ok(b[0]),
        }
    }

    /// Reads one CRLF-terminated line of at most `max` bytes (without the CRLF).
    /// PATCH(chunk-lines): a LF without a CR before it, a CR not followed by LF, or a NUL is
    /// `InvalidData`, as in a head line (`field-bytes`): a peer that ends lines at a bare LF
    /// finds the line, and so the body, ending elsewhere. 0.12.0 kept a bare LF and a NUL inside.
    fn line(&mut self, max: usize) -> IoResult<Vec<u8>> {
        let mut line = Vec::new();
        loop {
            match self.byte()? {
                b'\r' => {
                    return match self.byte()? {
                        b'\n' => Ok(line),
                        _ => Err(malformed("a CR not followed by LF")),
                    }
                }
                b'\n' => return Err(malformed("a LF without a CR before it")),
                0 => return Err(malformed("a NUL byte")),
                b => line.push(b),
            }
            if line.len() > max {
                return Err(malformed("line too long"));
            }
        }
    }

    /// PATCH(chunk-size): a chunk size is hex digits only, then optional spaces or tabs before
    /// an extension (RFC 9112 §7.1); `from_str_radix` alone also took a sign (`+5`) and spaces
    /// before it, where a peer reading the grammar would see the body end elsewhere.
    fn chunk_size(&mut self) -> IoResult<u64> {
        let line = self.line(MAX_SIZE_LINE)?;
        let size = line.split(|&b| b == b';').next().unwrap_or_default();
        let digits = match size.iter().rposition(|&b| b != b' ' && b != b'\t') {
            Some(last) => &size[..=last],
            None => &[][..],
        };
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_hexdigit) {
            return Err(malformed("chunk size"));
        }
        let digits = std::str::from_utf8(digits).map_err(|_| malformed("chunk size"))?;
        u64::from_str_radix(digits, 16).map_err(|_| malformed("chunk size"))
    }
}

impl<R: Read> Read for ChunkedDecoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        let left = match self.in_chunk {
            Some(left) => left,
            None => {
                let size = self.chunk_size()?;
                if size == 0 {
                    let mut trailers = 0;
                    loop {
                        let line = self.line(MAX_TRAILERS)?;
                        trailers += line.len() + 2;
                        if line.is_empty() {
                            break;
                        }
                        if trailers > MAX_TRAILERS {
                            return Err(malformed("trailers too long"));
                        }
                        if !is_field_line(&line) {
                            return Err(malformed("a trailer line is not NAME: VALUE"));
                        }
                    }
                    self.done = true;
                    return Ok(0);
                }
                size
            }
        };
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let got = self.source.read(&mut buf[..want])?;
        if got == 0 {
            return Err(IoError::new(
                ErrorKind::UnexpectedEof,
                "chunked body cut short",
            ));
        }
        let left = left - got as u64;
        if left == 0 {
            if self.line(0)?.is_empty() {
                self.in_chunk = None;
            } else {
                return Err(malformed("chunk longer than its size"));
            }
        } else {
            self.in_chunk = Some(left);
        }
        Ok(got)
    }
}

#[cfg(test)]
mod tests {
    use super::ChunkedDecoder;
    use std::io::Read;

    fn decode(wire: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        ChunkedDecoder::new(wire).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn decodes_chunks_extensions_and_trailers() {
        assert_eq!(
            decode(b"3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nX-Trailer: 1\r\n\r\n").unwrap(),
            b"abcdefg"
        );
        assert_eq!(
            decode(b"A\r\n0123456789\r\n0\r\n\r\n").unwrap(),
            b"0123456789"
        );
    }

    #[test]
    fn refuses_malformed_bodies() {
        assert!(decode(b"zz\r\nabc\r\n0\r\n\r\n").is_err());
        assert!(decode(b"3\r\nabcd\r\n0\r\n\r\n").is_err());
        assert!(decode(b"3\r\nab").is_err());
        assert!(decode(b"ffffffffffffffffffff\r\n").is_err());
    }

    #[test]
    fn a_chunk_size_is_bare_hex_digits() {
        for wire in [
            &b"+3\r\nabc\r\n0\r\n\r\n"[..],
            b"-3\r\nabc\r\n0\r\n\r\n",
            b" 3\r\nabc\r\n0\r\n\r\n",
            b"0x3\r\nabc\r\n0\r\n\r\n",
            b"\r\nabc\r\n0\r\n\r\n",
            b";ext\r\nabc\r\n0\r\n\r\n",
            b"3\r\nabc\r\n+0\r\n\r\n",
        ] {
            let err = decode(wire).unwrap_err();
            assert_eq!(
                err.kind(),
                std::io::ErrorKind::InvalidData,
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
        // spaces and tabs may come between the size and an extension
        assert_eq!(decode(b"3 \t;ext=1\r\nabc\r\n0 \r\n\r\n").unwrap(), b"abc");
    }

    /// PATCH(chunk-lines): a bare LF, a bare CR or a NUL in a chunk-size or trailer line, and a
    /// trailer line that is not a field, are `InvalidData`.
    #[test]
    fn chunk_lines_end_in_crlf_and_trailers_are_fields() {
        for wire in [
            &b"3;x\nOTHER\r\nabc\r\n0\r\n\r\n"[..],
            b"3\nabc\r\n0\r\n\r\n",
            b"3;x\rOTHER\r\nabc\r\n0\r\n\r\n",
            b"3;x\0y\r\nabc\r\n0\r\n\r\n",
            b"3\r\nabc\n0\r\n\r\n",
            b"0\r\nX: y\n\r\n",
            b"0\r\nX: y\nZ: w\r\n\r\n",
            b"0\r\nX: y\rZ: w\r\n\r\n",
            b"0\r\nX: \0\r\n\r\n",
            b"0\r\nthis is not a field\r\n\r\n",
            b"0\r\n: no name\r\n\r\n",
            b"0\r\nX y: z\r\n\r\n",
            b"0\r\n X: folded\r\n\r\n",
            b"0\r\nX: y\r\n\tfolded\r\n\r\n",
            b"0\r\n\n",
        ] {
            let err = decode(wire).unwrap_err();
            assert_eq!(
                err.kind(),
                std::io::ErrorKind::InvalidData,
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
        assert_eq!(
            decode(b"3\r\nabc\r\n0\r\nX-T: 1\r\nx!#$%&'*+-.^_`|~9:\r\nY:\t a b \r\n\r\n").unwrap(),
            b"abc"
        );
    }

    /// An endless chunk-size line fails after `MAX_SIZE_LINE` bytes instead of being collected.
    #[test]
    fn an_endless_size_line_is_refused_within_its_bound() {
        let endless = std::io::repeat(b'f');
        let mut counted = CountingReader {
            inner: endless,
            read: 0,
        };
        let mut out = Vec::new();
        let err = ChunkedDecoder::new(&mut counted)
            .read_to_end(&mut out)
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(
            counted.read <= super::MAX_SIZE_LINE + 2,
            "read {}",
            counted.read
        );
    }

    struct CountingReader<R> {
        inner: R,
        read: usize,
    }

    impl<R: Read> Read for CountingReader<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.read += n;
            Ok(n)
        }
    }
}
