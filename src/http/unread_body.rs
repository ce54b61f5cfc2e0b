//! Request bodies a response did not need are read to their end (up to a bound) before the
//! response goes out. An answer sent while the client is still sending makes the server reset the
//! HTTP/2 stream (RFC 9113 §8.1 allows it, with NO_ERROR), and common clients — curl before 8.3 —
//! then report a framing error instead of the 401, 413 or 415 they were sent. Reading on keeps
//! every answer readable, and keeps HTTP/1.1 connections reusable.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use futures_util::{Stream, StreamExt};

/// The most of an unread body that is read and dropped; past it the stream is reset.
pub const DRAIN_LIMIT: usize = 64 * 1024 * 1024;
/// The longest time spent reading an unread body.
pub const DRAIN_TIME: Duration = Duration::from_secs(10);

/// A request body shared between the handler (through [`SharedBody::payload`]) and the
/// middleware that reads what the handler left.
#[derive(Clone)]
pub struct SharedBody(Rc<RefCell<BodyState>>);

struct BodyState {
    payload: Payload,
    /// The stream ended (or failed): nothing left to read.
    done: bool,
}

impl SharedBody {
    pub fn new(payload: Payload) -> Self {
        SharedBody(Rc::new(RefCell::new(BodyState { payload, done: false })))
    }

    /// A payload for the handler that reads from the shared body.
    pub fn payload(&self) -> Payload {
        Payload::Stream { payload: Box::pin(Reader(self.clone())) }
    }

    /// Reads and drops what is left, at most [`DRAIN_LIMIT`] bytes within [`DRAIN_TIME`].
    pub async fn drain(&self) {
        let mut left = DRAIN_LIMIT;
        let reading = async {
            while let Some(chunk) = std::future::poll_fn(|cx| self.poll(cx)).await {
                match chunk {
                    Ok(bytes) if bytes.len() < left => left -= bytes.len(),
                    _ => break,
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIME, reading).await;
    }

    fn poll(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, PayloadError>>> {
        let mut state = self.0.borrow_mut();
        if state.done {
            return Poll::Ready(None);
        }
        let next = state.payload.poll_next_unpin(cx);
        if matches!(next, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            state.done = true;
        }
        next
    }
}

/// The handler's view of a [`SharedBody`].
struct Reader(SharedBody);

impl Stream for Reader {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll(cx)
    }
}
