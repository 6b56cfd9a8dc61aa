//! `machine-agent run`: the device daemon.
//!
//! It serves the device's services behind x402 (settling with an embedded or remote
//! facilitator), writes every sale to RocksDB before releasing it, keeps the device registered
//! and its receipts flowing to the chain, and resumes purchases that a crash interrupted.
//!
//! It listens twice:
//! - the service listener (`[http] listen`, TCP) carries what anyone may reach: the sold
//!   services, `/health` and `/metrics` (for Prometheus). Its address is also written next to
//!   the data directory (`<data_dir>.addr`) for scripts.
//! - the control socket (`<data_dir>/control.sock`, a Unix socket with mode 0600 in a 0700
//!   directory) carries what spends or reveals: `POST /buy` and `GET /status`, for the local
//!   `pay` and `status` commands while the daemon holds the store. See [`crate::control`].

use std::{sync::Arc, time::Duration};

use anyhow::{Context, Result};
use axum::{
	extract::State,
	response::{IntoResponse, Response},
	routing::get,
	Router,
};
use m2m_chain_client::DeviceKeys;
use m2m_evm::alloy::{primitives::Address, providers::Provider};
use m2m_facilitator::{ChainLookup, Facilitate, Facilitator, RemoteFacilitator};
use m2m_primitives::receipt::AssetKey;
use m2m_x402::policy::{AssetAllowance, SpendingPolicy};
use m2m_x402_buyer::{client::X402Client, messages::MessageClient, Buyer, ChannelFunding};
use m2m_x402_seller::Seller;

use crate::{
	agent::Agent,
	catalogue::{self, Pricing},
	chain::{self, Health},
	claims,
	config::{Config, PriceScheme},
	control, keystore, metrics, p2p, purchase,
	selling::Recorder,
	services,
	store::Store,
};

/// The device's EVM signer.
pub fn evm_signer(keys: &DeviceKeys) -> m2m_evm::alloy::signers::local::PrivateKeySigner {
	m2m_evm::alloy::signers::local::PrivateKeySigner::from_bytes(&keys.evm.secret().into())
		.expect("keystore keys are valid")
}

pub fn evm_address(keys: &DeviceKeys) -> Address {
	Address::from(keys.evm_address().0)
}

/// The spending policy of the config, for this chain's USDT.
pub fn policy(config: &Config, chain_id: u64) -> Result<SpendingPolicy> {
	let usdt: Address = config.evm.usdt.parse().context("[evm] usdt is not an address")?;
	let payees = config
		.spending
		.payees
		.iter()
		.map(|p| p.parse().with_context(|| format!("payee {p:?} is not an address")))
		.collect::<Result<_>>()?;
	Ok(SpendingPolicy {
		assets: vec![AssetAllowance {
			network: m2m_x402::network::caip2(chain_id),
			asset: usdt,
			symbol: "USDT".into(),
			decimals: catalogue::DECIMALS,
			max_per_request: catalogue::usdt_units(
				&config.spending.max_per_request,
				"max_per_request",
			)?,
			daily_budget: catalogue::usdt_units(&config.spending.daily_budget, "daily_budget")?,
		}],
		payees,
	})
}

/// A buying client whose budget and journal live in `store`.
pub fn buying_client(
	config: &Config,
	keys: &DeviceKeys,
	store: Arc<Store>,
	chain_id: u64,
) -> Result<X402Client> {
	let funding = ChannelFunding { requests_per_deposit: config.spending.requests_per_deposit };
	let buyer = Buyer::with_ledger(evm_signer(keys), policy(config, chain_id)?, store.clone())
		.with_journal(store.clone())
		.with_channels(store, funding);
	let http = reqwest::Client::builder().timeout(Duration::from_secs(90)).build()?;
	Ok(X402Client::with_http(http, Arc::new(buyer)))
}

/// Who signs this device's channel claims: the `receiverAuthorizer` its facilitator lists
/// for batch-settlement on this chain.
async fn receiver_authorizer(facilitator: &dyn Facilitate, chain_id: u64) -> Result<Address> {
	let network = m2m_x402::network::caip2(chain_id);
	let supported = facilitator
		.supported()
		.await
		.map_err(|e| anyhow::anyhow!("cannot ask the facilitator what it supports: {e}"))?;
	let kind = supported
		.kinds
		.iter()
		.find(|k| k.scheme == m2m_x402::schemes::batch_settlement::SCHEME && k.network == network)
		.with_context(|| {
			format!("a service is priced with batch-settlement, but the facilitator does not settle channels on {network}")
		})?;
	kind.extra
		.as_ref()
		.and_then(|e| e.get("receiverAuthorizer"))
		.and_then(|a| a.as_str())
		.and_then(|a| a.parse().ok())
		.with_context(|| {
			format!(
				"the facilitator lists batch-settlement on {network} without a receiverAuthorizer"
			)
		})
}

/// The EVM chain id, waiting (with a clear log) while the endpoint is down.
pub async fn evm_chain_id(
	provider: &m2m_evm::alloy::providers::DynProvider,
	url: &str,
) -> Result<u64> {
	const ATTEMPTS: u32 = 20;
	let mut delay = Duration::from_millis(250);
	let mut attempt = 1;
	loop {
		match provider.get_chain_id().await {
			Ok(id) => return Ok(id),
			Err(e) if attempt == ATTEMPTS => {
				return Err(e).with_context(|| format!("the EVM RPC at {url} does not answer"))
			},
			Err(e) => {
				tracing::warn!(rpc = %url, error = %e, "EVM RPC unavailable; retrying");
				tokio::time::sleep(delay).await;
				delay = (delay * 2).min(Duration::from_secs(5));
				attempt += 1;
			},
		}
	}
}

pub async fn run(config: Config) -> Result<()> {
	let keys = Arc::new(keystore::load(&config.device.keystore)?);
	let me = evm_address(&keys);
	let store = Arc::new(Store::open(&config.device.data_dir, &me.to_checksum(None))?);
	let health = Arc::new(Health::new());
	let owner =
		chain::owner_key(config.chain.owner.as_deref(), config.chain.owner_file.as_deref())?;

	let provider = m2m_evm::connect(&config.evm.rpc_url, Some(evm_signer(&keys)))?;
	let chain_id = evm_chain_id(&provider, &config.evm.rpc_url).await?;
	health.evm_connected.store(true, std::sync::atomic::Ordering::Relaxed);
	let usdt: Address = config.evm.usdt.parse().context("[evm] usdt is not an address")?;
	let domain = m2m_evm::usdt::domain(&provider, usdt)
		.await
		.with_context(|| format!("reading USDT's EIP-712 domain at {usdt}"))?;

	let facilitator: Arc<dyn Facilitate> = if config.facilitator.url.is_empty() {
		let timeout = Duration::from_secs(config.facilitator.receipt_timeout_secs);
		Arc::new(Facilitator::new(provider.clone(), evm_signer(&keys), timeout).await?)
	} else {
		let timeout = Duration::from_secs(config.facilitator.receipt_timeout_secs + 10);
		Arc::new(RemoteFacilitator::new(&config.facilitator.url, timeout))
	};
	let wake = Arc::new(tokio::sync::Notify::new());
	let recorder = Recorder {
		store: store.clone(),
		asset: AssetKey { chain_id, token: m2m_primitives::H160(usdt.0 .0) },
		wake: wake.clone(),
	};
	let metered = config.services.iter().any(|s| s.scheme == PriceScheme::BatchSettlement);
	let receiver_authorizer = match metered {
		true => Some(receiver_authorizer(facilitator.as_ref(), chain_id).await?),
		false => None,
	};
	let max_unclaimed =
		catalogue::usdt_units(&config.channels.max_unclaimed, "[channels] max_unclaimed")?;
	let seller = Arc::new(
		Seller::new(facilitator)
			.with_idempotency(store.clone())
			.with_recorder(Arc::new(recorder))
			.with_settlement_lookup(Arc::new(ChainLookup::new(provider.clone())))
			.with_channels(store.clone())
			.with_max_unclaimed(max_unclaimed.to::<u128>())
			.with_receiver_key(evm_signer(&keys)),
	);
	let pricing = Pricing {
		chain_id,
		usdt,
		domain: (domain.name, domain.version),
		pay_to: me,
		receiver_authorizer,
	};
	let catalogue = catalogue::catalogue(&config.services, &pricing, &config.device.name)?;
	// The same catalogue, the same seller, over libp2p.
	let identities = Arc::new(p2p::Identities::new(&config.chain.url));
	let market = Arc::new(p2p::Market {
		seller: seller.clone(),
		entries: catalogue.iter().map(|e| (e.path.clone(), e.clone())).collect(),
		me: p2p::keypair(&keys).public().to_peer_id(),
		identities: identities.clone(),
		require_registered: config.p2p.require_registered,
	});
	let node = p2p::start(&config.p2p, &keys, Some(market), true).await?;
	let sold = services::router(catalogue, seller.clone());
	let asset = AssetKey { chain_id, token: m2m_primitives::H160(usdt.0 .0) };
	let channels = crate::channels::DaemonChannels {
		seller: seller.clone(),
		provider: provider.clone(),
		asset,
	};
	tokio::spawn(claims::worker(
		seller,
		store.clone(),
		claims::Claims {
			provider: provider.clone(),
			interval: Duration::from_secs(config.channels.claim_interval_secs.max(1)),
			threshold: max_unclaimed.to::<u128>(),
			asset,
			wake: wake.clone(),
		},
	));
	let client = buying_client(&config, &keys, store.clone(), chain_id)?;
	let buying = p2p::Buying {
		node: node.clone(),
		client: MessageClient::new(Arc::new(node.clone()), client.shared_buyer()),
		identities,
	};
	tokio::spawn(p2p::publish_addresses(
		config.chain.url.clone(),
		owner.clone(),
		keys.clone(),
		node.listen_addresses().to_vec(),
	));

	tokio::spawn(chain::worker(
		config.chain.url.clone(),
		keys.clone(),
		owner,
		store.clone(),
		health.clone(),
		wake,
	));
	let in_flight = store.purchases_in_flight();
	if !in_flight.is_empty() {
		tracing::info!(count = in_flight.len(), "resuming purchases a previous run left in flight");
		let (c, b) = (client.clone(), buying.clone());
		tokio::spawn(async move {
			for flight in in_flight {
				purchase::resume(&c, &b, flight).await;
			}
		});
	}

	let listen = config.http.listen;
	let agent = Arc::new(Agent { config, keys, store, health, client, channels, p2p: buying });
	let monitoring: Router = Router::new()
		.route("/health", get(|| async { "ok" }))
		.route("/metrics", get(metrics_handler))
		.with_state(agent.clone());
	// Sold services answer GETs; nothing on this port needs a large request body.
	let service = sold.merge(monitoring).layer(axum::extract::DefaultBodyLimit::max(64 * 1024));
	let listener = tokio::net::TcpListener::bind(listen)
		.await
		.with_context(|| format!("cannot listen on {listen}"))?;
	let address = listener.local_addr()?;
	let control_listener = control::bind(&agent.config)?;
	// For scripts that look for the service port; local commands use the control socket.
	std::fs::write(address_file(&agent.config), address.to_string())
		.context("cannot write the daemon's address file")?;
	let p2p_addresses: Vec<String> =
		node.listen_addresses().iter().map(|a| a.to_string()).collect();
	std::fs::write(agent.config.device.data_dir.with_extension("p2p"), p2p_addresses.join("\n"))
		.context("cannot write the daemon's libp2p address file")?;
	// Both servers stop on the same signal; a watch lets each wait for it, whenever it polls.
	let (stop, stopped) = tokio::sync::watch::channel(());
	let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
		.context("cannot handle SIGTERM")?;
	tokio::spawn(async move {
		tokio::select! {
			_ = tokio::signal::ctrl_c() => {},
			_ = term.recv() => {},
		}
		let _ = stop.send(());
	});
	tracing::info!(
		device = %agent.config.device.name, evm = %me, chain_id, services = agent.config.services.len(),
		peer = %node.peer_id(),
		control = %control::socket_path(&agent.config).display(),
		"machine-agent up"
	);
	for address in &p2p_addresses {
		println!("machine-agent libp2p on {address}");
	}
	// Printed last: whoever waits for this line finds both listeners ready.
	println!("machine-agent listening on http://{address}");
	let public = crate::serve::serve(listener, service, Default::default(), stopped.clone());
	let private = axum::serve(control_listener, control::router(agent.clone()))
		.with_graceful_shutdown(stop_signal(stopped));
	let served = tokio::try_join!(public, async move { private.await });
	control::remove(&agent.config);
	served?;
	tracing::info!("stopped");
	Ok(())
}

/// The file in which a running daemon leaves its HTTP address.
pub fn address_file(config: &Config) -> std::path::PathBuf {
	config.device.data_dir.with_extension("addr")
}

/// Resolves once the daemon is told to stop (or can no longer be told: the sender is gone).
async fn stop_signal(mut stopped: tokio::sync::watch::Receiver<()>) {
	let _ = stopped.changed().await;
}

async fn metrics_handler(State(agent): State<Arc<Agent>>) -> Response {
	(
		[(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
		metrics::render(&agent.store, &agent.health),
	)
		.into_response()
}
