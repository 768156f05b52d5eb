//! The last check before a request leaves: a connector layer that refuses a new connection
//! while a `Retry-After` window of this client lasts.
//!
//! `transport` checks the window before it hands a request to the HTTP client, but a request
//! that then waits for a connection (a fresh process opening many at once, a loaded
//! machine) would leave whenever the connection is ready, possibly after a `429` answered
//! another request meanwhile. A connection made while the window lasts is therefore dropped
//! before anything is written on it, and the request fails as [`Held`]: not sent.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

/// The end of this client's latest `Retry-After` window, shared by the client and its
/// connector.
pub(crate) type PausedUntil = Arc<Mutex<Option<Instant>>>;

/// How much of the window in `paused` is left, if any.
pub(crate) fn remaining(paused: &PausedUntil) -> Option<Duration> {
    let until = *paused.lock().unwrap_or_else(PoisonError::into_inner);
    until
        .and_then(|until| until.checked_duration_since(Instant::now()))
        .filter(|left| !left.is_zero())
}

/// A connection refused because a `Retry-After` window lasts: the request was not sent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Held {
    pub(crate) remaining: Duration,
}

impl std::fmt::Display for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "not sent: inside Finfra's Retry-After window ({} ms left)",
            self.remaining.as_millis()
        )
    }
}

impl std::error::Error for Held {}

/// The [`Held`] in an error's chain of sources, if that is why it failed.
pub(crate) fn held_in(error: &(dyn std::error::Error + 'static)) -> Option<Held> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(held) = error.downcast_ref::<Held>() {
            return Some(*held);
        }
        current = error.source();
    }
    None
}

/// The connector layer (`reqwest::ClientBuilder::connector_layer`).
#[derive(Clone)]
pub(crate) struct HoldLayer(pub(crate) PausedUntil);

impl<S> tower::Layer<S> for HoldLayer {
    type Service = Hold<S>;

    fn layer(&self, inner: S) -> Hold<S> {
        Hold {
            inner,
            paused: Arc::clone(&self.0),
        }
    }
}

#[derive(Clone)]
pub(crate) struct Hold<S> {
    inner: S,
    paused: PausedUntil,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, R> tower::Service<R> for Hold<S>
where
    S: tower::Service<R, Error = BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let connecting = self.inner.call(request);
        let paused = Arc::clone(&self.paused);
        Box::pin(async move {
            let connection = connecting.await?;
            match remaining(&paused) {
                // Dropped unused: nothing was written on it.
                Some(remaining) => Err(Box::new(Held { remaining }) as BoxError),
                None => Ok(connection),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use tower::{Layer as _, Service as _, ServiceExt as _};

    use super::*;

    type Connecting = Pin<Box<dyn Future<Output = Result<&'static str, BoxError>> + Send>>;

    fn connect((): ()) -> Connecting {
        Box::pin(async { Ok("a connection") })
    }

    #[tokio::test]
    async fn a_connection_made_inside_a_window_is_refused_and_named_held() {
        let paused = PausedUntil::default();
        let mut hold = HoldLayer(Arc::clone(&paused)).layer(tower::service_fn(connect));
        let made = hold.ready().await.expect("ready").call(()).await;
        assert_eq!(made.expect("no window: connected"), "a connection");

        *paused.lock().expect("lock") = Some(Instant::now() + Duration::from_secs(2));
        let refused = hold
            .ready()
            .await
            .expect("ready")
            .call(())
            .await
            .expect_err("inside the window");
        let held = held_in(refused.as_ref()).expect("the cause is named");
        assert!(held.remaining > Duration::from_secs(1), "{held}");

        // Wrapped by the HTTP client's own errors, it is still found.
        #[derive(Debug)]
        struct Outer(BoxError);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("connect failed")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(self.0.as_ref())
            }
        }
        assert!(held_in(&Outer(refused)).is_some());

        *paused.lock().expect("lock") = Some(Instant::now());
        assert!(
            hold.ready().await.expect("ready").call(()).await.is_ok(),
            "after the window"
        );
    }
}
