//! A deadline on reading a request body. actix's `client_request_timeout` covers only the
//! request head: a client that sends a head with `Content-Length: 1000` and then one byte a
//! second would hold its connection (and the handler) for as long as it likes. This wraps the
//! payload of every request that declares a body so it fails once
//! `server.client_body_timeout_ms` has passed without the body being complete; the answer is
//! then 408 `request_timeout` and the connection is closed (the rest of the body is unread).
//! Requests without a body (reads) are not touched.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, ResponseError};
use bytes::Bytes;
use futures_util::Stream;

use crate::error::ApiError;
use crate::state::AppState;

pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let declares_body = req.headers().contains_key(header::CONTENT_LENGTH)
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    let timeout = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.settings.server.client_body_timeout_ms)
        .filter(|ms| *ms > 0);
    let (Some(ms), true) = (timeout, declares_body) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let expired = Arc::new(AtomicBool::new(false));
    let payload = Deadline {
        inner: req.take_payload(),
        sleep: Box::pin(tokio::time::sleep(Duration::from_millis(ms))),
        expired: expired.clone(),
        done: false,
    };
    req.set_payload(Payload::Stream {
        payload: Box::pin(payload),
    });
    let res = next.call(req).await;
    if !expired.load(Ordering::Acquire) {
        return res.map(ServiceResponse::map_into_left_body);
    }
    let req = match res {
        Ok(res) => res.into_parts().0,
        Err(e) => return Err(e),
    };
    tracing::info!("request body not complete after {ms} ms: 408, connection closed");
    let mut response = ApiError::request_timeout().error_response();
    response
        .head_mut()
        .set_connection_type(ConnectionType::Close);
    Ok(ServiceResponse::new(req, response).map_into_right_body())
}

struct Deadline {
    inner: Payload,
    sleep: Pin<Box<tokio::time::Sleep>>,
    expired: Arc<AtomicBool>,
    done: bool,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(item)) => Poll::Ready(Some(item)),
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.done = true;
                    this.expired.store(true, Ordering::Release);
                    Poll::Ready(Some(Err(PayloadError::Io(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "request body not received in time",
                    )))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}
