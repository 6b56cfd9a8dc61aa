//! `machine-agent`: the m2m-pay device daemon and its command line.

mod agent;
mod catalogue;
mod chain;
mod channels;
mod claims;
mod config;
mod control;
mod daemon;
mod keystore;
mod metrics;
mod p2p;
mod purchase;
mod records;
mod report;
mod selling;
mod serve;
mod services;
mod status;
mod store;
mod tally;

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use m2m_chain_client::{ChainClient, DeviceKeys};

/// The m2m-pay device daemon: sells this device's services and buys others' with x402, pays
/// in USDT on the chain's EVM side, keeps every payment in RocksDB, and records its sales as
/// receipts on-chain for the owner's accounting.
///
/// Start a device:
///   machine-agent --config robot/machine-agent.toml init --name robot --dev
///   m2m-devnet fund robot --usdt 100          # testnet: native for fees and gas, USDT
///   machine-agent --config robot/machine-agent.toml run
///
/// Then, from the device:
///   machine-agent --config robot/machine-agent.toml pay http://127.0.0.1:8402/reading
///   machine-agent --config robot/machine-agent.toml pay device:3/kwh     # over libp2p
///   machine-agent --config robot/machine-agent.toml receipts --since 24h
#[derive(Parser, Debug)]
#[command(name = "machine-agent", version, verbatim_doc_comment)]
struct Cli {
	/// The configuration file (written by `init`).
	#[arg(long, global = true, env = "M2M_AGENT_CONFIG", default_value = "machine-agent.toml")]
	config: PathBuf,

	#[command(subcommand)]
	command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
	/// Create the device's keys (sr25519, secp256k1, ed25519; 0600 files) and a commented
	/// config file next to them. Never overwrites existing keys.
	Init {
		/// The device's name (logs, tables; with --dev, also its dev keys).
		#[arg(long)]
		name: String,
		/// DEV KEYS: derive the keys from the name, as `m2m-devnet fund NAME` expects, and let
		/// the public dev account Alice own the device. Testnets only.
		#[arg(long)]
		dev: bool,
		/// Who registers the device: an sr25519 secret URI (`//Alice` on testnets).
		#[arg(long)]
		owner: Option<String>,
		/// Where `run` serves.
		#[arg(long, default_value = "127.0.0.1:8402")]
		listen: SocketAddr,
		/// The USDT contract.
		#[arg(long, default_value = "0xFA0E696d5B8b287ff29e23C4A2E088063ADaD75e")]
		usdt: String,
	},
	/// Run the daemon: serve the sold services behind x402, register the device if needed,
	/// submit receipts, resume interrupted purchases. Stops on Ctrl-C or SIGTERM.
	Run,
	/// Put the device on-chain under its owner (nothing happens if it already is).
	Register,
	/// Buy once from a seller: pays only what the spending policy allows, and finishes an
	/// interrupted purchase of the same target instead of paying again.
	///
	/// Over libp2p, the seller must be a registered device, and only offers paying that
	/// device's EVM address are paid.
	Pay {
		/// What to buy: an HTTP URL (http://127.0.0.1:8402/reading); a registered device's
		/// resource over libp2p (device:3/kwh: its PeerId from the chain, its address from the
		/// chain or mDNS); or a peer's multiaddr and the path
		/// (/ip4/192.168.1.7/tcp/8403/p2p/12D3KooW…/kwh).
		#[arg(value_name = "TARGET")]
		url: String,
		/// Stream this many units of a metered service over libp2p (`/x402-stream/1.0.0`),
		/// paid interval by interval by channel vouchers on the stream; the last interval is
		/// cut short at N and charged only the units delivered. libp2p targets only.
		#[arg(long, value_name = "N")]
		units: Option<u64>,
	},
	/// A device's receipts on-chain (this device's unless --device).
	Receipts {
		#[arg(long)]
		device: Option<u64>,
		#[command(flatten)]
		range: Range,
		#[arg(long, value_enum, default_value = "table")]
		format: report::Format,
	},
	/// An owner's accounting per device and in total (this device's owner unless --owner).
	Fleet {
		/// The owner's account (SS58).
		#[arg(long)]
		owner: Option<String>,
		#[command(flatten)]
		range: Range,
		#[arg(long, value_enum, default_value = "table")]
		format: report::Format,
	},
	/// The device's identity and its payments, from the store (or the running daemon).
	Status,
	/// The device's most recent payments, newest first: what was bought and sold, from whom,
	/// its state and transaction. A sale over libp2p names the buyer's PeerId and device.
	Payments {
		/// How many to show.
		#[arg(long, default_value_t = 20)]
		limit: usize,
		#[arg(long, value_enum, default_value = "table")]
		format: report::Format,
	},
	/// The receipts outbox: how many wait to be sent or to become final, and every receipt the
	/// chain refused for good (the dead-letter list) with the chain's reason.
	Outbox,
	/// Change the device's on-chain identity (signed by its owner).
	#[command(subcommand)]
	Identity(Identity),
	/// Payment channels, sold from and paid from: balances, charged, claimed, withdrawals.
	#[command(subcommand)]
	Channels(Channels),
}

#[derive(Subcommand, Debug)]
enum Channels {
	/// Every channel of this device, both roles (the default).
	List,
	/// Claim what the channels this device sells from charged, now (the daemon also claims
	/// every `[channels] claim_interval_secs`), and queue the claims' receipts. Needs the
	/// daemon running.
	Claim,
	/// Take back what this device deposited into a channel and the seller has not claimed:
	/// starts the withdrawal; run again with --finalize once the channel's withdraw delay has
	/// passed. The seller may still claim what it charged until then.
	Withdraw {
		/// The channel id (0x…, from `channels list`).
		channel: String,
		#[arg(long)]
		finalize: bool,
	},
	/// A cooperative refund, at once (no withdraw delay). With a channel id (role `sell`):
	/// give its payer back what it deposited and was not charged for; the same transaction
	/// claims everything charged first, so nothing served is given back (needs the daemon
	/// running). With a URL (role `buy`): ask the seller there for what this device's channel
	/// holds beyond what it was charged.
	Refund {
		/// A channel id (0x…, from `channels list`), or the URL of a service paid from a
		/// channel (http://…/kwh).
		channel: String,
	},
}

#[derive(Subcommand, Debug)]
enum Identity {
	/// Set an attribute, e.g. `identity set-attribute model CHG-22kW --valid-for 100800`.
	SetAttribute {
		name: String,
		value: String,
		/// Blocks until it expires (6 s blocks); forever if absent.
		#[arg(long)]
		valid_for: Option<u32>,
	},
	/// Remove an attribute (its deposit is returned to the owner).
	RemoveAttribute { name: String },
	/// Replace one of the device's keys with a fresh one, on-chain and in the keystore (the
	/// old key file is kept as `<file>.old-<ms>`). Restart the daemon afterwards. Rotating
	/// the EVM key does not move USDT or gas held at the old address.
	RotateKey {
		#[arg(value_enum)]
		key: KeyChoice,
	},
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum KeyChoice {
	/// The chain account (sr25519).
	Account,
	/// The EVM key (secp256k1).
	Evm,
	/// The libp2p key (ed25519).
	Peer,
}

/// A time range ending now (or at --until).
#[derive(clap::Args, Debug)]
struct Range {
	/// How far back: 30m, 24h, 7d.
	#[arg(long, default_value = "24h", value_parser = parse_span)]
	since: Duration,
	/// Unix milliseconds; default now.
	#[arg(long)]
	until: Option<u64>,
}

impl Range {
	fn millis(&self) -> (u64, u64) {
		let to = self.until.unwrap_or_else(store::now_ms);
		(to.saturating_sub(self.since.as_millis() as u64), to)
	}
}

fn parse_span(s: &str) -> Result<Duration, String> {
	let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
	let n: u64 = n.parse().map_err(|_| format!("{s:?}: expected e.g. 30m, 24h, 7d"))?;
	let secs = match unit {
		"s" => n,
		"m" => n * 60,
		"h" | "" => n * 3600,
		"d" => n * 86_400,
		_ => return Err(format!("{s:?}: use s, m, h or d")),
	};
	Ok(Duration::from_secs(secs))
}

fn main() -> std::process::ExitCode {
	let cli = Cli::parse();
	// The daemon narrates; one-shot commands only speak up about trouble. RUST_LOG overrides.
	let default = if matches!(cli.command, Command::Run) { "info" } else { "warn" };
	tracing_subscriber::fmt()
		.with_env_filter(
			tracing_subscriber::EnvFilter::try_from_default_env()
				.unwrap_or_else(|_| default.into()),
		)
		.with_writer(std::io::stderr)
		.init();
	let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
	match runtime.block_on(dispatch(cli)) {
		Ok(()) => std::process::ExitCode::SUCCESS,
		Err(e) => {
			eprintln!("error: {e:#}");
			std::process::ExitCode::FAILURE
		},
	}
}

async fn dispatch(cli: Cli) -> Result<()> {
	if let Command::Init { name, dev, owner, listen, usdt } = &cli.command {
		return init(&cli.config, name, *dev, owner.clone(), *listen, usdt);
	}
	let config = config::Config::load(&cli.config)?;
	match cli.command {
		Command::Init { .. } => unreachable!(),
		Command::Run => daemon::run(config).await,
		Command::Register => {
			let keys = keystore::load(&config.device.keystore)?;
			let owner = chain::owner_key(
				config.chain.owner.as_deref(),
				config.chain.owner_file.as_deref(),
			)?;
			let chain = ChainClient::connect(&config.chain.url).await?;
			let id = chain::ensure_registered(&chain, &keys, owner.as_ref()).await?;
			println!("device #{id} ({}) is registered", config.device.name);
			Ok(())
		},
		Command::Pay { url, units } => pay(&config, &url, units).await,
		Command::Receipts { device, range, format } => {
			let chain = ChainClient::connect(&config.chain.url).await?;
			let device = match device {
				Some(d) => d,
				None => own_device(&chain, &config).await?,
			};
			let (from, to) = range.millis();
			report::receipts(&chain, device, from, to, format).await
		},
		Command::Fleet { owner, range, format } => {
			let chain = ChainClient::connect(&config.chain.url).await?;
			let owner: m2m_chain_client::AccountId = match owner {
				Some(o) => o
					.parse()
					.map_err(|_| anyhow::anyhow!("--owner {o:?} is not an SS58 account"))?,
				None => {
					let o = chain::owner_key(
						config.chain.owner.as_deref(),
						config.chain.owner_file.as_deref(),
					)?
					.context("no --owner given and no owner key configured")?;
					o.public_key().into()
				},
			};
			let (from, to) = range.millis();
			report::fleet(&chain, &owner, from, to, format).await
		},
		Command::Identity(change) => {
			let chain = ChainClient::connect(&config.chain.url).await?;
			let device = own_device(&chain, &config).await?;
			let owner = chain::owner_key(
				config.chain.owner.as_deref(),
				config.chain.owner_file.as_deref(),
			)?
			.context(
				"identity changes are signed by the owner: configure [chain] owner or owner_file",
			)?;
			match change {
				Identity::SetAttribute { name, value, valid_for } => {
					chain.set_attribute(&owner, device, &name, value.as_bytes(), valid_for).await?;
					println!("device #{device}: {name} = {value:?}");
				},
				Identity::RemoveAttribute { name } => {
					chain.remove_attribute(&owner, device, &name).await?;
					println!("device #{device}: {name} removed");
				},
				Identity::RotateKey { key } => {
					use m2m_primitives::device::KeyKind;
					let (index, kind) = match key {
						KeyChoice::Account => (0, KeyKind::Account),
						KeyChoice::Evm => (1, KeyKind::Evm),
						KeyChoice::Peer => (2, KeyKind::Peer),
					};
					let rotation = keystore::Rotation::begin(&config.device.keystore, index)?;
					match chain.rotate_key(&owner, device, &rotation.new_keys, kind).await {
						Ok(()) => {
							let keys = &rotation.new_keys;
							println!(
								"device #{device}: {key:?} key rotated (account {}, EVM {}); restart the daemon",
								keys.account_id(),
								daemon::evm_address(keys)
							);
							rotation.commit()?;
						},
						Err(e) => {
							rotation.abort();
							return Err(e.into());
						},
					}
				},
			}
			Ok(())
		},
		Command::Channels(command) => channels_command(&config, command).await,
		Command::Status => {
			let status = local_status(&config).await?;
			println!("{}", serde_json::to_string_pretty(&status)?);
			Ok(())
		},
		Command::Payments { limit, format } => {
			let keys = keystore::load(&config.device.keystore)?;
			let me = daemon::evm_address(&keys).to_checksum(None);
			let payments = match store::Store::open(&config.device.data_dir, &me) {
				Ok(store) => status::recent_payments(&store, limit),
				Err(e) if is_locked(&e) => {
					let path = format!("/payments?limit={limit}");
					control::call(&config, reqwest::Method::GET, &path, None).await?
				},
				Err(e) => return Err(e.into()),
			};
			report::payments(&payments, format);
			Ok(())
		},
		Command::Outbox => {
			let status = local_status(&config).await?;
			println!(
				"waiting to be sent or final: {}  (of which awaiting finality: {})",
				status["outbox_depth"], status["receipts_awaiting_finality"]
			);
			let dead = status["dead_letters"].as_array().cloned().unwrap_or_default();
			if dead.is_empty() {
				println!("dead letters: none");
			} else {
				println!("dead letters: {} (refused by the chain for good)", dead.len());
				println!("{:<66}  {:<24}  error", "receipt", "refused at (UTC)");
				for d in dead {
					let at = d["refused_ms"].as_u64().unwrap_or_default();
					println!(
						"0x{:<64}  {:<24}  {}",
						d["id"].as_str().unwrap_or_default(),
						report::utc(at),
						d["error"].as_str().unwrap_or_default()
					);
				}
			}
			Ok(())
		},
	}
}

/// A service's URL, not a channel id.
fn is_url(s: &str) -> bool {
	s.starts_with("http://") || s.starts_with("https://")
}

/// `channels …`: from the store, or through the running daemon that holds it.
async fn channels_command(config: &config::Config, command: Channels) -> Result<()> {
	let keys = keystore::load(&config.device.keystore)?;
	let me = daemon::evm_address(&keys).to_checksum(None);
	let opened = store::Store::open(&config.device.data_dir, &me);
	if let Err(e) = &opened {
		if !is_locked(e) {
			return Err(anyhow::anyhow!("{e}"));
		}
	}
	let answer = match (command, opened) {
		(Channels::List, Ok(store)) => channels::list(&store)?,
		(Channels::List, Err(_)) => {
			control::call(config, reqwest::Method::GET, "/status", None).await?["channels"].clone()
		},
		(Channels::Claim, Ok(_)) => {
			bail!(
				"claims are made by the running daemon (`machine-agent run`); start it, then claim"
			)
		},
		(Channels::Claim, Err(_)) => {
			control::call(config, reqwest::Method::POST, "/channels/claim", None).await?
		},
		(Channels::Withdraw { channel, finalize }, Ok(store)) => {
			let provider = m2m_evm::connect(&config.evm.rpc_url, Some(daemon::evm_signer(&keys)))?;
			channels::withdraw(&store, &provider, &channel, finalize).await?
		},
		(Channels::Refund { channel: url }, Ok(store)) if is_url(&url) => {
			let store = Arc::new(store);
			let provider = m2m_evm::connect(&config.evm.rpc_url, None)?;
			let chain_id = daemon::evm_chain_id(&provider, &config.evm.rpc_url).await?;
			let client = daemon::buying_client(config, &keys, store, chain_id)?;
			channels::ask_refund(&client, &url).await?
		},
		(Channels::Refund { .. }, Ok(_)) => {
			bail!(
				"refunds are granted by the running daemon (`machine-agent run`), which holds the \
				 channel and its facilitator; start it, then refund"
			)
		},
		(Channels::Refund { channel }, Err(_)) => {
			let body = serde_json::json!({ "channel": channel });
			control::call(config, reqwest::Method::POST, "/channels/refund", Some(body)).await?
		},
		(Channels::Withdraw { channel, finalize }, Err(_)) => {
			let body = serde_json::json!({"channel": channel, "finalize": finalize});
			control::call(config, reqwest::Method::POST, "/channels/withdraw", Some(body)).await?
		},
	};
	if let Some(error) = answer.get("error").and_then(|e| e.as_str()) {
		bail!("{error}");
	}
	match answer.as_array() {
		Some(rows) => {
			println!(
				"{:<4}  {:<66}  {:>14}  {:>14}  {:>14}  {:>8}  state",
				"role", "channel", "balance", "charged", "claimed", "requests"
			);
			for r in rows {
				println!(
					"{:<4}  {:<66}  {:>14}  {:>14}  {:>14}  {:>8}  {}",
					r["role"].as_str().unwrap_or(""),
					r["channel_id"].as_str().unwrap_or(""),
					r["balance"].as_str().unwrap_or(""),
					r["charged"].as_str().unwrap_or(""),
					r["claimed"].as_str().unwrap_or(""),
					r["requests"],
					r["state"].as_str().unwrap_or(""),
				);
			}
		},
		None => println!("{}", serde_json::to_string_pretty(&answer)?),
	}
	Ok(())
}

/// The status, from the store, or from the running daemon that holds it.
async fn local_status(config: &config::Config) -> Result<serde_json::Value> {
	let keys = keystore::load(&config.device.keystore)?;
	let me = daemon::evm_address(&keys).to_checksum(None);
	Ok(match store::Store::open(&config.device.data_dir, &me) {
		Ok(store) => status::of(config, &keys, &store, None),
		Err(e) if is_locked(&e) => {
			control::call(config, reqwest::Method::GET, "/status", None).await?
		},
		Err(e) => return Err(e.into()),
	})
}

async fn own_device(chain: &ChainClient, config: &config::Config) -> Result<u64> {
	let keys = keystore::load(&config.device.keystore)?;
	chain.device_by_account(&keys.account_id()).await?.context(
		"this device is not registered yet (`machine-agent register`, or `run` with an owner key)",
	)
}

fn init(
	path: &std::path::Path,
	name: &str,
	dev: bool,
	owner: Option<String>,
	listen: SocketAddr,
	usdt: &str,
) -> Result<()> {
	if path.exists() {
		bail!("{} exists; init never overwrites a device", path.display());
	}
	let dir =
		path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
	std::fs::create_dir_all(dir)?;
	let secrets = dev.then(|| DeviceKeys::dev_secrets(&format!("devnet/{name}")));
	keystore::create(&dir.join("keys"), secrets)?;
	let owner = owner.or_else(|| dev.then(|| "//Alice".to_string()));
	std::fs::write(path, config::template(name, owner.as_deref(), listen, usdt))?;
	let keys = keystore::load(&dir.join("keys"))?;
	println!("device {name}: account {}, EVM {}", keys.account_id(), daemon::evm_address(&keys));
	if dev {
		println!("DEV KEYS: derived from the public name {name:?}; testnets only");
	}
	println!("config: {}", path.display());
	Ok(())
}

fn is_locked(e: &store::StoreError) -> bool {
	matches!(e, store::StoreError::Open { reason, .. } if reason.contains("lock"))
}

/// Buys once: directly, or through the running daemon's control socket (it holds the store).
async fn pay(config: &config::Config, url: &str, units: Option<u64>) -> Result<()> {
	if units.is_some() && !p2p::is_target(url) {
		bail!("--units streams over libp2p: give a device:<id>/<path> or /…/p2p/<PeerId>/<path> target, not {url:?}");
	}
	let keys = keystore::load(&config.device.keystore)?;
	let me = daemon::evm_address(&keys).to_checksum(None);
	let result = match store::Store::open(&config.device.data_dir, &me) {
		Ok(store) => {
			let store = Arc::new(store);
			let provider = m2m_evm::connect(&config.evm.rpc_url, None)?;
			let chain_id = daemon::evm_chain_id(&provider, &config.evm.rpc_url).await?;
			let client = daemon::buying_client(config, &keys, store.clone(), chain_id)?;
			// A node of its own, that only dials (mDNS only when it may need to find a peer).
			let mut p2p_config = config.p2p.clone();
			p2p_config.mdns &= p2p::is_target(url);
			let node = p2p::start(&p2p_config, &keys, None, false).await?;
			let buying = p2p::Buying {
				node: node.clone(),
				client: m2m_x402_buyer::messages::MessageClient::new(
					Arc::new(node),
					client.shared_buyer(),
				),
				identities: Arc::new(p2p::Identities::new(&config.chain.url)),
			};
			match units {
				Some(units) => purchase::stream(&buying, url, units).await,
				None => purchase::buy(&client, &buying, &store, url).await,
			}
		},
		Err(e) if is_locked(&e) => {
			let request = serde_json::json!({"url": url, "units": units});
			control::call(config, reqwest::Method::POST, "/buy", Some(request)).await?
		},
		Err(e) => return Err(e.into()),
	};
	if let Some(error) = result.get("error").and_then(|e| e.as_str()) {
		bail!("{error}");
	}
	println!("{}", result["body"].as_str().unwrap_or_default());
	let paid_by = match result["transaction"].as_str() {
		// A voucher moves no money by itself: the seller claims its vouchers in batches.
		Some("") => "a channel voucher".to_string(),
		Some(tx) => format!("tx {tx}"),
		None => "-".to_string(),
	};
	if let Some(units) = result["units"].as_u64() {
		let intervals = result["intervals"].as_u64().unwrap_or(0);
		eprintln!(
			"streamed {units} units in {intervals} interval{} at {} each: paid {} (channel vouchers)",
			if intervals == 1 { "" } else { "s" },
			result["unitPrice"].as_str().unwrap_or("?"),
			result["price"].as_str().unwrap_or("?")
		);
		return Ok(());
	}
	eprintln!(
		"paid {} ({paid_by}){}",
		result["price"].as_str().unwrap_or("nothing"),
		if result["resumed"].as_bool() == Some(true) {
			", resuming an interrupted purchase"
		} else {
			""
		}
	);
	Ok(())
}
