//! The connection loop: the router served over HTTP/1.1 on every accepted connection (plain TCP or
//! the TLS listener), with the time limits a server open to slow or hostile clients needs. A client
//! gets `header` to send a request's headers, and as long again while a kept-alive connection idles
//! between requests; a request's body must arrive within `body` of its headers. Shutdown stops
//! accepting and lets the requests in flight finish.

use std::convert::Infallible;
use std::future::Future;
use std::pin::{pin, Pin};
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

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// To send a request's headers, and the longest a kept-alive connection may idle.
    pub header: Duration,
    /// To send a request's body, counted from its headers.
    pub body: Duration,
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
            let request = request.map(|body| Body::new(DeadlineBody::new(body, timeouts.body)));
            let mut app = app.clone();
            async move { Ok::<_, Infallible>(app.call(request).await.unwrap_or_else(|e| match e {})) }
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
/// a connection and a handler for longer than the body limit.
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl DeadlineBody {
    fn new(inner: Incoming, limit: Duration) -> Self {
        DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(limit)),
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
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending if this.deadline.as_mut().poll(cx).is_ready() => {
                Poll::Ready(Some(Err("the request body did not arrive in time".into())))
            }
            Poll::Pending => Poll::Pending,
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
