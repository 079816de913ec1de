//! Server-sent events: the framing every stream uses (events, keep-alive comments, a flush
//! after each so nothing waits in a buffer) and the message stream at `GET /api/stream`, which
//! sends a channel's backlog after `since_id` (or `Last-Event-ID`) and then each new message as
//! it is posted (with `reader`, the backlog starts at that reader's position, which moves past
//! each message sent), and a `deleted` event (`{"id":N}`, or `{"target":T,"through":N}` for a whole
//! channel) for each deletion, so a page can drop what is gone. An open message stream is listed as
//! listening on its channel, until its client goes: a stream with nothing to send looks every
//! second whether the connection is still there, so a departed client's place among the open
//! streams is freed within about a second, not at the first keep-alive that fails to be written.

use crate::app::App;
use crate::error::Error;
use crate::http::exchange::{ClientWatch, Incoming, Reply};
use crate::http::guard::Caller;
use crate::http::rest::listener_name;
use crate::message::wire_id;
use crate::presence::Kind;
use crate::store::CLIENT_CHECK;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a stream waits for something to send before it sends a keep-alive comment.
pub(crate) const KEEPALIVE: Duration = Duration::from_secs(15);

/// Most messages written per wake-up of a stream.
const BATCH: usize = 200;

/// Writes one event and flushes it. `data` may span lines.
pub(crate) fn event(
    w: &mut dyn Write,
    id: Option<&str>,
    name: Option<&str>,
    data: &str,
) -> io::Result<()> {
    let mut out = String::with_capacity(data.len() + 64);
    if let Some(id) = id {
        out.push_str(&format!("id: {id}\n"));
    }
    if let Some(name) = name {
        out.push_str(&format!("event: {name}\n"));
    }
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    w.write_all(out.as_bytes())?;
    w.flush()
}

/// When a stream with nothing to send writes a keep-alive comment (`KEEPALIVE` after it last
/// wrote) and looks whether its client is still there (at every wait that brought nothing, and
/// so at least every `CLIENT_CHECK`): a stream waits most of its life, and a write to a departed
/// client may succeed for a while.
pub(crate) struct Pacing {
    keepalive: Instant,
}

impl Pacing {
    pub(crate) fn new() -> Pacing {
        Pacing {
            keepalive: Instant::now() + KEEPALIVE,
        }
    }

    /// How long the stream may wait for something to send.
    pub(crate) fn wait_until(&self) -> Instant {
        self.keepalive.min(Instant::now() + CLIENT_CHECK)
    }

    /// After a wait that brought nothing: false once the client has gone; otherwise writes the
    /// keep-alive when it is due.
    pub(crate) fn idle(&mut self, w: &mut dyn Write, client: &ClientWatch) -> io::Result<bool> {
        if client.gone() {
            return Ok(false);
        }
        if Instant::now() >= self.keepalive {
            comment(w, "keepalive")?;
            self.sent();
        }
        Ok(true)
    }

    /// After something was written: the next keep-alive is due `KEEPALIVE` from now.
    pub(crate) fn sent(&mut self) {
        self.keepalive = Instant::now() + KEEPALIVE;
    }
}

/// Writes a comment line, which clients ignore and proxies see as traffic.
pub(crate) fn comment(w: &mut dyn Write, text: &str) -> io::Result<()> {
    w.write_all(format!(": {text}\n\n").as_bytes())?;
    w.flush()
}

/// `GET /api/stream?target=T[&since_id=N][&reader=R]`: the backlog after N, then live
/// messages. Without `since_id` or `Last-Event-ID` the stream starts after R's position, or
/// without a reader with the next message posted.
pub(crate) fn message_stream(
    app: &Arc<App>,
    rq: &Incoming,
    caller: &Caller,
) -> Result<Reply, Error> {
    let target = crate::names::check("target", rq.param("target").unwrap_or(""))?;
    let reader = match rq.param("reader") {
        Some(raw) => {
            let reader = crate::names::check("reader", raw)?;
            crate::agent::own_reader(&reader, caller.agent.as_deref())?;
            app.store.admit_reader(Some(&reader), &target)?;
            Some(reader)
        }
        None => None,
    };
    let resume = match rq.header("last-event-id") {
        Some(raw) => Some(raw.trim().parse::<u64>().map_err(|_| {
            Error::BadRequest(format!("Last-Event-ID must be a message id, not {raw:?}"))
        })?),
        None => None,
    };
    let since = resume
        .or(rq.number_param("since_id")?)
        .unwrap_or_else(|| match &reader {
            Some(reader) => app.store.position(reader, &target),
            None => app.store.last_id(),
        });
    let name = listener_name(rq, caller)?;
    let place = app.long_requests.take(&caller.client(), None)?;
    let here = app
        .presence
        .arrive(std::slice::from_ref(&target), Kind::Stream, name.as_deref());
    let app = Arc::clone(app);
    let client = rq.client.clone();
    Ok(Reply::stream(Box::new(move |w| {
        let (_place, _here) = (place, here);
        // Browsers reconnect after `retry` milliseconds (3 s by default).
        w.write_all(b"retry: 1000\n\n")?;
        comment(w, "stream open")?;
        let mut last = since;
        let mut deletions = app.store.deletions(&target);
        let mut pacing = Pacing::new();
        loop {
            let changes =
                app.store
                    .wait_changes(&target, last, deletions, BATCH, pacing.wait_until());
            if app.store.is_closed() {
                return Ok(());
            }
            deletions = changes.deletions;
            if changes.messages.is_empty() && changes.deleted.is_empty() {
                if !pacing.idle(w, &client)? {
                    return Ok(());
                }
                continue;
            }
            for d in &changes.deleted {
                let data = serde_json::to_string(d).unwrap_or_default();
                event(w, None, Some("deleted"), &data)?;
            }
            for json in &changes.messages {
                // A wire JSON always starts with its id.
                let id = wire_id(json).unwrap_or(last);
                event(w, Some(&id.to_string()), Some("message"), json)?;
                last = id;
            }
            match &reader {
                // Written (and flushed) to the peer, so counted as read. A position the
                // journal cannot take is logged there and stays where the journal has it: the
                // stream goes on, and its next batch tries again.
                Some(reader) if !changes.messages.is_empty() => {
                    let _ = app.store.mark_read(reader, &target, last);
                }
                _ => {}
            }
            pacing.sent();
        }
    })))
}
