//! A fault-injecting Ethereum JSON-RPC proxy for end-to-end tests.
//!
//! It sits between a client (the x402 facilitator's alloy HTTP provider, typically) and an
//! upstream EVM JSON-RPC endpoint (anvil or our node's `m2m-eth-rpc`), on a loopback port the OS
//! chooses, and lets a test switch faults while the client runs. Each fault reproduces a failure
//! that a payment stack meets in production and must survive without paying twice or losing a
//! payment:
//!
//! - [`Fault::DropSendReply`]: a broadcast whose reply is lost. The transaction reaches the chain,
//!   but the HTTP reply never reaches the client (a load balancer resetting the connection, a
//!   network partition right after the write). The client cannot tell "sent" from "not sent",
//!   so it must not resign a new transaction blindly; it has to look the first one up.
//! - [`Fault::RefuseSend`]: a chain refusing the transaction (nonce too low, insufficient funds,
//!   a pool limit, a `1010` invalid-transaction error from a Substrate-backed endpoint). Nothing
//!   is broadcast; the client gets a JSON-RPC error and must report it rather than wait for a
//!   receipt.
//! - [`Fault::DelayReceipts`]: a slow chain. The transaction was accepted, but receipts answer
//!   `null` (not mined yet) for a while, as under congestion or a long block time, so the
//!   client's confirmation polling and its timeouts are exercised.
//! - [`Fault::HangAll`]: a hung endpoint. Connections are accepted but never answered, as with an
//!   overloaded or wedged node behind a live TCP listener; only the client's own timeouts save
//!   it.
//!
//! A lost reply is simulated by closing the connection without any response, not by answering
//! HTTP 502: a 502 is an answer (alloy reports it as an HTTP status error, which a client may
//! rightly treat as "the gateway refused it"), whereas a real lost reply surfaces as a connection
//! closed before a response, which is the ambiguous case worth testing. axum has no way to drop a
//! connection from a handler, so the proxy serves through its own listener whose streams can be
//! cut: the handler trips its connection's cut flag and the response it returns is never written
//! (the first write fails, hyper closes the connection).
//!
//! Tests synchronise with [`RpcProxy::wait_for_call`] rather than sleeping.

use std::{
	collections::HashMap,
	io,
	net::SocketAddr,
	pin::Pin,
	sync::{
		atomic::{AtomicBool, Ordering},
		Arc, Mutex, MutexGuard, PoisonError,
	},
	task::{Context, Poll},
	time::{Duration, Instant},
};

use axum::{
	body::Bytes,
	extract::{connect_info::Connected, ConnectInfo, State},
	http::{header, StatusCode},
	response::{IntoResponse, Response},
	serve::{IncomingStream, Listener},
	Router,
};
use serde_json::{json, Value};
use tokio::{
	io::{AsyncRead, AsyncWrite, ReadBuf},
	net::{TcpListener, TcpStream},
	sync::{oneshot, Notify},
	task::JoinHandle,
};

const SEND: &str = "eth_sendRawTransaction";
const RECEIPT: &str = "eth_getTransactionReceipt";

/// What the proxy does to the requests that arrive while it is set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Fault {
	/// Forward everything.
	#[default]
	None,
	/// Forward `eth_sendRawTransaction` upstream (so the transaction goes through), then close
	/// the client's connection without any response, as if the reply was lost. A batch holding
	/// a send is forwarded whole and its reply lost whole, as a lost HTTP reply would be.
	DropSendReply,
	/// Refuse `eth_sendRawTransaction` without forwarding it, answering the JSON-RPC error
	/// `{"code": code, "message": message}` as a chain refusing the transaction would.
	RefuseSend { code: i64, message: String },
	/// Answer `eth_getTransactionReceipt` with `null` (not mined yet) until this long after the
	/// proxy first saw a receipt request for that hash, then forward as usual. The clock of
	/// every hash restarts whenever the fault is set.
	DelayReceipts(Duration),
	/// Leave every request unanswered until the fault changes (then it is handled under the new
	/// fault) or the proxy is dropped.
	HangAll,
}

/// A fault-injecting JSON-RPC proxy served on loopback until dropped.
pub struct RpcProxy {
	/// `http://127.0.0.1:<port>`, to give the client instead of the upstream's URL.
	pub url: String,
	shared: Arc<Shared>,
	stop: Option<oneshot::Sender<()>>,
	task: JoinHandle<()>,
}

impl RpcProxy {
	/// Serves a proxy to `upstream` on a free loopback port, on the current tokio runtime.
	pub async fn start(upstream: &str) -> RpcProxy {
		let listener =
			TcpListener::bind("127.0.0.1:0").await.expect("bind the RPC proxy on loopback");
		let url = format!("http://{}", listener.local_addr().expect("the proxy's bound address"));
		let shared = Arc::new(Shared {
			upstream: upstream.to_string(),
			http: reqwest::Client::new(),
			state: Mutex::new(ProxyState::default()),
			changed: Notify::new(),
			called: Notify::new(),
			stopped: AtomicBool::new(false),
		});
		// A fallback rather than a route on `/`: a client posting to any path of the proxy's URL
		// is still served, always against the upstream URL as given.
		let app: Router = Router::new().fallback(handle).with_state(shared.clone());
		let (stop, stopped) = oneshot::channel::<()>();
		let task = tokio::spawn(async move {
			let _ = axum::serve(
				ProxyListener(listener),
				app.into_make_service_with_connect_info::<Cut>(),
			)
			.with_graceful_shutdown(async {
				let _ = stopped.await;
			})
			.await;
		});
		RpcProxy { url, shared, stop: Some(stop), task }
	}

	/// Replaces the current fault; requests arriving from now on get the new one, and requests
	/// hung by [`Fault::HangAll`] are released into it.
	pub fn set(&self, fault: Fault) {
		{
			let mut state = self.shared.state();
			state.fault = fault;
			state.receipts_first_asked.clear();
		}
		self.shared.changed.notify_waiters();
	}

	/// Back to forwarding everything.
	pub fn clear(&self) {
		self.set(Fault::None);
	}

	/// How many calls of `method` have arrived so far (each element of a batch counts), whether
	/// forwarded, refused or hung.
	pub fn calls(&self, method: &str) -> usize {
		self.shared.state().calls.get(method).copied().unwrap_or(0)
	}

	/// Waits until at least `count` calls of `method` have arrived; `false` if `timeout` passed
	/// first.
	pub async fn wait_for_call(&self, method: &str, count: usize, timeout: Duration) -> bool {
		let arrived = async {
			loop {
				// Registered before the count is read, so a call landing in between still
				// wakes us (`notify_waiters` reaches every `Notified` created before it).
				let called = self.shared.called.notified();
				if self.calls(method) >= count {
					return;
				}
				called.await;
			}
		};
		tokio::time::timeout(timeout, arrived).await.is_ok()
	}
}

impl Drop for RpcProxy {
	fn drop(&mut self) {
		// Hung requests would otherwise keep their connection tasks alive past the test.
		self.shared.stopped.store(true, Ordering::SeqCst);
		self.shared.changed.notify_waiters();
		let _ = self.stop.take().map(|stop| stop.send(()));
		// Graceful shutdown waits for open connections; aborting closes the listener now.
		self.task.abort();
	}
}

/// State shared by the proxy's handle and its request handlers.
struct Shared {
	upstream: String,
	http: reqwest::Client,
	state: Mutex<ProxyState>,
	/// Woken when the fault changes or the proxy stops: releases hung requests.
	changed: Notify,
	/// Woken on every arriving request, for `wait_for_call`.
	called: Notify,
	stopped: AtomicBool,
}

#[derive(Default)]
struct ProxyState {
	fault: Fault,
	calls: HashMap<String, usize>,
	/// When each transaction's receipt was first asked for under the current fault.
	receipts_first_asked: HashMap<String, Instant>,
}

/// What to do with one call under the current fault.
enum Outcome {
	Forward,
	/// Answer this instead of forwarding.
	Answer(Value),
	/// Forward, then lose the reply.
	ForwardThenCut,
}

/// What the handler sends back.
enum Reply {
	Answer(StatusCode, Bytes),
	/// The upstream could not be reached or read.
	Unreachable(String),
	/// Close the connection without a response.
	Lost,
}

impl Reply {
	fn json(value: &Value) -> Reply {
		let body = serde_json::to_vec(value).expect("a JSON value always serialises");
		Reply::Answer(StatusCode::OK, Bytes::from(body))
	}
}

impl Shared {
	// A test that panicked while holding the lock must not turn every later call into a
	// poison panic that hides the first failure.
	fn state(&self) -> MutexGuard<'_, ProxyState> {
		self.state.lock().unwrap_or_else(PoisonError::into_inner)
	}

	fn fault(&self) -> Fault {
		self.state().fault.clone()
	}

	fn record(&self, methods: &[&str]) {
		{
			let mut state = self.state();
			for method in methods {
				*state.calls.entry(method.to_string()).or_default() += 1;
			}
		}
		self.called.notify_waiters();
	}

	/// The fault to apply once it is no longer [`Fault::HangAll`]; `None` if the proxy stopped
	/// meanwhile.
	async fn fault_after_hang(&self) -> Option<Fault> {
		loop {
			// Registered before the fault is read, so a `set` in between is not missed.
			let released = self.changed.notified();
			if self.stopped.load(Ordering::SeqCst) {
				return None;
			}
			let fault = self.fault();
			if fault != Fault::HangAll {
				return Some(fault);
			}
			released.await;
		}
	}

	fn decide(&self, fault: &Fault, call: &Value) -> Outcome {
		let method = method_of(call);
		match fault {
			Fault::DropSendReply if method == Some(SEND) => Outcome::ForwardThenCut,
			Fault::RefuseSend { code, message } if method == Some(SEND) => {
				Outcome::Answer(error(call, *code, message))
			},
			Fault::DelayReceipts(delay) if method == Some(RECEIPT) => {
				let Some(hash) = call.get("params").and_then(|p| p.get(0)).and_then(Value::as_str)
				else {
					// Malformed: the upstream's own error is the realistic answer.
					return Outcome::Forward;
				};
				// Hex case is not significant in a hash; clients differ in what they send.
				let first_asked = *self
					.state()
					.receipts_first_asked
					.entry(hash.to_ascii_lowercase())
					.or_insert_with(Instant::now);
				if first_asked.elapsed() < *delay {
					Outcome::Answer(json!({"jsonrpc": "2.0", "id": id(call), "result": null}))
				} else {
					Outcome::Forward
				}
			},
			_ => Outcome::Forward,
		}
	}

	/// Posts `body` upstream as is: the upstream's status and body, or why there were none.
	async fn forward(&self, body: Bytes) -> Result<(StatusCode, Bytes), String> {
		let response = self
			.http
			.post(self.upstream.as_str())
			.header(reqwest::header::CONTENT_TYPE, "application/json")
			.body(body)
			.send()
			.await
			.map_err(|e| format!("upstream unreachable: {e}"))?;
		// Through the number, so that reqwest's and axum's `http` versions need not match.
		let status =
			StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
		let body = response.bytes().await.map_err(|e| format!("upstream reply unreadable: {e}"))?;
		Ok((status, body))
	}

	async fn pass_through(&self, body: Bytes) -> Reply {
		match self.forward(body).await {
			Ok((status, body)) => Reply::Answer(status, body),
			Err(why) => Reply::Unreachable(why),
		}
	}

	/// Forwards one call of a split batch: its reply element, `None` for a notification.
	async fn forward_call(&self, call: &Value) -> Option<Value> {
		let body = Bytes::from(serde_json::to_vec(call).expect("a JSON value always serialises"));
		let (status, body) = match self.forward(body).await {
			Ok(answer) => answer,
			Err(why) => return Some(error(call, -32603, &why)),
		};
		if status.is_success() && body.iter().all(u8::is_ascii_whitespace) {
			// A notification: nothing goes into the array.
			return None;
		}
		match serde_json::from_slice::<Value>(&body) {
			Ok(reply) if status.is_success() => Some(reply),
			// An element must stay in the array, or the client mismatches the others.
			_ => Some(error(
				call,
				-32603,
				&format!("upstream answered {status}: {}", String::from_utf8_lossy(&body)),
			)),
		}
	}

	async fn single(&self, fault: &Fault, body: Bytes, call: &Value) -> Reply {
		match self.decide(fault, call) {
			Outcome::Forward => self.pass_through(body).await,
			Outcome::Answer(reply) => Reply::json(&reply),
			Outcome::ForwardThenCut => {
				let _ = self.forward(body).await;
				Reply::Lost
			},
		}
	}

	async fn batch(&self, fault: &Fault, body: Bytes, batch: Vec<Value>) -> Reply {
		let outcomes: Vec<Outcome> = batch.iter().map(|call| self.decide(fault, call)).collect();
		if outcomes.iter().all(|outcome| matches!(outcome, Outcome::Forward)) {
			// Untouched batches go up as batches, so the upstream sees what the client sent.
			return self.pass_through(body).await;
		}
		// Split: one upstream call per element, in order, reassembled in the same order.
		let mut replies = Vec::with_capacity(batch.len());
		let mut lost = false;
		for (call, outcome) in batch.iter().zip(outcomes) {
			match outcome {
				Outcome::Forward => replies.extend(self.forward_call(call).await),
				// JSON-RPC answers nothing to a notification, refused or not.
				Outcome::Answer(reply) => {
					if call.get("id").is_some() {
						replies.push(reply)
					}
				},
				Outcome::ForwardThenCut => {
					let _ = self.forward_call(call).await;
					lost = true;
				},
			}
		}
		if lost {
			Reply::Lost
		} else {
			Reply::json(&Value::Array(replies))
		}
	}
}

async fn handle(
	State(shared): State<Arc<Shared>>,
	ConnectInfo(cut): ConnectInfo<Cut>,
	body: Bytes,
) -> Response {
	let request: Option<Value> = serde_json::from_slice(&body).ok();
	shared.record(&request.as_ref().map(methods).unwrap_or_default());
	let Some(fault) = shared.fault_after_hang().await else {
		return (StatusCode::SERVICE_UNAVAILABLE, "the RPC proxy stopped").into_response();
	};
	let reply = match request {
		Some(Value::Array(batch)) => shared.batch(&fault, body, batch).await,
		Some(call) => shared.single(&fault, body, &call).await,
		// Not JSON: the upstream's parse error is the realistic answer.
		None => shared.pass_through(body).await,
	};
	match reply {
		Reply::Answer(status, body) => {
			(status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
		},
		Reply::Unreachable(why) => (StatusCode::BAD_GATEWAY, why).into_response(),
		Reply::Lost => {
			cut.trip();
			// Never written: the tripped stream fails the first write.
			StatusCode::BAD_GATEWAY.into_response()
		},
	}
}

fn method_of(call: &Value) -> Option<&str> {
	call.get("method").and_then(Value::as_str)
}

fn methods(request: &Value) -> Vec<&str> {
	match request {
		Value::Array(batch) => batch.iter().filter_map(method_of).collect(),
		call => method_of(call).into_iter().collect(),
	}
}

fn id(call: &Value) -> Value {
	call.get("id").cloned().unwrap_or(Value::Null)
}

fn error(call: &Value, code: i64, message: &str) -> Value {
	json!({"jsonrpc": "2.0", "id": id(call), "error": {"code": code, "message": message}})
}

/// Set by a handler to lose the reply on its connection.
#[derive(Clone, Default)]
struct Cut(Arc<AtomicBool>);

impl Cut {
	fn trip(&self) {
		self.0.store(true, Ordering::SeqCst);
	}

	fn tripped(&self) -> bool {
		self.0.load(Ordering::SeqCst)
	}
}

// How a handler reaches its own connection's `Cut`: axum hands it over as `ConnectInfo`.
impl Connected<IncomingStream<'_, ProxyListener>> for Cut {
	fn connect_info(stream: IncomingStream<'_, ProxyListener>) -> Self {
		stream.io().cut.clone()
	}
}

/// A loopback listener whose connections can be cut by their handlers.
struct ProxyListener(TcpListener);

impl Listener for ProxyListener {
	type Io = CuttableStream;
	type Addr = SocketAddr;

	async fn accept(&mut self) -> (CuttableStream, SocketAddr) {
		// axum's own accept, which retries transient errors (EMFILE and the like).
		let (stream, addr) = Listener::accept(&mut self.0).await;
		// JSON-RPC replies are small; Nagle would hold them back for the client's delayed ACK.
		let _ = stream.set_nodelay(true);
		(CuttableStream { stream, cut: Cut::default() }, addr)
	}

	fn local_addr(&self) -> io::Result<SocketAddr> {
		self.0.local_addr()
	}
}

/// A TCP stream that refuses to write once its `Cut` is tripped, so hyper drops the
/// connection instead of sending the response.
struct CuttableStream {
	stream: TcpStream,
	cut: Cut,
}

impl AsyncRead for CuttableStream {
	fn poll_read(
		mut self: Pin<&mut Self>,
		cx: &mut Context<'_>,
		buf: &mut ReadBuf<'_>,
	) -> Poll<io::Result<()>> {
		Pin::new(&mut self.stream).poll_read(cx, buf)
	}
}

// `poll_write_vectored` is left to its default, which goes through `poll_write` (and
// `is_write_vectored` stays false), so no write can bypass the cut.
impl AsyncWrite for CuttableStream {
	fn poll_write(
		mut self: Pin<&mut Self>,
		cx: &mut Context<'_>,
		buf: &[u8],
	) -> Poll<io::Result<usize>> {
		if self.cut.tripped() {
			return Poll::Ready(Err(io::Error::new(
				io::ErrorKind::ConnectionAborted,
				"reply dropped by the RPC proxy's fault",
			)));
		}
		Pin::new(&mut self.stream).poll_write(cx, buf)
	}

	fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
		Pin::new(&mut self.stream).poll_flush(cx)
	}

	fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
		Pin::new(&mut self.stream).poll_shutdown(cx)
	}
}

#[cfg(test)]
mod tests {
	use super::*;
	use axum::{routing::post, Json};

	const SECOND: Duration = Duration::from_secs(1);

	/// A 32-byte hash, distinct per `n`.
	fn hash(n: u64) -> String {
		format!("0x{n:064x}")
	}

	fn call(id: u64, method: &str, params: Value) -> Value {
		json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	}

	fn send(id: u64) -> Value {
		call(id, SEND, json!(["0x02f86b0180"]))
	}

	fn receipt(id: u64, tx: &str) -> Value {
		call(id, RECEIPT, json!([tx]))
	}

	/// One request on a fresh client, so no pooled connection carries over between steps.
	async fn rpc(url: String, body: Value) -> reqwest::Result<Value> {
		rpc_within(url, body, Duration::from_secs(10)).await
	}

	async fn rpc_within(url: String, body: Value, timeout: Duration) -> reqwest::Result<Value> {
		reqwest::Client::new().post(url).timeout(timeout).json(&body).send().await?.json().await
	}

	type Counts = Arc<Mutex<HashMap<String, usize>>>;

	/// A fake JSON-RPC endpoint that counts what reaches it.
	struct Upstream {
		url: String,
		calls: Counts,
	}

	impl Upstream {
		async fn start() -> Upstream {
			let calls = Counts::default();
			let app: Router = Router::new().route("/", post(answer)).with_state(calls.clone());
			let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
			let url = format!("http://{}", listener.local_addr().unwrap());
			// Lives until the test's runtime ends, which is all a test needs.
			tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
			Upstream { url, calls }
		}

		fn calls(&self, method: &str) -> usize {
			self.calls.lock().unwrap().get(method).copied().unwrap_or(0)
		}
	}

	async fn answer(State(calls): State<Counts>, Json(request): Json<Value>) -> Json<Value> {
		Json(match request {
			Value::Array(batch) => batch.iter().map(|c| answer_one(&calls, c)).collect(),
			call => answer_one(&calls, &call),
		})
	}

	fn answer_one(calls: &Counts, call: &Value) -> Value {
		let method = method_of(call).unwrap_or_default();
		*calls.lock().unwrap().entry(method.to_string()).or_default() += 1;
		let result = match method {
			"eth_chainId" => json!("0x1"),
			SEND => json!(hash(0xabc)),
			RECEIPT => json!({"status": "0x1", "transactionHash": call["params"][0]}),
			_ => return error(call, -32601, "method not found"),
		};
		json!({"jsonrpc": "2.0", "id": call["id"], "result": result})
	}

	#[tokio::test]
	async fn forwards_and_counts_calls() {
		let upstream = Upstream::start().await;
		let proxy = RpcProxy::start(&upstream.url).await;

		let reply = rpc(proxy.url.clone(), call(7, "eth_chainId", json!([]))).await.unwrap();
		assert_eq!(reply, json!({"jsonrpc": "2.0", "id": 7, "result": "0x1"}));
		let reply = rpc(proxy.url.clone(), send(8)).await.unwrap();
		assert_eq!(reply["result"], json!(hash(0xabc)));

		assert_eq!(proxy.calls("eth_chainId"), 1);
		assert_eq!(proxy.calls(SEND), 1);
		assert_eq!(proxy.calls(RECEIPT), 0);
		assert_eq!(upstream.calls("eth_chainId"), 1);
		assert_eq!(upstream.calls(SEND), 1);
		assert!(proxy.wait_for_call("eth_chainId", 1, SECOND).await);
		assert!(!proxy.wait_for_call("eth_chainId", 2, Duration::from_millis(100)).await);
	}

	#[tokio::test]
	async fn drop_send_reply_forwards_but_loses_the_answer() {
		let upstream = Upstream::start().await;
		let proxy = RpcProxy::start(&upstream.url).await;
		proxy.set(Fault::DropSendReply);

		let lost = rpc(proxy.url.clone(), send(1)).await.unwrap_err();
		// A closed connection, not a hang that ran into the client's timeout.
		assert!(!lost.is_timeout(), "{lost}");
		assert_eq!(upstream.calls(SEND), 1, "the transaction was broadcast");
		assert_eq!(proxy.calls(SEND), 1);

		// Other methods are untouched, on new connections.
		let reply = rpc(proxy.url.clone(), call(2, "eth_chainId", json!([]))).await.unwrap();
		assert_eq!(reply["result"], "0x1");

		// A batch holding a send loses its whole reply, after every element went up.
		let batch = json!([call(3, "eth_chainId", json!([])), send(4)]);
		assert!(rpc(proxy.url.clone(), batch).await.is_err());
		assert_eq!(upstream.calls(SEND), 2);
		assert_eq!(upstream.calls("eth_chainId"), 2);

		proxy.clear();
		let reply = rpc(proxy.url.clone(), send(5)).await.unwrap();
		assert_eq!(reply["result"], json!(hash(0xabc)));
	}

	#[tokio::test]
	async fn refuse_send_answers_an_error_without_forwarding() {
		let upstream = Upstream::start().await;
		let proxy = RpcProxy::start(&upstream.url).await;
		proxy.set(Fault::RefuseSend { code: -32000, message: "nonce too low".into() });

		let reply = rpc(proxy.url.clone(), send(9)).await.unwrap();
		let refusal = json!({"code": -32000, "message": "nonce too low"});
		assert_eq!(reply, json!({"jsonrpc": "2.0", "id": 9, "error": refusal}));
		assert_eq!(upstream.calls(SEND), 0);
		assert_eq!(proxy.calls(SEND), 1);

		proxy.clear();
		let reply = rpc(proxy.url.clone(), send(10)).await.unwrap();
		assert_eq!(reply["result"], json!(hash(0xabc)));
		assert_eq!(upstream.calls(SEND), 1);
	}

	#[tokio::test]
	async fn delay_receipts_answers_null_then_the_receipt() {
		let upstream = Upstream::start().await;
		let proxy = RpcProxy::start(&upstream.url).await;
		let delay = Duration::from_millis(300);
		proxy.set(Fault::DelayReceipts(delay));

		let first = rpc(proxy.url.clone(), receipt(1, &hash(1))).await.unwrap();
		assert_eq!(first, json!({"jsonrpc": "2.0", "id": 1, "result": null}));
		assert_eq!(upstream.calls(RECEIPT), 0);

		// The delay is the behaviour under test, so waiting it out is the point here.
		tokio::time::sleep(delay + Duration::from_millis(100)).await;
		let later = rpc(proxy.url.clone(), receipt(2, &hash(1))).await.unwrap();
		assert_eq!(later["result"]["status"], "0x1");
		assert_eq!(later["result"]["transactionHash"], json!(hash(1)));
		assert_eq!(upstream.calls(RECEIPT), 1);

		// The clock is per hash: one first asked for now is held back in turn.
		let other = rpc(proxy.url.clone(), receipt(3, &hash(2))).await.unwrap();
		assert_eq!(other["result"], Value::Null);

		proxy.clear();
		let other = rpc(proxy.url.clone(), receipt(4, &hash(2))).await.unwrap();
		assert_eq!(other["result"]["status"], "0x1");
	}

	#[tokio::test]
	async fn hang_all_times_out_and_clear_releases() {
		let upstream = Upstream::start().await;
		let proxy = RpcProxy::start(&upstream.url).await;
		proxy.set(Fault::HangAll);

		let hung = rpc_within(
			proxy.url.clone(),
			call(1, "eth_chainId", json!([])),
			Duration::from_millis(300),
		)
		.await
		.unwrap_err();
		assert!(hung.is_timeout(), "{hung}");

		let pending = tokio::spawn(rpc(proxy.url.clone(), call(2, "eth_chainId", json!([]))));
		assert!(proxy.wait_for_call("eth_chainId", 2, Duration::from_secs(5)).await);
		assert!(!pending.is_finished());
		proxy.clear();
		let reply = tokio::time::timeout(Duration::from_secs(5), pending)
			.await
			.expect("released by clear()")
			.unwrap()
			.unwrap();
		assert_eq!(reply, json!({"jsonrpc": "2.0", "id": 2, "result": "0x1"}));
	}

	#[tokio::test]
	async fn dropping_the_proxy_releases_hung_requests() {
		let upstream = Upstream::start().await;
		let proxy = RpcProxy::start(&upstream.url).await;
		proxy.set(Fault::HangAll);

		let pending = tokio::spawn(rpc(proxy.url.clone(), call(1, "eth_chainId", json!([]))));
		assert!(proxy.wait_for_call("eth_chainId", 1, Duration::from_secs(5)).await);
		drop(proxy);
		let outcome =
			tokio::time::timeout(Duration::from_secs(5), pending).await.expect("released on drop");
		// A 503 in plain text (or a closed connection): either way, not a JSON answer.
		assert!(outcome.unwrap().is_err());
		assert_eq!(upstream.calls("eth_chainId"), 0);
	}

	#[tokio::test]
	async fn batches_are_forwarded_whole_or_split_in_order() {
		let upstream = Upstream::start().await;
		let proxy = RpcProxy::start(&upstream.url).await;

		let batch = json!([call(1, "eth_chainId", json!([])), receipt(2, &hash(1))]);
		let reply = rpc(proxy.url.clone(), batch).await.unwrap();
		assert_eq!(reply[0]["result"], "0x1");
		assert_eq!(reply[1]["result"]["status"], "0x1");
		assert_eq!(upstream.calls("eth_chainId"), 1);

		proxy.set(Fault::RefuseSend { code: 1010, message: "Invalid Transaction".into() });
		let batch = json!([call(3, "eth_chainId", json!([])), send(4), receipt(5, &hash(1))]);
		let reply = rpc(proxy.url.clone(), batch).await.unwrap();
		let ids: Vec<_> = reply.as_array().unwrap().iter().map(|r| r["id"].clone()).collect();
		assert_eq!(ids, [json!(3), json!(4), json!(5)]);
		assert_eq!(reply[0]["result"], "0x1");
		assert_eq!(reply[1]["error"]["code"], 1010);
		assert_eq!(reply[1]["error"]["message"], "Invalid Transaction");
		assert_eq!(reply[2]["result"]["status"], "0x1");

		assert_eq!(upstream.calls(SEND), 0);
		assert_eq!(upstream.calls("eth_chainId"), 2);
		assert_eq!(upstream.calls(RECEIPT), 2);
		assert_eq!(proxy.calls("eth_chainId"), 2);
		assert_eq!(proxy.calls(SEND), 1);
		assert_eq!(proxy.calls(RECEIPT), 2);
	}
}
