//! The service port's HTTP server, with bounded work for callers nobody has authenticated.
//!
//! Anyone who can reach a device can open connections to its service port. `axum::serve`
//! waits forever for a request's headers and accepts any number of connections, so a handful
//! of slow clients (slowloris) could hold the device's memory and file descriptors. This
//! server reads headers within a deadline, caps their size and the number of connections, and
//! stops accepting on shutdown while letting requests in progress finish.

use std::{sync::Arc, time::Duration};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::{
	rt::{TokioIo, TokioTimer},
	service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::watch};

/// What one unauthenticated caller may cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
	/// A request's headers must arrive within this time, or the connection is closed.
	pub header_read_timeout: Duration,
	/// Open connections at most; more are closed at once (the buyer may retry).
	pub max_connections: usize,
	/// The largest request head (request line and headers) read, in bytes. x402's payment
	/// header is about 2 KiB.
	pub max_head_bytes: usize,
}

impl Default for Limits {
	fn default() -> Self {
		Self {
			header_read_timeout: Duration::from_secs(10),
			max_connections: 1024,
			max_head_bytes: 64 * 1024,
		}
	}
}

/// Serves `app` on `listener` within `limits` until `stopped` changes.
pub async fn serve(
	listener: TcpListener,
	app: Router,
	limits: Limits,
	stopped: watch::Receiver<()>,
) -> std::io::Result<()> {
	let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
	let mut stop = stopped.clone();
	loop {
		let (stream, peer) = tokio::select! {
			accepted = listener.accept() => match accepted {
				Ok(a) => a,
				// Out of file descriptors and the like: wait a moment instead of spinning.
				Err(e) => {
					tracing::warn!(error = %e, "cannot accept a connection");
					tokio::time::sleep(Duration::from_millis(50)).await;
					continue;
				},
			},
			_ = stop.changed() => break,
		};
		let Ok(permit) = permits.clone().try_acquire_owned() else {
			tracing::warn!(%peer, limit = limits.max_connections, "too many connections; closing this one");
			drop(stream);
			continue;
		};
		let service = TowerToHyperService::new(app.clone());
		let mut stop = stopped.clone();
		tokio::spawn(async move {
			let _permit = permit;
			let connection = http1::Builder::new()
				.timer(TokioTimer::new())
				.header_read_timeout(limits.header_read_timeout)
				.max_buf_size(limits.max_head_bytes.max(8192))
				.serve_connection(TokioIo::new(stream), service);
			tokio::pin!(connection);
			let result = tokio::select! {
				result = connection.as_mut() => result,
				_ = stop.changed() => {
					connection.as_mut().graceful_shutdown();
					connection.await
				},
			};
			if let Err(e) = result {
				tracing::debug!(%peer, error = %e, "connection closed with an error");
			}
		});
	}
	Ok(())
}
