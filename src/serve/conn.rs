//! The timeouts of one connection that hyper does not keep apart: how long a connection may wait
//! for a request (idle), how long a request's headers may take once they begin, and how long a
//! client may leave its answer unread (write). [`TimedStream`] wraps the socket and fails a read
//! or write past its deadline (hyper then closes the connection); [`Tracked`] tells it where
//! the connection is: waiting for a request, reading one's headers, or in a request (received
//! by the routes, which bound the body with `--body-timeout`, until its answer is written).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::body::{Body, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The limits of one connection (from [`super::Timeouts`]).
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub idle: Duration,
    pub header: Duration,
    pub write: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the first byte of a request (a new connection, or one kept alive after an
    /// answer), since the instant.
    Idle(Instant),
    /// Reading a request's headers, since their first byte.
    Head(Instant),
    /// A request is with the routes, or its answer is being written.
    Request,
}

/// Where one connection is, shared by its stream and its service; and the waker of the
/// connection's last read that waited, woken when its answer ends: hyper polls a connection's
/// read once per wake-up, and the one before the answer was written ran without a deadline (in
/// a request), so the idle deadline must be armed by a new poll.
#[derive(Debug)]
pub struct ConnState {
    phase: Mutex<Phase>,
    reader: Mutex<Option<Waker>>,
}

impl ConnState {
    pub fn new() -> Arc<Self> {
        Arc::new(ConnState {
            phase: Mutex::new(Phase::Idle(Instant::now())),
            reader: Mutex::new(None),
        })
    }

    fn waiting_reader(&self, w: &Waker) {
        let mut r = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        if !r.as_ref().is_some_and(|old| old.will_wake(w)) {
            *r = Some(w.clone());
        }
    }

    /// The answer is over: idle from now, and the read polled again to arm that deadline.
    fn answer_ended(&self) {
        self.set(Phase::Idle(Instant::now()));
        if let Some(w) = self.reader.lock().unwrap_or_else(|e| e.into_inner()).take() {
            w.wake();
        }
    }

    fn get(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, p: Phase) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = p;
    }

    /// Bytes arrived: a request's headers begin if none was under way.
    fn bytes_read(&self) {
        let mut p = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        if let Phase::Idle(_) = *p {
            *p = Phase::Head(Instant::now());
        }
    }
}

/// A socket whose reads fail past the idle or header deadline and whose writes fail when the
/// client has read nothing of its answer for the write timeout (no progress for that long, as
/// nginx's `send_timeout`).
pub struct TimedStream<S> {
    inner: S,
    state: Arc<ConnState>,
    limits: ConnLimits,
    read_timer: Pin<Box<Sleep>>,
    /// The deadline of a write that could not proceed, while it cannot.
    write_timer: Pin<Box<Sleep>>,
    write_stalled: bool,
}

impl<S> TimedStream<S> {
    pub fn new(inner: S, state: Arc<ConnState>, limits: ConnLimits) -> Self {
        let far = Instant::now() + Duration::from_secs(86_400);
        TimedStream {
            inner,
            state,
            limits,
            read_timer: Box::pin(tokio::time::sleep_until(far)),
            write_timer: Box::pin(tokio::time::sleep_until(far)),
            write_stalled: false,
        }
    }

    /// The read deadline now, and the option that sets it.
    fn read_deadline(&self) -> Option<(Instant, &'static str, Duration)> {
        match self.state.get() {
            Phase::Idle(since) => Some((since + self.limits.idle, "--idle-timeout", self.limits.idle)),
            Phase::Head(since) => Some((since + self.limits.header, "--header-timeout", self.limits.header)),
            Phase::Request => None,
        }
    }

    /// A write that cannot proceed: starts its deadline, or fails once it has passed.
    fn stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if !self.write_stalled {
            self.write_stalled = true;
            let at = Instant::now() + self.limits.write;
            self.write_timer.as_mut().reset(at);
        }
        match self.write_timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(timed_out("the client read none of its answer", "--write-timeout", self.limits.write))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn wrote<T>(&mut self, r: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match r {
            Poll::Pending => self.stalled(cx),
            ready => {
                self.write_stalled = false;
                ready
            }
        }
    }
}

fn timed_out(what: &str, option: &str, limit: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("{what} within {} s ({option}): connection closed", limit.as_secs_f64()),
    )
}

impl<S: AsyncRead + Unpin> AsyncRead for TimedStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.state.bytes_read();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                self.state.waiting_reader(cx.waker());
                let Some((at, option, limit)) = self.read_deadline() else {
                    return Poll::Pending;
                };
                let what = match option {
                    "--idle-timeout" => "no request came",
                    _ => "the request's headers did not arrive",
                };
                if Instant::now() >= at {
                    return Poll::Ready(Err(timed_out(what, option, limit)));
                }
                if self.read_timer.deadline() != at {
                    self.read_timer.as_mut().reset(at);
                }
                match self.read_timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(timed_out(what, option, limit))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TimedStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(r, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.wrote(r, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.wrote(r, cx)
    }
}

/// The routes of one connection: a request marks it as in a request until its answer's body
/// is dropped (written, or abandoned), then as idle again.
#[derive(Clone)]
pub struct Tracked<S> {
    pub inner: S,
    pub state: Arc<ConnState>,
}

type Answer = hyper::Response<Body>;

impl<S> hyper::service::Service<hyper::Request<hyper::body::Incoming>> for Tracked<S>
where
    S: hyper::service::Service<hyper::Request<hyper::body::Incoming>, Response = Answer, Error = std::convert::Infallible>,
    S::Future: Send + 'static,
{
    type Response = Answer;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Answer, std::convert::Infallible>> + Send>>;

    fn call(&self, req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        self.state.set(Phase::Request);
        let answer = self.inner.call(req);
        let end = AnswerEnd(self.state.clone());
        Box::pin(async move {
            let resp = answer.await?;
            Ok(resp.map(|body| Body::new(EndOfAnswer { body, _end: end })))
        })
    }
}

/// Marks its connection idle when dropped (with the answer's body, once hyper has written it).
struct AnswerEnd(Arc<ConnState>);

impl Drop for AnswerEnd {
    fn drop(&mut self) {
        self.0.answer_ended();
    }
}

/// An answer's body that marks its connection idle when dropped.
struct EndOfAnswer {
    body: Body,
    _end: AnswerEnd,
}

impl http_body::Body for EndOfAnswer {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
