use crate::common::{HTTPVersion, Header, StatusCode};
use crate::connection::Connection;
use httpdate::HttpDate;
use std::cell::Cell;
use std::cmp::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use std::io::Result as IoResult;
use std::io::{self, Cursor, Read, Write};

use std::fs::File;

use std::str::FromStr;
use std::time::SystemTime;

/// Object representing an HTTP response whose purpose is to be given to a `Request`.
///
/// Some headers cannot be changed. Trying to define the value
/// of one of these will have no effect:
///
///  - `Connection`
///  - `Trailer`
///  - `Transfer-Encoding`
///  - `Upgrade`
///
/// Some headers have special behaviors:
///
///  - `Content-Encoding`: If you define this header, the library
///     will assume that the data from the `Read` object has the specified encoding
///     and will just pass-through.
///
///  - `Content-Length`: The length of the data should be set manually
///     using the `Reponse` object's API. Attempting to set the value of this
///     header will be equivalent to modifying the size of the data but the header
///     itself may not be present in the final result.
///
///  - `Content-Type`: You may only set this header to one value at a time. If you
///     try to set it more than once, the existing value will be overwritten. This
///     behavior differs from the default for most headers, which is to allow them to
///     be set multiple times in the same response.
///
pub struct Response<R> {
    reader: R,
    status_code: StatusCode,
    headers: Vec<Header>,
    data_length: Option<usize>,
    chunked_threshold: Option<usize>,
    /// PATCH(lent-bodies): a body already in memory (`from_pieces`), sent from there instead
    /// of from `reader`.
    pieces: Option<Arc<dyn Pieces>>,
}

/// One piece of a body (`Pieces`).
///
/// PATCH(file-pieces): a piece is bytes in memory or a region of an open file. Written to its
/// connection's socket with a `Content-Length`, a file's region goes from the file to the
/// socket in the kernel (`sendfile(2)`), never through this process's memory; written anywhere
/// else (chunked, or to another writer) it is read at its offset 64 KiB at a time. A file that
/// ends before `offset + len` is an `UnexpectedEof` error, and the connection closes.
pub enum Piece<'a> {
    /// Bytes in memory.
    Bytes(&'a [u8]),
    /// `len` bytes of `file` from `offset`.
    File {
        file: &'a std::fs::File,
        offset: u64,
        len: usize,
    },
}

impl Piece<'_> {
    /// How many bytes of the body the piece holds.
    fn len(&self) -> usize {
        match self {
            Piece::Bytes(bytes) => bytes.len(),
            Piece::File { len, .. } => *len,
        }
    }
}

/// PATCH(lent-bodies): a response body that is already in memory, in one or more pieces.
/// The response is written from the pieces themselves: small ones are gathered into one
/// write with the head, and one of 64 KiB or more goes to the socket as it is, never copied
/// through a buffer first (as a body read through `Read` must be). PATCH(file-pieces): a
/// piece may also be a region of a file (`Piece::File`).
pub trait Pieces: Send + Sync {
    /// Hands each piece of the body to `each`, in order, until `each` fails. It must hand the
    /// same pieces every time it is called: once to count the body's length, once for each
    /// time the response is sent.
    fn for_each_piece(&self, each: &mut dyn FnMut(Piece<'_>) -> IoResult<()>) -> IoResult<()>;
}

impl Pieces for Vec<u8> {
    fn for_each_piece(&self, each: &mut dyn FnMut(Piece<'_>) -> IoResult<()>) -> IoResult<()> {
        each(Piece::Bytes(self))
    }
}

/// A `Response` without a template parameter.
pub type ResponseBox = Response<Box<dyn Read + Send>>;

/// Transfer encoding to use when sending the message.
/// Note that only *supported* encoding are listed here.
#[derive(Copy, Clone)]
enum TransferEncoding {
    Identity,
    Chunked,
}

impl FromStr for TransferEncoding {
    type Err = ();

    fn from_str(input: &str) -> Result<TransferEncoding, ()> {
        if input.eq_ignore_ascii_case("identity") {
            Ok(TransferEncoding::Identity)
        } else if input.eq_ignore_ascii_case("chunked") {
            Ok(TransferEncoding::Chunked)
        } else {
            Err(())
        }
    }
}

/// Builds a Date: header with the current date.
fn build_date_header() -> Header {
    let d = HttpDate::from(SystemTime::now());
    Header::from_bytes(&b"Date"[..], &d.to_string().into_bytes()[..]).unwrap()
}

fn write_message_header<W>(
    mut writer: W,
    http_version: &HTTPVersion,
    status_code: &StatusCode,
    headers: &[Header],
) -> IoResult<()>
where
    W: Write,
{
    // writing status line
    write!(
        &mut writer,
        "HTTP/{}.{} {} {}\r\n",
        http_version.0,
        http_version.1,
        status_code.0,
        status_code.default_reason_phrase()
    )?;

    // writing headers
    for header in headers.iter() {
        writer.write_all(header.field.as_str().as_ref())?;
        write!(&mut writer, ": ")?;
        writer.write_all(header.value.as_str().as_ref())?;
        write!(&mut writer, "\r\n")?;
    }

    // separator between header and data
    write!(&mut writer, "\r\n")?;

    Ok(())
}

/// The largest write `write_whole` makes.
const WHOLE_WRITE: usize = 64 * 1024;

/// PATCH(whole-writes): writes `head` and then `length` bytes of `body` in writes of up to
/// `WHOLE_WRITE` bytes, the head together with the start of the body, so a response of up to
/// 64 KiB leaves in one write. (0.12.0 wrote the head alone, then the body in 8 KiB pieces: a
/// 9 KB response took three system calls and three packets.) The buffer is zeroed once and
/// refilled in place: reading into a vector's spare room zeroes that room on every read, which
/// cost a large body one extra pass over all its bytes.
fn write_whole<W: Write>(
    writer: &mut W,
    head: Vec<u8>,
    body: &mut dyn Read,
    length: usize,
) -> IoResult<()> {
    let start = head.len();
    let mut buf = head;
    buf.resize(WHOLE_WRITE.max(start).min(start + length), 0);
    let mut filled = start;
    let mut left = length;
    loop {
        let end = buf.len().min(filled + left);
        let mut ended = false;
        while filled < end {
            match body.read(&mut buf[filled..end]) {
                Ok(0) => {
                    ended = true;
                    break;
                }
                Ok(n) => {
                    filled += n;
                    left -= n;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        writer.write_all(&buf[..filled])?;
        // Done, or the body ended before its length.
        if left == 0 || ended {
            return Ok(());
        }
        filled = 0;
    }
}

/// PATCH(lent-bodies): writes `head` and then the pieces of `body`, gathering pieces smaller
/// than `WHOLE_WRITE` with the head into writes of up to that size and passing larger ones to
/// `writer` as they are. PATCH(file-pieces): with `socket`, the socket `writer` ends in, a
/// file's piece is sent by `sendfile` once everything before it has been written to the
/// socket (flushing `out` flushes `writer` too, down to the socket); without, it is read and
/// written (`copy_file`).
fn write_pieces<W: Write>(
    writer: &mut W,
    head: &[u8],
    body: &dyn Pieces,
    length: usize,
    socket: Option<&Connection>,
) -> IoResult<()> {
    let mut out = io::BufWriter::with_capacity(WHOLE_WRITE.min(head.len() + length), writer);
    out.write_all(head)?;
    body.for_each_piece(&mut |piece| match (piece, socket) {
        (Piece::Bytes(bytes), _) => out.write_all(bytes),
        (Piece::File { file, offset, len }, Some(socket)) => {
            out.flush()?;
            socket.send_file(file, offset, len)
        }
        (Piece::File { file, offset, len }, None) => copy_file(file, offset, len, &mut out),
    })?;
    out.flush()
}

/// PATCH(file-pieces): writes `piece` to `writer`, a file's region read at its offset.
fn write_piece<W: Write>(writer: &mut W, piece: Piece<'_>) -> IoResult<()> {
    match piece {
        Piece::Bytes(bytes) => writer.write_all(bytes),
        Piece::File { file, offset, len } => copy_file(file, offset, len, writer),
    }
}

/// PATCH(file-pieces): the most read from a file at once.
const FILE_READ: usize = 64 * 1024;

/// PATCH(file-pieces): writes `len` bytes of `file` from `offset` to `writer`, read with
/// positional reads (the file's own position is neither used nor moved) of up to `FILE_READ`
/// bytes; a file that ends first is `UnexpectedEof`.
pub(crate) fn copy_file<W: Write>(
    file: &File,
    offset: u64,
    len: usize,
    writer: &mut W,
) -> IoResult<()> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; FILE_READ.min(len)];
    let mut done = 0;
    while done < len {
        let want = (len - done).min(buf.len());
        match file.read_at(&mut buf[..want], offset + done as u64) {
            Ok(0) => return Err(file_ended(offset, len, done)),
            Ok(n) => {
                writer.write_all(&buf[..n])?;
                done += n;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// PATCH(file-pieces): the error of a file that ended after `done` of the `len` bytes its
/// piece takes from `offset`.
pub(crate) fn file_ended(offset: u64, len: usize, done: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!(
            "the file ended before the piece of the body did: {} of its {} bytes from offset {} were there",
            done, len, offset
        ),
    )
}

/// PATCH(file-pieces): passes writes on to `inner` until `cut` is set, then refuses them. A
/// chunked body whose source failed must not be ended by its last chunk as if it were whole,
/// and the encoder writes that chunk (and whatever it holds) when it is dropped.
struct UntilCut<'a, W> {
    inner: W,
    cut: &'a Cell<bool>,
}

impl<W: Write> Write for UntilCut<'_, W> {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        if self.cut.get() {
            return Err(io::Error::other("the body was cut short"));
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> IoResult<()> {
        if self.cut.get() {
            return Err(io::Error::other("the body was cut short"));
        }
        self.inner.flush()
    }
}

/// The length of the body `pieces` holds.
fn length_of(pieces: &dyn Pieces) -> usize {
    let mut length = 0;
    let _ = pieces.for_each_piece(&mut |piece| {
        length += piece.len();
        Ok(())
    });
    length
}

fn choose_transfer_encoding(
    status_code: StatusCode,
    request_headers: &[Header],
    http_version: &HTTPVersion,
    entity_length: &Option<usize>,
    has_additional_headers: bool,
) -> TransferEncoding {
    use crate::util;

    // HTTP 1.0 doesn't support other encoding
    if *http_version <= (1, 0) {
        return TransferEncoding::Identity;
    }

    // Per section 3.3.1 of RFC7230:
    // A server MUST NOT send a Transfer-Encoding header field in any response with a status code
    // of 1xx (Informational) or 204 (No Content).
    if status_code.0 < 200 || status_code.0 == 204 {
        return TransferEncoding::Identity;
    }

    // parsing the request's TE header
    let user_request = request_headers
        .iter()
        // finding TE
        .find(|h| h.field.equiv("TE"))
        // getting its value
        .map(|h| h.value.clone())
        // getting the corresponding TransferEncoding
        .and_then(|value| {
            // getting list of requested elements
            let mut parse = util::parse_header_value(value.as_str()); // TODO: remove conversion

            // sorting elements by most priority
            parse.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(Ordering::Equal));

            // trying to parse each requested encoding
            for value in parse.iter() {
                // q=0 are ignored
                if value.1 <= 0.0 {
                    continue;
                }

                if let Ok(te) = TransferEncoding::from_str(value.0) {
                    return Some(te);
                }
            }

            // encoding not found
            None
        });

    if let Some(user_request) = user_request {
        return user_request;
    }

    // if we have additional headers, using chunked
    if has_additional_headers {
        return TransferEncoding::Chunked;
    }

    // PATCH(whole-writes): a known length is sent as `Content-Length` whatever its size; only a
    // body of unknown length is chunked. (0.12.0 chunked every body from `chunked_threshold`,
    // 32 KiB, up, in 8 KiB chunks.)
    if entity_length.is_none() {
        return TransferEncoding::Chunked;
    }

    // Identity by default
    TransferEncoding::Identity
}

impl<R> Response<R>
where
    R: Read,
{
    /// Creates a new Response object.
    ///
    /// The `additional_headers` argument is a receiver that
    ///  may provide headers even after the response has been sent.
    ///
    /// All the other arguments are straight-forward.
    pub fn new(
        status_code: StatusCode,
        headers: Vec<Header>,
        data: R,
        data_length: Option<usize>,
        additional_headers: Option<Receiver<Header>>,
    ) -> Response<R> {
        let mut response = Response {
            reader: data,
            status_code,
            headers: Vec::with_capacity(16),
            data_length,
            chunked_threshold: None,
            pieces: None,
        };

        for h in headers {
            response.add_header(h)
        }

        // dummy implementation
        if let Some(additional_headers) = additional_headers {
            for h in additional_headers.iter() {
                response.add_header(h)
            }
        }

        response
    }

    /// Set a threshold for `Content-Length` where we chose chunked
    /// transfer. Notice that chunked transfer might happen regardless of
    /// this threshold, for instance when the request headers indicate
    /// it is wanted or when there is no `Content-Length`.
    ///
    /// PATCH(whole-writes): kept for compatibility; a body of known length is never chunked
    /// unless the request asks for it, so the threshold no longer changes what is sent.
    pub fn with_chunked_threshold(mut self, length: usize) -> Response<R> {
        self.chunked_threshold = Some(length);
        self
    }

    /// Convert the response into the underlying `Read` type.
    ///
    /// This is mainly useful for testing as it must consume the `Response`.
    pub fn into_reader(self) -> R {
        self.reader
    }

    /// The current `Content-Length` threshold for switching over to
    /// chunked transfer. The default is 32768 bytes. Notice that
    /// chunked transfer is mutually exclusive with sending a
    /// `Content-Length` header as per the HTTP spec.
    pub fn chunked_threshold(&self) -> usize {
        self.chunked_threshold.unwrap_or(32768)
    }

    /// Adds a header to the list.
    /// Does all the checks.
    pub fn add_header<H>(&mut self, header: H)
    where
        H: Into<Header>,
    {
        let header = header.into();

        // ignoring forbidden headers
        // PATCH(close-after-raw): except `Connection: close`, which ends the connection after
        // the response (0.12.0 dropped it silently, so no response could announce a close).
        let close =
            header.field.equiv("Connection") && header.value.as_str().eq_ignore_ascii_case("close");
        if (header.field.equiv("Connection") && !close)
            || header.field.equiv("Trailer")
            || header.field.equiv("Transfer-Encoding")
            || header.field.equiv("Upgrade")
        {
            return;
        }

        // if the header is Content-Length, setting the data length
        if header.field.equiv("Content-Length") {
            if let Ok(val) = usize::from_str(header.value.as_str()) {
                self.data_length = Some(val)
            }

            return;
        // if the header is Content-Type and it's already set, overwrite it
        } else if header.field.equiv("Content-Type") {
            if let Some(content_type_header) = self
                .headers
                .iter_mut()
                .find(|h| h.field.equiv("Content-Type"))
            {
                content_type_header.value = header.value;
                return;
            }
        }

        self.headers.push(header);
    }

    /// PATCH(connection-options): says `Connection: keep-alive`, which `add_header` drops, to
    /// an HTTP/1.0 client whose connection goes on.
    pub(crate) fn say_keep_alive(&mut self) {
        self.headers
            .push(Header::from_bytes(&b"Connection"[..], &b"keep-alive"[..]).unwrap());
    }

    /// Returns the same request, but with an additional header.
    ///
    /// Some headers cannot be modified and some other have a
    ///  special behavior. See the documentation above.
    #[inline]
    pub fn with_header<H>(mut self, header: H) -> Response<R>
    where
        H: Into<Header>,
    {
        self.add_header(header.into());
        self
    }

    /// Returns the same request, but with a different status code.
    #[inline]
    pub fn with_status_code<S>(mut self, code: S) -> Response<R>
    where
        S: Into<StatusCode>,
    {
        self.status_code = code.into();
        self
    }

    /// Returns the same request, but with different data.
    pub fn with_data<S>(self, reader: S, data_length: Option<usize>) -> Response<S>
    where
        S: Read,
    {
        Response {
            reader,
            headers: self.headers,
            status_code: self.status_code,
            data_length,
            chunked_threshold: self.chunked_threshold,
            pieces: None,
        }
    }

    /// Prints the HTTP response to a writer.
    ///
    /// This function is the one used to send the response to the client's socket.
    /// Therefore you shouldn't expect anything pretty-printed or even readable.
    ///
    /// The HTTP version and headers passed as arguments are used to
    ///  decide which features (most notably, encoding) to use.
    ///
    /// Note: does not flush the writer.
    pub fn raw_print<W: Write>(
        self,
        writer: W,
        http_version: HTTPVersion,
        request_headers: &[Header],
        do_not_send_body: bool,
        upgrade: Option<&str>,
    ) -> IoResult<()> {
        self.print(
            writer,
            http_version,
            request_headers,
            do_not_send_body,
            upgrade,
            None,
        )
    }

    /// `raw_print`. PATCH(file-pieces): with `socket`, the socket that `writer` writes to (its
    /// buffers flushed by `writer.flush()`), a file's piece of a body sent with a
    /// `Content-Length` goes from the file to the socket by `sendfile`.
    pub(crate) fn print<W: Write>(
        mut self,
        mut writer: W,
        http_version: HTTPVersion,
        request_headers: &[Header],
        do_not_send_body: bool,
        upgrade: Option<&str>,
        socket: Option<&Connection>,
    ) -> IoResult<()> {
        let mut transfer_encoding = Some(choose_transfer_encoding(
            self.status_code,
            request_headers,
            &http_version,
            &self.data_length,
            false, /* TODO */
        ));

        // add `Date` if not in the headers
        if !self.headers.iter().any(|h| h.field.equiv("Date")) {
            self.headers.insert(0, build_date_header());
        }

        // add `Server` if not in the headers
        if !self.headers.iter().any(|h| h.field.equiv("Server")) {
            self.headers.insert(
                0,
                Header::from_bytes(&b"Server"[..], &b"tiny-http (Rust)"[..]).unwrap(),
            );
        }

        // handling upgrade
        if let Some(upgrade) = upgrade {
            self.headers.insert(
                0,
                Header::from_bytes(&b"Upgrade"[..], upgrade.as_bytes()).unwrap(),
            );
            self.headers.insert(
                0,
                Header::from_bytes(&b"Connection"[..], &b"upgrade"[..]).unwrap(),
            );
            transfer_encoding = None;
        }

        // if the transfer encoding is identity, the content length must be known ; therefore if
        // we don't know it, we buffer the entire response first here
        // while this is an expensive operation, it is only ever needed for clients using HTTP 1.0
        let (mut reader, data_length): (Box<dyn Read>, _) =
            match (self.data_length, transfer_encoding) {
                (Some(l), _) => (Box::new(self.reader), Some(l)),
                (None, Some(TransferEncoding::Identity)) => {
                    let mut buf = Vec::new();
                    self.reader.read_to_end(&mut buf)?;
                    let l = buf.len();
                    (Box::new(Cursor::new(buf)), Some(l))
                }
                _ => (Box::new(self.reader), None),
            };

        // checking whether to ignore the body of the response
        let do_not_send_body = do_not_send_body
            || match self.status_code.0 {
                // status code 1xx, 204 and 304 MUST not include a body
                100..=199 | 204 | 304 => true,
                _ => false,
            };

        // preparing headers for transfer
        match transfer_encoding {
            Some(TransferEncoding::Chunked) => self
                .headers
                .push(Header::from_bytes(&b"Transfer-Encoding"[..], &b"chunked"[..]).unwrap()),

            // PATCH(no-length-without-content): a 1xx or 204 response has no content, and RFC
            // 9110 §8.6 forbids a `Content-Length` in it (0.12.0 sent `Content-Length: 0`).
            Some(TransferEncoding::Identity) if matches!(self.status_code.0, 100..=199 | 204) => {}

            Some(TransferEncoding::Identity) => {
                assert!(data_length.is_some());
                let data_length = data_length.unwrap();

                self.headers.push(
                    Header::from_bytes(
                        &b"Content-Length"[..],
                        format!("{}", data_length).as_bytes(),
                    )
                    .unwrap(),
                )
            }

            _ => (),
        };

        // sending headers
        let mut head = Vec::with_capacity(256);
        write_message_header(&mut head, &http_version, &self.status_code, &self.headers)?;

        // sending the body
        if !do_not_send_body {
            match transfer_encoding {
                Some(TransferEncoding::Chunked) => {
                    use chunked_transfer::Encoder;

                    writer.write_all(&head)?;
                    // PATCH(file-pieces): a body that fails is not ended by its last chunk.
                    let cut = Cell::new(false);
                    let mut writer = Encoder::new(UntilCut {
                        inner: writer,
                        cut: &cut,
                    });
                    let sent = match &self.pieces {
                        Some(pieces) => {
                            pieces.for_each_piece(&mut |piece| write_piece(&mut writer, piece))
                        }
                        None => io::copy(&mut reader, &mut writer).map(drop),
                    };
                    cut.set(sent.is_err());
                    drop(writer);
                    sent?;
                }

                Some(TransferEncoding::Identity) => {
                    assert!(data_length.is_some());
                    let data_length = data_length.unwrap();

                    match &self.pieces {
                        Some(pieces) => {
                            write_pieces(&mut writer, &head, &**pieces, data_length, socket)?
                        }
                        None => write_whole(&mut writer, head, &mut reader, data_length)?,
                    }
                }

                _ => writer.write_all(&head)?,
            }
        } else {
            writer.write_all(&head)?;
        }

        Ok(())
    }

    /// Retrieves the current value of the `Response` status code
    pub fn status_code(&self) -> StatusCode {
        self.status_code
    }

    /// Retrieves the current value of the `Response` data length
    pub fn data_length(&self) -> Option<usize> {
        self.data_length
    }

    /// Retrieves the current list of `Response` headers
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }
}

impl<R> Response<R>
where
    R: Read + Send + 'static,
{
    /// Turns this response into a `Response<Box<Read + Send>>`.
    pub fn boxed(self) -> ResponseBox {
        Response {
            reader: Box::new(self.reader) as Box<dyn Read + Send>,
            status_code: self.status_code,
            headers: self.headers,
            data_length: self.data_length,
            chunked_threshold: self.chunked_threshold,
            pieces: self.pieces,
        }
    }
}

impl Response<File> {
    /// Builds a new `Response` from a `File`.
    ///
    /// The `Content-Type` will **not** be automatically detected,
    ///  you must set it yourself.
    pub fn from_file(file: File) -> Response<File> {
        let file_size = file.metadata().ok().map(|v| v.len() as usize);

        Response::new(
            StatusCode(200),
            Vec::with_capacity(0),
            file,
            file_size,
            None,
        )
    }
}

impl Response<Cursor<Vec<u8>>> {
    pub fn from_data<D>(data: D) -> Response<Cursor<Vec<u8>>>
    where
        D: Into<Vec<u8>>,
    {
        let data = data.into();
        let data_len = data.len();

        Response::new(
            StatusCode(200),
            Vec::with_capacity(0),
            Cursor::new(data),
            Some(data_len),
            None,
        )
    }

    pub fn from_string<S>(data: S) -> Response<Cursor<Vec<u8>>>
    where
        S: Into<String>,
    {
        let data = data.into();
        let data_len = data.len();

        Response::new(
            StatusCode(200),
            vec![
                Header::from_bytes(&b"Content-Type"[..], &b"text/plain; charset=UTF-8"[..])
                    .unwrap(),
            ],
            Cursor::new(data.into_bytes()),
            Some(data_len),
            None,
        )
    }
}

impl Response<io::Empty> {
    /// PATCH(lent-bodies): a `200` response whose body is `pieces`, already in memory and
    /// written from there (see `Pieces`); its reader is empty.
    pub fn from_pieces(pieces: impl Pieces + 'static) -> Response<io::Empty> {
        let length = length_of(&pieces);
        let mut response =
            Response::new(StatusCode(200), Vec::new(), io::empty(), Some(length), None);
        response.pieces = Some(Arc::new(pieces));
        response
    }

    /// Builds an empty `Response` with the given status code.
    pub fn empty<S>(status_code: S) -> Response<io::Empty>
    where
        S: Into<StatusCode>,
    {
        Response::new(
            status_code.into(),
            Vec::with_capacity(0),
            io::empty(),
            Some(0),
            None,
        )
    }

    /// DEPRECATED. Use `empty` instead.
    pub fn new_empty(status_code: StatusCode) -> Response<io::Empty> {
        Response::empty(status_code)
    }
}

impl Clone for Response<io::Empty> {
    fn clone(&self) -> Response<io::Empty> {
        Response {
            reader: io::empty(),
            status_code: self.status_code,
            headers: self.headers.clone(),
            data_length: self.data_length,
            chunked_threshold: self.chunked_threshold,
            pieces: self.pieces.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that records each write it is given.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
            self.0.push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> IoResult<()> {
            Ok(())
        }
    }

    /// PATCH(whole-writes): a body of known length, of any size, goes out with its
    /// `Content-Length`, the head with the start of the body, in writes of at most 64 KiB.
    #[test]
    fn a_known_length_is_sent_whole_in_few_writes() {
        for length in [0, 10, 9_000, 40_000, 65_536, 1_048_576 + 7] {
            let body: Vec<u8> = (0..length).map(|i| (i % 251) as u8).collect();
            let mut writes = Writes::default();
            Response::from_data(body.clone())
                .raw_print(&mut writes, HTTPVersion(1, 1), &[], false, None)
                .unwrap();
            let sent: Vec<u8> = writes.0.concat();
            let head_end = sent.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let head = String::from_utf8_lossy(&sent[..head_end]).to_string();
            assert!(
                head.contains(&format!("Content-Length: {}\r\n", length)),
                "{}",
                head
            );
            assert!(!head.contains("Transfer-Encoding"), "{}", head);
            assert_eq!(&sent[head_end..], &body[..], "{}", length);
            assert!(writes.0.iter().all(|w| w.len() <= WHOLE_WRITE));
            let fewest = sent.len().div_ceil(WHOLE_WRITE);
            assert_eq!(
                writes.0.len(),
                fewest,
                "{}: {} writes",
                length,
                writes.0.len()
            );
        }
    }

    /// PATCH(no-length-without-content): a 1xx or 204 response has no `Content-Length` and no
    /// body, whatever body it was given; other statuses keep theirs, `Content-Length: 0` too.
    #[test]
    fn no_content_length_on_a_1xx_or_204() {
        let head = |status: u16, body: &str, version: HTTPVersion| {
            let mut writes = Writes::default();
            Response::from_string(body)
                .with_status_code(status)
                .raw_print(&mut writes, version, &[], false, None)
                .unwrap();
            String::from_utf8(writes.0.concat()).unwrap()
        };
        for version in [HTTPVersion(1, 1), HTTPVersion(1, 0)] {
            for (status, body) in [(100, ""), (101, ""), (204, ""), (204, "body")] {
                let sent = head(status, body, version.clone());
                assert!(sent.ends_with("\r\n\r\n"), "{}", sent);
                assert!(!sent.contains("Content-Length"), "{}", sent);
                assert!(!sent.contains("Transfer-Encoding"), "{}", sent);
            }
            for status in [200, 205, 404] {
                let sent = head(status, "", version.clone());
                assert!(sent.contains("Content-Length: 0\r\n"), "{}", sent);
            }
        }
        let mut writes = Writes::default();
        Response::new_empty(crate::StatusCode(100))
            .raw_print(&mut writes, HTTPVersion(1, 1), &[], true, None)
            .unwrap();
        let sent = String::from_utf8(writes.0.concat()).unwrap();
        assert!(sent.starts_with("HTTP/1.1 100 Continue\r\n"), "{}", sent);
        assert!(!sent.contains("Content-Length"), "{}", sent);
    }

    /// A reader that gives at most `step` bytes a call.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
            let n = buf.len().min(self.step).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// PATCH(whole-writes): a body read a little at a time still leaves in the fewest writes,
    /// each as full as it can be, every byte in order.
    #[test]
    fn a_body_read_in_small_pieces_still_goes_out_in_full_writes() {
        for length in [1, 5_000, 65_536, 200_001] {
            let body: Vec<u8> = (0..length).map(|i| (i % 253) as u8).collect();
            let mut writes = Writes::default();
            let reader = Trickle {
                data: &body,
                step: 999,
            };
            Response::new(StatusCode(200), vec![], reader, Some(length), None)
                .raw_print(&mut writes, HTTPVersion(1, 1), &[], false, None)
                .unwrap();
            let sent = writes.0.concat();
            let head_end = sent.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            assert_eq!(&sent[head_end..], &body[..], "{}", length);
            assert_eq!(
                writes.0.len(),
                sent.len().div_ceil(WHOLE_WRITE),
                "{}",
                length
            );
            let (last, full) = writes.0.split_last().unwrap();
            assert!(full.iter().all(|w| w.len() == WHOLE_WRITE), "{}", length);
            assert!(!last.is_empty() && last.len() <= WHOLE_WRITE, "{}", length);
        }
    }

    /// A body that ends before its declared length is sent as far as it goes.
    #[test]
    fn a_short_body_ends_the_response() {
        let mut writes = Writes::default();
        Response::new(StatusCode(200), vec![], &b"abc"[..], Some(100_000), None)
            .raw_print(&mut writes, HTTPVersion(1, 1), &[], false, None)
            .unwrap();
        let sent = writes.0.concat();
        assert!(sent.ends_with(b"\r\n\r\nabc"));
        assert_eq!(writes.0.len(), 1);
    }

    /// A body of several pieces in memory.
    struct Parts(Vec<Vec<u8>>);

    impl Pieces for Parts {
        fn for_each_piece(&self, each: &mut dyn FnMut(Piece<'_>) -> IoResult<()>) -> IoResult<()> {
            self.0
                .iter()
                .try_for_each(|piece| each(Piece::Bytes(piece)))
        }
    }

    /// PATCH(lent-bodies): a body of pieces goes out with its `Content-Length`, every byte in
    /// order; small pieces are gathered with the head into one write and a large piece is
    /// written in one write of its own, straight from where it lies.
    #[test]
    fn pieces_are_sent_whole_and_a_large_one_as_it_lies() {
        let big: Vec<u8> = (0..1_048_576).map(|i| (i % 249) as u8).collect();
        let parts = vec![b"{\"a\":[".to_vec(), big.clone(), b"]}".to_vec()];
        let body = parts.concat();
        let mut writes = Writes::default();
        Response::from_pieces(Parts(parts))
            .raw_print(&mut writes, HTTPVersion(1, 1), &[], false, None)
            .unwrap();
        let sent = writes.0.concat();
        let head_end = sent.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&sent[..head_end]).to_string();
        assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
        assert_eq!(&sent[head_end..], &body[..]);
        assert_eq!(
            writes.0.len(),
            3,
            "the head and opening, the big piece, the close"
        );
        assert!(writes.0[0].ends_with(b"\r\n\r\n{\"a\":["));
        assert_eq!(writes.0[1], big);

        // Small pieces only: the whole response in one write.
        let mut writes = Writes::default();
        Response::from_pieces(Parts(vec![b"ab".to_vec(), vec![], b"cd".to_vec()]))
            .with_status_code(201)
            .raw_print(&mut writes, HTTPVersion(1, 1), &[], false, None)
            .unwrap();
        assert_eq!(writes.0.len(), 1);
        let sent = String::from_utf8(writes.0.concat()).unwrap();
        assert!(sent.starts_with("HTTP/1.1 201 "), "{}", sent);
        assert!(sent.contains("Content-Length: 4\r\n"), "{}", sent);
        assert!(sent.ends_with("\r\n\r\nabcd"), "{}", sent);
    }

    /// PATCH(lent-bodies): pieces are chunked when the request asks for it, sent without a
    /// body to `HEAD`, and a clone of the response carries them too.
    #[test]
    fn pieces_are_chunked_when_asked_and_kept_by_a_clone() {
        let te: Header = "TE: chunked".parse().unwrap();
        let mut writes = Writes::default();
        Response::from_pieces(Parts(vec![b"abc".to_vec(), b"de".to_vec()]))
            .raw_print(&mut writes, HTTPVersion(1, 1), &[te], false, None)
            .unwrap();
        let sent = String::from_utf8(writes.0.concat()).unwrap();
        assert!(sent.contains("Transfer-Encoding: chunked\r\n"), "{}", sent);
        assert!(
            sent.ends_with("\r\n\r\n5\r\nabcde\r\n0\r\n\r\n"),
            "{}",
            sent
        );

        let response = Response::from_pieces(b"xyz".to_vec());
        let mut writes = Writes::default();
        response
            .clone()
            .raw_print(&mut writes, HTTPVersion(1, 1), &[], false, None)
            .unwrap();
        assert!(
            writes.0.concat().ends_with(b"\r\n\r\nxyz"),
            "the clone's body"
        );
        let mut writes = Writes::default();
        response
            .raw_print(&mut writes, HTTPVersion(1, 1), &[], true, None)
            .unwrap();
        let sent = String::from_utf8(writes.0.concat()).unwrap();
        assert!(sent.contains("Content-Length: 3\r\n"), "{}", sent);
        assert!(sent.ends_with("\r\n\r\n"), "no body to HEAD: {}", sent);
    }

    /// An open file holding `content`, its name already removed.
    fn file_of(name: &str, content: &[u8]) -> Arc<File> {
        let path = std::env::temp_dir().join(format!(
            "tiny_http-response-{}-{}",
            std::process::id(),
            name
        ));
        let _ = std::fs::remove_file(&path);
        let mut file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        file.write_all(content).unwrap();
        Arc::new(file)
    }

    /// Bytes, `len` bytes of a file from `offset`, bytes.
    struct FileParts {
        file: Arc<File>,
        offset: u64,
        len: usize,
    }

    impl Pieces for FileParts {
        fn for_each_piece(&self, each: &mut dyn FnMut(Piece<'_>) -> IoResult<()>) -> IoResult<()> {
            each(Piece::Bytes(b"<a>"))?;
            each(Piece::File {
                file: &self.file,
                offset: self.offset,
                len: self.len,
            })?;
            each(Piece::Bytes(b"<z>"))
        }
    }

    /// The body of `sent`, a response, after its head.
    fn body_of(sent: &[u8]) -> &[u8] {
        let head_end = sent.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        &sent[head_end..]
    }

    /// PATCH(file-pieces): written to a writer that is not a socket, a file's piece is read at
    /// its offset (the file's position untouched) and written, with a `Content-Length` or
    /// chunked; a file that ends before its piece is `UnexpectedEof`, and a chunked body cut so
    /// has no last chunk.
    #[test]
    fn file_pieces_are_read_into_any_other_writer() {
        let content: Vec<u8> = (0..300_000).map(|i| (i % 251) as u8).collect();
        let file = file_of("any-writer", &content);
        let (offset, len) = (12_345, 200 * 1024);
        let whole = [b"<a>", &content[offset..offset + len], b"<z>"].concat();
        let response = Response::from_pieces(FileParts {
            file: Arc::clone(&file),
            offset: offset as u64,
            len,
        });
        assert_eq!(response.data_length(), Some(whole.len()));

        let mut sent = Vec::new();
        response
            .clone()
            .raw_print(&mut sent, HTTPVersion(1, 1), &[], false, None)
            .unwrap();
        let head = String::from_utf8_lossy(&sent[..sent.len() - whole.len()]).to_string();
        assert!(
            head.contains(&format!("Content-Length: {}\r\n", whole.len())),
            "{}",
            head
        );
        assert!(body_of(&sent) == whole, "the body differs from the pieces");

        let te: Header = "TE: chunked".parse().unwrap();
        let mut sent = Vec::new();
        response
            .raw_print(
                &mut sent,
                HTTPVersion(1, 1),
                std::slice::from_ref(&te),
                false,
                None,
            )
            .unwrap();
        let mut chunks = body_of(&sent);
        let mut body = Vec::new();
        loop {
            let line_end = chunks.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = std::str::from_utf8(&chunks[..line_end]).unwrap();
            let size = usize::from_str_radix(size, 16).unwrap();
            body.extend_from_slice(&chunks[line_end + 2..line_end + 2 + size]);
            chunks = &chunks[line_end + 2 + size + 2..];
            if size == 0 {
                break;
            }
        }
        assert!(chunks.is_empty());
        assert!(body == whole, "the chunked body differs from the pieces");
        assert_eq!(io::Seek::stream_position(&mut &*file).unwrap(), 300_000);

        // A file that ends 1 byte before the piece does.
        let short = |headers: &[Header]| {
            let mut sent = Vec::new();
            let error = Response::from_pieces(FileParts {
                file: Arc::clone(&file),
                offset: 300_000 - 70_000,
                len: 70_001,
            })
            .raw_print(&mut sent, HTTPVersion(1, 1), headers, false, None)
            .unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
            assert_eq!(
                error.to_string(),
                "the file ended before the piece of the body did: 70000 of its 70001 bytes from offset 230000 were there"
            );
            sent
        };
        let sent = short(&[]);
        assert!(body_of(&sent).len() < 3 + 70_001 + 3);
        let sent = short(&[te]);
        assert!(!sent.ends_with(b"0\r\n\r\n"), "no last chunk");
    }

    /// Counts the bytes written through it.
    struct Counting<W> {
        inner: W,
        bytes: usize,
    }

    impl<W: Write> Write for Counting<W> {
        fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
            let n = self.inner.write(buf)?;
            self.bytes += n;
            Ok(n)
        }
        fn flush(&mut self) -> IoResult<()> {
            self.inner.flush()
        }
    }

    /// PATCH(file-pieces): written to its socket with a `Content-Length`, a file's piece goes
    /// from the file to the socket, none of it through the writer, after everything before it
    /// and before everything after it.
    #[test]
    fn a_file_piece_goes_from_the_file_to_the_socket() {
        use std::net::{TcpListener, TcpStream};
        let content: Vec<u8> = (0..300_000).map(|i| (i % 251) as u8).collect();
        let (offset, len) = (4_321, 200 * 1024);
        let whole = [b"<a>", &content[offset..offset + len], b"<z>"].concat();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client
            .set_read_timeout(Some(std::time::Duration::from_secs(60)))
            .unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            client.read_to_end(&mut got).map(|_| got)
        });
        let socket = Connection::from(listener.accept().unwrap().0);
        let mut writer = Counting {
            inner: io::BufWriter::new(socket.share()),
            bytes: 0,
        };
        Response::from_pieces(FileParts {
            file: file_of("socket", &content),
            offset: offset as u64,
            len,
        })
        .print(
            &mut writer,
            HTTPVersion(1, 1),
            &[],
            false,
            None,
            Some(&socket),
        )
        .unwrap();
        writer.flush().unwrap();
        socket.shutdown(std::net::Shutdown::Both).unwrap();
        let got = reader.join().unwrap().unwrap();
        assert!(body_of(&got) == whole, "the body differs from the pieces");
        assert_eq!(writer.bytes, got.len() - len, "only the file went around");
    }

    /// A body of unknown length is still chunked.
    #[test]
    fn an_unknown_length_is_chunked() {
        let mut writes = Writes::default();
        Response::new(StatusCode(200), vec![], &b"abc"[..], None, None)
            .raw_print(&mut writes, HTTPVersion(1, 1), &[], false, None)
            .unwrap();
        let sent = String::from_utf8(writes.0.concat()).unwrap();
        assert!(sent.contains("Transfer-Encoding: chunked\r\n"), "{}", sent);
        assert!(sent.ends_with("\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), "{}", sent);
    }
}
