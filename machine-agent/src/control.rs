//! The daemon's control surface: what spends the device's money or reveals its state
//! (`POST /buy`, `GET /status`, `GET /payments`), served on a Unix socket in the data directory rather than on
//! the service port. Buyers reach the service port; only the device's own user can open the
//! socket (mode 0600 in a 0700 directory), and that file permission is the whole guard.
//!
//! `machine-agent pay` and `status` come here when the running daemon holds the store.

use std::{
	os::unix::fs::{FileTypeExt, PermissionsExt},
	path::{Path, PathBuf},
	sync::Arc,
};

use anyhow::{bail, Context, Result};
use axum::{
	extract::State,
	http::StatusCode,
	response::{IntoResponse, Response},
	routing::{get, post},
	Json, Router,
};
use serde_json::Value;
use tokio::net::UnixListener;

use crate::{agent::Agent, config::Config, purchase};

/// Where the daemon listens for control requests.
pub fn socket_path(config: &Config) -> PathBuf {
	config.device.data_dir.join("control.sock")
}

/// The control requests.
pub fn router(agent: Arc<Agent>) -> Router {
	Router::new()
		.route("/status", get(status_handler))
		.route("/payments", get(payments_handler))
		.route("/buy", post(buy_handler))
		.route("/channels/claim", post(claim_handler))
		.route("/channels/refund", post(refund_handler))
		.route("/channels/withdraw", post(withdraw_handler))
		.with_state(agent)
}

/// Binds the control socket, readable and writable by the device's user only.
///
/// Call it after the store is open: the store's lock guarantees that no other daemon is using
/// this data directory, so a socket already at the path is a leftover of a daemon that died
/// without cleaning up, and is replaced.
pub fn bind(config: &Config) -> Result<UnixListener> {
	let dir = &config.device.data_dir;
	// The socket briefly has the umask's mode between bind and chmod; a directory nobody else
	// may enter closes that window (and the payment records in it deserve no less).
	std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
		.with_context(|| format!("cannot make the data directory {} private", dir.display()))?;
	let path = socket_path(config);
	remove_stale(&path)?;
	let listener = UnixListener::bind(&path)
		.with_context(|| format!("cannot bind the control socket {}", path.display()))?;
	std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
		.with_context(|| format!("cannot restrict the control socket {}", path.display()))?;
	Ok(listener)
}

/// Removes a leftover socket at `path`; anything else there is not ours to delete.
fn remove_stale(path: &Path) -> Result<()> {
	match std::fs::symlink_metadata(path) {
		Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)
			.with_context(|| format!("cannot remove the stale control socket {}", path.display())),
		Ok(_) => bail!(
			"{} exists and is not a socket; move it away so the daemon can put its control \
			 socket there",
			path.display()
		),
		Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
		Err(e) => Err(e).with_context(|| format!("cannot inspect {}", path.display())),
	}
}

/// Removes the socket when the daemon stops cleanly (a crash leaves it for [`bind`] to clear).
pub fn remove(config: &Config) {
	let path = socket_path(config);
	if let Err(e) = std::fs::remove_file(&path) {
		if e.kind() != std::io::ErrorKind::NotFound {
			tracing::warn!(socket = %path.display(), error = %e, "cannot remove the control socket");
		}
	}
}

/// A request to the running daemon over its control socket; the JSON it answers.
///
/// Answers that carry JSON are returned whatever their status (a refused purchase is a 402
/// with the reason in `error`), so callers read the outcome from the body.
pub async fn call(
	config: &Config,
	method: reqwest::Method,
	path: &str,
	body: Option<Value>,
) -> Result<Value> {
	let socket = socket_path(config);
	let no_answer = || {
		format!(
			"the store is locked by the running daemon, but its control socket {} does not answer",
			socket.display()
		)
	};
	let http = reqwest::Client::builder()
		.unix_socket(socket.clone())
		.build()
		.context("cannot build the control client")?;
	// The host is not resolved: every connection goes to the socket.
	let mut request = http.request(method.clone(), format!("http://localhost{path}"));
	if let Some(body) = body {
		request = request.json(&body);
	}
	let response = request.send().await.with_context(no_answer)?;
	let status = response.status();
	let text = response.text().await.with_context(no_answer)?;
	serde_json::from_str(&text).with_context(|| {
		format!("the daemon answered {method} {path} on {} with {status}: {text}", socket.display())
	})
}

async fn status_handler(State(agent): State<Arc<Agent>>) -> Json<Value> {
	Json(crate::status::of(&agent.config, &agent.keys, &agent.store, Some(&agent.health)))
}

/// `GET /payments?limit=N` (20 by default).
async fn payments_handler(State(agent): State<Arc<Agent>>, uri: axum::http::Uri) -> Json<Value> {
	let limit = uri
		.query()
		.and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("limit=")))
		.and_then(|n| n.parse().ok())
		.unwrap_or(20);
	Json(crate::status::recent_payments(&agent.store, limit))
}

#[derive(serde::Deserialize)]
struct BuyRequest {
	url: String,
	/// Stream this many units of a metered service (libp2p targets only).
	#[serde(default)]
	units: Option<u64>,
}

/// A purchase on behalf of the local `machine-agent pay`, which cannot open the store while
/// the daemon holds it.
async fn buy_handler(State(agent): State<Arc<Agent>>, Json(request): Json<BuyRequest>) -> Response {
	let result = match request.units {
		Some(units) => purchase::stream(&agent.p2p, &request.url, units).await,
		None => purchase::buy(&agent.client, &agent.p2p, &agent.store, &request.url).await,
	};
	let status =
		if result.get("error").is_some() { StatusCode::PAYMENT_REQUIRED } else { StatusCode::OK };
	(status, Json(result)).into_response()
}

/// `channels claim` while the daemon runs.
async fn claim_handler(State(agent): State<Arc<Agent>>) -> Response {
	let c = &agent.channels;
	answer(crate::channels::claim(&c.seller, &agent.store, c.asset).await)
}

#[derive(serde::Deserialize)]
struct RefundRequest {
	channel: String,
}

/// `channels refund`: the daemon's seller refunds a payer, or its buyer asks a seller.
async fn refund_handler(
	State(agent): State<Arc<Agent>>,
	Json(request): Json<RefundRequest>,
) -> Response {
	if request.channel.starts_with("http://") || request.channel.starts_with("https://") {
		return answer(crate::channels::ask_refund(&agent.client, &request.channel).await);
	}
	let c = &agent.channels;
	answer(crate::channels::refund(&c.seller, &agent.store, c.asset, &request.channel).await)
}

#[derive(serde::Deserialize)]
struct WithdrawRequest {
	channel: String,
	#[serde(default)]
	finalize: bool,
}

/// `channels withdraw` while the daemon runs.
async fn withdraw_handler(
	State(agent): State<Arc<Agent>>,
	Json(request): Json<WithdrawRequest>,
) -> Response {
	let provider = &agent.channels.provider;
	answer(
		crate::channels::withdraw(&agent.store, provider, &request.channel, request.finalize).await,
	)
}

/// A JSON answer, or `{"error": …}` with 400.
fn answer(result: anyhow::Result<Value>) -> Response {
	match result {
		Ok(v) => Json(v).into_response(),
		Err(e) => (StatusCode::BAD_REQUEST, Json(serde_json::json!({"error": format!("{e:#}")})))
			.into_response(),
	}
}
