//! One run of `watch --exec CMD`: `sh -c CMD` with the message text on its standard input and
//! the message's id, sender and target in its environment. Its output is copied to the
//! watcher's own output as it comes (threads read the pipes; this thread writes), so it lands
//! wherever the caller's `Io` points. The run is over when CMD has exited and its pipes are
//! closed, or one second after it exited if something it started in the background still
//! holds them: a leftover grandchild must not hold the watch loop.
//!
//! CMD runs in a process group of its own, led by a guardian started before it: a `sh` that
//! ignores SIGINT, SIGTERM and SIGHUP and reads a pipe only the watcher writes to. If the watcher dies in the
//! middle of a run (a signal it does not handle, SIGKILL, a crash), the kernel closes the pipe
//! and the guardian sends SIGTERM to CMD's group, so no review carries on unseen after the
//! watcher is gone and then runs a second time when it restarts. After a normal run the
//! watcher kills the guardian itself. This needs no signal handler and no `unsafe`.
//!
//! A run still going at the watch's deadline (`--timeout`) is stopped the same way: the
//! watcher closes the guardian's pipe, so CMD's group gets SIGTERM, and SIGKILL if it is still
//! running `STOP_GRACE` later.

use super::error::Error;
use super::Io;
use crate::message::Message;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long output is still copied after CMD exited while its pipes stay open.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(1);
/// How long CMD has to end after SIGTERM at the deadline before its group gets SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How a run ended.
pub(super) enum Ran {
    /// CMD exited on its own.
    Finished(ExitStatus),
    /// The deadline came while CMD ran: it was stopped.
    Stopped,
}

enum Event {
    Out(Vec<u8>),
    Err(Vec<u8>),
    Closed,
    Exited(std::io::Result<ExitStatus>),
}

/// Runs `cmd` for `message` with exactly `env` plus `extra` as its environment; returns its
/// exit status once it has finished, or `Stopped` once it has been stopped at `deadline`.
pub(super) fn run(
    cmd: &str,
    message: &Message,
    env: &BTreeMap<String, String>,
    extra: &[(&str, String)],
    deadline: Option<Instant>,
    io: &mut Io,
) -> Result<Ran, Error> {
    // The guardian starts first and leads the process group CMD then joins, so there is no
    // moment in which CMD runs unguarded: a watcher that dies right after CMD started (even
    // before it learnt CMD's pid) still leaves a guardian to stop it.
    let mut guardian = guard()?;
    let spawned = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env_clear()
        .envs(env)
        .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(guardian.id() as i32)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            release(guardian);
            return Err(Error::Local(format!("cannot start sh -c {cmd:?}: {e}")));
        }
    };
    let (tx, rx) = mpsc::channel();
    if let Some(mut stdin) = child.stdin.take() {
        let text = message.text.clone();
        // CMD may exit without reading its input: the write then fails, which is fine.
        thread::spawn(move || {
            let _ = stdin.write_all(text.as_bytes());
        });
    }
    if let Some(out) = child.stdout.take() {
        pump(out, tx.clone(), Event::Out);
    }
    if let Some(err) = child.stderr.take() {
        pump(err, tx.clone(), Event::Err);
    }
    thread::spawn(move || {
        let _ = tx.send(Event::Exited(child.wait()));
    });
    let (mut open, mut status) = (2, None);
    let mut exited_at: Option<Instant> = None;
    let mut failed_output = None;
    // When CMD was sent SIGTERM at the deadline, and whether SIGKILL followed.
    let (mut stopped_at, mut killed): (Option<Instant>, bool) = (None, false);
    loop {
        let until = match (exited_at, stopped_at) {
            (Some(at), _) => Some(at + DRAIN_AFTER_EXIT),
            (None, Some(_)) if killed => None,
            (None, Some(at)) => Some(at + STOP_GRACE),
            (None, None) => deadline,
        };
        let event = match until {
            None => rx.recv().ok(),
            Some(until) => {
                match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                    Ok(event) => Some(event),
                    Err(mpsc::RecvTimeoutError::Disconnected) => None,
                    Err(mpsc::RecvTimeoutError::Timeout) if exited_at.is_some() => None,
                    Err(mpsc::RecvTimeoutError::Timeout) if stopped_at.is_some() => {
                        kill_group(guardian.id());
                        killed = true;
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        // The guardian's pipe closes: it sends SIGTERM to CMD's group.
                        drop(guardian.stdin.take());
                        stopped_at = Some(Instant::now());
                        continue;
                    }
                }
            }
        };
        let Some(event) = event else { break };
        let written = match event {
            Event::Out(bytes) => io.stdout.write_all(&bytes).and_then(|()| io.stdout.flush()),
            Event::Err(bytes) => io.stderr.write_all(&bytes).and_then(|()| io.stderr.flush()),
            Event::Closed => {
                open -= 1;
                Ok(())
            }
            Event::Exited(s) => {
                status = Some(s);
                exited_at = Some(Instant::now());
                Ok(())
            }
        };
        if let Err(e) = written {
            failed_output.get_or_insert(e);
        }
        if open == 0 && status.is_some() {
            break;
        }
    }
    release(guardian);
    if let Some(e) = failed_output {
        return Err(Error::output(e));
    }
    match status {
        Some(Ok(_)) if stopped_at.is_some() => Ok(Ran::Stopped),
        Some(Ok(s)) => Ok(Ran::Finished(s)),
        Some(Err(e)) => Err(Error::Local(format!("cannot wait for sh -c {cmd:?}: {e}"))),
        None => Err(Error::Local(format!("lost track of sh -c {cmd:?}"))),
    }
}

/// Starts the guardian (see the top of this file) as the leader of a new process group, which
/// CMD joins. Its stdin is the pipe; it is kept open by the returned `Child` until `release`.
/// `kill -TERM 0` signals the guardian's own group: CMD and whatever CMD started, and the
/// guardian itself, which ignores it.
fn guard() -> Result<Child, Error> {
    Command::new("sh")
        .arg("-c")
        .arg(r#"trap '' INT TERM HUP; read -r _ignored; kill -TERM 0 2>/dev/null"#)
        .arg("relay-watch-guard")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| Error::Local(format!("cannot start the guardian of CMD: {e}")))
}

/// Ends the guardian without letting it signal anything: CMD finished on its own.
fn release(mut guardian: Child) {
    let _ = guardian.kill();
    let _ = guardian.wait();
}

/// Sends SIGKILL to the process group `group` (CMD's, led by the guardian): CMD did not end
/// after SIGTERM.
fn kill_group(group: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{group}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Copies a pipe into the channel until it closes.
fn pump(mut from: impl Read + Send + 'static, to: mpsc::Sender<Event>, wrap: fn(Vec<u8>) -> Event) {
    thread::spawn(move || {
        let mut buf = vec![0; 8192];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.send(wrap(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = to.send(Event::Closed);
    });
}
