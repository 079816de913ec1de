use std::io::Result as IoResult;
use std::io::{Error as IoError, ErrorKind, Read};

/// A `Reader` that reads exactly the number of bytes from a sub-reader.
///
/// If the limit is reached, it returns EOF. What is left unread when it is dropped stays in the
/// sub-reader (see `Body` for the drain). PATCH(body-cut-short): a sub-reader that ends before
/// the limit is an `UnexpectedEof` error (`cut_short`), never the end of the body.
pub struct EqualReader<R>
where
    R: Read,
{
    reader: R,
    size: usize,
    /// The limit it was made with, to say how much of it arrived.
    declared: usize,
}

/// PATCH(body-cut-short): the error of a body whose source ended after `got` of its `declared`
/// bytes: the client shut down its sending side (or the connection ended) before the body it
/// announced was complete. 0.12.0 took what had come for the whole body.
pub(crate) fn cut_short(got: usize, declared: usize) -> IoError {
    IoError::new(
        ErrorKind::UnexpectedEof,
        format!("body cut short: {} of its {} bytes arrived", got, declared),
    )
}

impl<R> EqualReader<R>
where
    R: Read,
{
    // PATCH(bounded-drain): 0.12.0 discarded an unread remainder on drop by allocating one
    // buffer of its whole declared size (`Content-Length: 10^15` aborted the process); the
    // remainder is now drained, boundedly, by `Body`, and this reader only limits.
    pub fn new(reader: R, size: usize) -> EqualReader<R> {
        EqualReader {
            reader,
            size,
            declared: size,
        }
    }
}

impl<R> Read for EqualReader<R>
where
    R: Read,
{
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if self.size == 0 {
            return Ok(0);
        }

        let buf = if buf.len() < self.size {
            buf
        } else {
            &mut buf[..self.size]
        };

        match self.reader.read(buf) {
            Ok(0) if !buf.is_empty() => Err(cut_short(self.declared - self.size, self.declared)),
            Ok(len) => {
                self.size -= len;
                Ok(len)
            }
            err @ Err(_) => err,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EqualReader;
    use std::io::Read;

    #[test]
    fn test_limit() {
        use std::io::Cursor;

        let mut org_reader = Cursor::new("hello world".to_string().into_bytes());

        {
            let mut equal_reader = EqualReader::new(org_reader.by_ref(), 5);

            let mut string = String::new();
            equal_reader.read_to_string(&mut string).unwrap();
            assert_eq!(string, "hello");
        }

        let mut string = String::new();
        org_reader.read_to_string(&mut string).unwrap();
        assert_eq!(string, " world");
    }

    // PATCH(bounded-drain): dropping the reader no longer reads the rest of its limit.
    #[test]
    fn test_not_enough() {
        use std::io::Cursor;

        let mut org_reader = Cursor::new("hello world".to_string().into_bytes());

        {
            let mut equal_reader = EqualReader::new(org_reader.by_ref(), 5);

            let mut vec = [0];
            equal_reader.read_exact(&mut vec).unwrap();
            assert_eq!(vec[0], b'h');
        }

        let mut string = String::new();
        org_reader.read_to_string(&mut string).unwrap();
        assert_eq!(string, "ello world");
    }

    // PATCH(body-cut-short): a source that ends before the limit is an error, however the
    // body is read, and stays one; a zero-length read is not an end.
    #[test]
    fn a_source_ending_before_the_limit_is_unexpected_eof() {
        let mut reader = EqualReader::new(&b"hello"[..], 8);
        assert_eq!(reader.read(&mut []).unwrap(), 0);
        let mut got = Vec::new();
        let e = reader.read_to_end(&mut got).unwrap_err();
        assert_eq!(got, b"hello");
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        assert_eq!(e.to_string(), "body cut short: 5 of its 8 bytes arrived");
        assert_eq!(
            reader.read(&mut [0; 4]).unwrap_err().kind(),
            std::io::ErrorKind::UnexpectedEof
        );
        let mut string = String::new();
        let e = EqualReader::new(&b""[..], 3)
            .read_to_string(&mut string)
            .unwrap_err();
        assert_eq!(e.to_string(), "body cut short: 0 of its 3 bytes arrived");
        // the whole length is a body like any other
        let mut got = Vec::new();
        EqualReader::new(&b"hello"[..], 5)
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, b"hello");
    }
}
