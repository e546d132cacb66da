//! The connection loop: the router served over HTTP/1.1 on every accepted connection (plain TCP or
//! the TLS listener), with the time limits a server open to slow or hostile clients needs. A client
//! gets `header` to send a request's headers, and as long again while a kept-alive connection idles
//! between requests; a request's body must arrive within `body` of its headers. A body the handler
//! did not read is read to its end before the answer goes out (up to a limit), so an early error
//! reaches a client that is still uploading. Shutdown stops accepting and lets the requests in flight
//! finish.

use std::convert::Infallible;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::serve::Listener;
use axum::Router;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tower_service::Service;

/// How long requests in flight get to finish after a shutdown signal.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// A request body the handler left unread (it answered early: a wrong query, a missing key, a body
/// over its limit) is read to its end, up to this much, before the response goes out, so a client
/// still uploading gets the answer instead of a reset connection. A larger rest closes the connection.
const DISCARD_LIMIT: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// To send a request's headers, and the longest a kept-alive connection may idle.
    pub header: Duration,
    /// To send a request's body, counted from its headers.
    pub body: Duration,
}

/// The request with repeated `/` in its path collapsed: Microsoft's own sample clients ask for
/// `/computervision//models/...` (customization contract, section 2).
fn collapse_slashes<B>(mut request: hyper::Request<B>) -> hyper::Request<B> {
    let uri = request.uri();
    if !uri.path().contains("//") {
        return request;
    }
    let mut path = String::with_capacity(uri.path().len());
    for c in uri.path().chars() {
        if !(c == '/' && path.ends_with('/')) {
            path.push(c);
        }
    }
    let rebuilt = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path,
    };
    if let Ok(path_and_query) = rebuilt.parse() {
        let mut parts = uri.clone().into_parts();
        parts.path_and_query = Some(path_and_query);
        if let Ok(collapsed) = hyper::Uri::from_parts(parts) {
            *request.uri_mut() = collapsed;
        }
    }
    request
}

/// Serves `app` on every connection `listener` accepts until `shutdown` completes, then drains.
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()>,
) where
    L: Listener,
    L::Io: Unpin,
{
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let (io, _peer) = tokio::select! {
            connection = listener.accept() => connection,
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let unread = Arc::new(Mutex::new(None));
            let request = collapse_slashes(request);
            let request = request
                .map(|body| Body::new(DeadlineBody::new(body, timeouts.body, Arc::clone(&unread))));
            let mut app = app.clone();
            async move {
                let response = app.call(request).await.unwrap_or_else(|e| match e {});
                let rest = unread.lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some(rest) = rest {
                    discard(rest).await;
                }
                Ok::<_, Infallible>(response)
            }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(timeouts.header)
            .serve_connection(TokioIo::new(io), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!("connection closed: {error}");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_LIMIT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after {DRAIN_LIMIT:?}; closing them");
    }
}

/// A request body that fails once its deadline passes, so a client trickling its upload cannot hold
/// a connection and a handler for longer than the body limit. Dropped unread, it leaves the rest in
/// `unread` for [`discard`].
struct DeadlineBody {
    rest: Option<Rest>,
    unread: Arc<Mutex<Option<Rest>>>,
}

/// What is left of a request body, and its deadline.
struct Rest {
    body: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl DeadlineBody {
    fn new(body: Incoming, limit: Duration, unread: Arc<Mutex<Option<Rest>>>) -> Self {
        DeadlineBody {
            rest: Some(Rest {
                body,
                deadline: Box::pin(tokio::time::sleep(limit)),
            }),
            unread,
        }
    }
}

impl Rest {
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Pending if self.deadline.as_mut().poll(cx).is_ready() => {
                Poll::Ready(Some(Err("the request body did not arrive in time".into())))
            }
            Poll::Pending => Poll::Pending,
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
        }
    }
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut().rest.as_mut() {
            Some(rest) => rest.poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rest.as_ref().is_none_or(|r| r.body.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.rest
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |r| r.body.size_hint())
    }
}

impl Drop for DeadlineBody {
    fn drop(&mut self) {
        if let Some(rest) = self.rest.take().filter(|r| !r.body.is_end_stream()) {
            *self.unread.lock().unwrap_or_else(|e| e.into_inner()) = Some(rest);
        }
    }
}

/// Reads and drops what is left of a body, up to `DISCARD_LIMIT` and its deadline.
async fn discard(mut rest: Rest) {
    let mut read = 0;
    while read <= DISCARD_LIMIT {
        match std::future::poll_fn(|cx| rest.poll_frame(cx)).await {
            Some(Ok(frame)) => read += frame.data_ref().map_or(0, Bytes::len),
            Some(Err(_)) | None => return,
        }
    }
}
