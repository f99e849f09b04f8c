//! Server-Sent Events plumbing shared by the event and log streams: a producer task per client
//! feeds a small bounded channel (a slow client slows its own producer, nobody else's), the
//! response streams from it, and a comment every 15 s keeps proxies from closing an idle
//! stream and tells the producer when the client is gone.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, KeepAliveStream, Sse};
use futures_util::stream::{BoxStream, StreamExt};
use tokio::sync::mpsc;

/// The body of an SSE response.
pub(crate) type SseStream = BoxStream<'static, Result<Event, Infallible>>;
/// An SSE response.
pub(crate) type SseResponse = Sse<KeepAliveStream<SseStream>>;

/// Events a producer may have in flight before it waits for the client.
const IN_FLIGHT: usize = 64;
/// Interval of keep-alive comments.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// An SSE response fed by `produce`, which runs as its own task and ends the stream by
/// returning (dropping its sender). It should return when `tx.closed()` fires.
pub(crate) fn sse<F, Fut>(produce: F) -> SseResponse
where
    F: FnOnce(mpsc::Sender<Event>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    tokio::spawn(produce(tx));
    let stream =
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
        )
        .boxed();
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

/// The `Last-Event-ID` a reconnecting `EventSource` sends, when it is a number.
pub(crate) fn last_event_id(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}
