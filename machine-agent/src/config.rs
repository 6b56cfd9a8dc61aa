//! The agent's configuration: a TOML file (written, commented, by `machine-agent init`), with
//! environment overrides for containers.

use std::{
	net::SocketAddr,
	path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// `machine-agent.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
	pub device: Device,
	pub chain: Chain,
	pub evm: Evm,
	pub http: Http,
	#[serde(default)]
	pub facilitator: Facilitator,
	#[serde(default)]
	pub services: Vec<Service>,
	pub spending: Spending,
	#[serde(default)]
	pub channels: Channels,
	#[serde(default)]
	pub p2p: P2p,
}

/// x402 over libp2p (`/x402/1.0.0`): the same services, and buying from peers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P2p {
	/// Where libp2p listens: TCP multiaddrs (with Noise and Yamux) and QUIC ones
	/// (`/udp/<port>/quic-v1`); empty sells nothing over libp2p (buying still works).
	#[serde(default = "default_p2p_listen")]
	pub listen: Vec<String>,
	/// Find peers on the LAN with mDNS (for `pay device:<id>/…`).
	#[serde(default = "default_true")]
	pub mdns: bool,
	/// How often mDNS asks the LAN.
	#[serde(default = "default_mdns_interval")]
	pub mdns_interval_secs: u64,
	/// Serve only peers whose PeerId is an active registered device's.
	#[serde(default)]
	pub require_registered: bool,
}

impl Default for P2p {
	fn default() -> Self {
		Self {
			listen: default_p2p_listen(),
			mdns: true,
			mdns_interval_secs: default_mdns_interval(),
			require_registered: false,
		}
	}
}

fn default_p2p_listen() -> Vec<String> {
	vec!["/ip4/0.0.0.0/tcp/8403".into(), "/ip4/0.0.0.0/udp/8403/quic-v1".into()]
}

fn default_true() -> bool {
	true
}

fn default_mdns_interval() -> u64 {
	30
}

/// The libp2p listen addresses next to an HTTP one: the same host and the next port (0 stays
/// 0), over TCP and over QUIC (UDP).
pub fn p2p_listen_for(http: SocketAddr) -> [String; 2] {
	let port = match http.port() {
		0 => 0,
		p => p.saturating_add(1),
	};
	let host = match http.ip() {
		std::net::IpAddr::V4(ip) => format!("/ip4/{ip}"),
		std::net::IpAddr::V6(ip) => format!("/ip6/{ip}"),
	};
	[format!("{host}/tcp/{port}"), format!("{host}/udp/{port}/quic-v1")]
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
	/// A name for logs and tables.
	pub name: String,
	/// Key directory (relative paths are relative to the config file).
	pub keystore: PathBuf,
	/// RocksDB directory.
	pub data_dir: PathBuf,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chain {
	/// The node's WebSocket RPC.
	pub url: String,
	/// Who registers the device: an sr25519 secret URI such as `//Alice` (DEV ONLY) or a file
	/// (mode 0600) holding one. Without it, `run` waits for the owner to register the device.
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub owner: Option<String>,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub owner_file: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evm {
	/// The chain's Ethereum JSON-RPC.
	pub rpc_url: String,
	/// The USDT contract.
	pub usdt: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
	/// Where sold services, `/health`, `/metrics` and `/status` are served.
	pub listen: SocketAddr,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Facilitator {
	/// A remote facilitator's URL; empty means embedded (this device settles its own sales
	/// and pays their gas).
	#[serde(default)]
	pub url: String,
	/// How long a settlement may wait for its receipt before it is `settlement_pending`.
	#[serde(default = "default_receipt_timeout")]
	pub receipt_timeout_secs: u64,
}

fn default_receipt_timeout() -> u64 {
	30
}

/// A service this device sells.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
	/// The URL path, e.g. `/reading`.
	pub path: String,
	/// Price per request in USDT, e.g. `"0.01"`: one kWh, one reading.
	pub price: String,
	/// How buyers pay: `"exact"` (default; one on-chain transfer per request) or
	/// `"batch-settlement"` (per unit from a payment channel: a deposit once, then a signed
	/// voucher per request, claimed in batches).
	#[serde(default)]
	pub scheme: PriceScheme,
	#[serde(default)]
	pub description: String,
	/// What answers the paid request.
	pub handler: Handler,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub file: Option<PathBuf>,
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub target: Option<String>,
	/// Also sell this service as a metered stream over libp2p (`/x402-stream/1.0.0`): one
	/// unit is one answer of the handler, at `price`, and one voucher pays for this many
	/// units. Needs `scheme = "batch-settlement"`.
	#[serde(default, skip_serializing_if = "Option::is_none")]
	pub units_per_voucher: Option<u64>,
	/// On a metered stream, one unit every this many milliseconds (the meter's pace).
	#[serde(default = "default_unit_interval")]
	pub unit_interval_ms: u64,
}

fn default_unit_interval() -> u64 {
	1_000
}

/// How a service is paid. Anything else in the config is an error that names these.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PriceScheme {
	/// One EIP-3009 transfer per request.
	#[default]
	Exact,
	/// Cumulative vouchers on a payment channel.
	BatchSettlement,
}

/// What answers a service's paid requests. Anything else in the config is an error that
/// names these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Handler {
	/// A generated reading (JSON).
	Sensor,
	/// The file at `file`.
	Static,
	/// Forwards a GET to `target`.
	Proxy,
}

/// What this device may spend, in USDT.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spending {
	pub max_per_request: String,
	pub daily_budget: String,
	/// Allowed payees (EVM addresses); empty allows every payee.
	#[serde(default)]
	pub payees: Vec<String>,
	/// Paying from a channel: how many requests (at the offer's price) one deposit funds.
	/// The deposit counts against the daily budget when it is signed.
	#[serde(default = "default_requests_per_deposit")]
	pub requests_per_deposit: u64,
}

fn default_requests_per_deposit() -> u64 {
	100
}

/// Selling from channels: when the vouchers held are claimed on-chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channels {
	/// Claim what was charged at least this often (seconds).
	#[serde(default = "default_claim_interval")]
	pub claim_interval_secs: u64,
	/// Claim as soon as the charged but unclaimed amount, over all channels, reaches this
	/// (USDT); a single channel at this bound is claimed before it serves more.
	#[serde(default = "default_max_unclaimed")]
	pub max_unclaimed: String,
}

impl Default for Channels {
	fn default() -> Self {
		Self {
			claim_interval_secs: default_claim_interval(),
			max_unclaimed: default_max_unclaimed(),
		}
	}
}

fn default_claim_interval() -> u64 {
	60
}

fn default_max_unclaimed() -> String {
	"1.00".into()
}

/// Environment variables that override the file, for containers.
pub const OVERRIDES: &[(&str, &str)] = &[
	("M2M_CHAIN_URL", "chain.url"),
	("M2M_CHAIN_OWNER", "chain.owner"),
	("M2M_EVM_RPC_URL", "evm.rpc_url"),
	("M2M_EVM_USDT", "evm.usdt"),
	("M2M_HTTP_LISTEN", "http.listen"),
	("M2M_FACILITATOR_URL", "facilitator.url"),
	("M2M_SPENDING_MAX_PER_REQUEST", "spending.max_per_request"),
	("M2M_SPENDING_DAILY_BUDGET", "spending.daily_budget"),
	("M2M_DATA_DIR", "device.data_dir"),
	("M2M_KEYSTORE", "device.keystore"),
];

impl Config {
	/// Reads `path`, applies the environment overrides, and resolves relative paths.
	pub fn load(path: &Path) -> Result<Config> {
		let text = std::fs::read_to_string(path).with_context(|| {
			format!("cannot read config {} (create one with `machine-agent init`)", path.display())
		})?;
		let mut value: toml::Value = toml::from_str(&text)
			.with_context(|| format!("{} is not valid TOML", path.display()))?;
		for (var, key) in OVERRIDES {
			if let Ok(v) = std::env::var(var) {
				let (section, field) = key.split_once('.').expect("section.field");
				let table = value
					.get_mut(section)
					.and_then(toml::Value::as_table_mut)
					.with_context(|| format!("{var} overrides [{section}], which is missing"))?;
				table.insert(field.into(), toml::Value::String(v));
			}
		}
		let mut config: Config = value
			.try_into()
			.with_context(|| format!("{} is not a machine-agent config", path.display()))?;
		let base = path.parent().unwrap_or(Path::new("."));
		config.device.keystore = base.join(&config.device.keystore);
		config.device.data_dir = base.join(&config.device.data_dir);
		config.chain.owner_file = config.chain.owner_file.map(|f| base.join(f));
		for s in &mut config.services {
			s.file = s.file.take().map(|f| base.join(f));
			if !s.path.starts_with('/') {
				bail!("service path {:?} must start with /", s.path);
			}
			match s.units_per_voucher {
				Some(0) => bail!("service {}: units_per_voucher must be at least 1", s.path),
				Some(_) if s.scheme != PriceScheme::BatchSettlement => bail!(
					"service {}: a metered stream (units_per_voucher) is paid from a channel; set scheme = \"batch-settlement\"",
					s.path
				),
				_ => {},
			}
		}
		Ok(config)
	}
}

/// The commented config `init` writes.
pub fn template(name: &str, owner: Option<&str>, listen: SocketAddr, usdt: &str) -> String {
	let owner_line = match owner {
		Some(uri) => format!("owner = {uri:?}   # DEV KEY: a public dev account, testnets only"),
		None => "# owner_file = \"owner.key\"   # sr25519 secret URI, mode 0600".to_string(),
	};
	format!(
		r#"# machine-agent configuration for device "{name}".
# Environment variables override it: {overrides}.

[device]
name = "{name}"
keystore = "keys"        # the device's three keys (0600 files), relative to this file
data_dir = "data"        # RocksDB: payments, spend, idempotency, receipts outbox

[chain]
url = "ws://127.0.0.1:9944"
# Who registers this device on-chain (`run` does it if needed):
{owner_line}

[evm]
rpc_url = "http://127.0.0.1:8545"
usdt = "{usdt}"

[http]
listen = "{listen}"

# x402 over libp2p: the same services to peers (TCP with Noise and Yamux, and QUIC), found by
# mDNS or by the addresses this agent publishes on-chain. `pay device:<id>/<path>` buys from one.
[p2p]
listen = ["{p2p_tcp}", "{p2p_quic}"]
mdns = true
mdns_interval_secs = 30
require_registered = false   # true: serve only peers that are registered devices

[facilitator]
url = ""                 # empty: settle sales here (this device pays the gas)
receipt_timeout_secs = 30

# Services this device sells. handler = "sensor" | "static" (file = …) | "proxy" (target = …)
# scheme = "exact" (one on-chain transfer per request, the default) or "batch-settlement"
# (per unit from a payment channel: one deposit, then an off-chain voucher per request).
# A batch-settlement service with units_per_voucher = N is also streamed over libp2p
# (`pay device:<id>/<path> --units K`): one unit every unit_interval_ms (default 1000),
# one voucher per N units, a cancel charged only the units delivered.
[[services]]
path = "/reading"
price = "0.01"           # USDT per request
description = "one sensor reading"
handler = "sensor"
scheme = "exact"

# What this device may spend, in USDT.
[spending]
max_per_request = "0.10"
daily_budget = "5.00"
payees = []              # EVM addresses; empty allows every payee
requests_per_deposit = 100   # a channel deposit funds this many requests at the offer's price

# Selling from channels: vouchers are claimed on-chain in batches.
[channels]
claim_interval_secs = 60 # claim what was charged at least this often
max_unclaimed = "1.00"   # USDT charged but not claimed: claim at this bound, before serving more
"#,
		overrides = OVERRIDES.iter().map(|(v, _)| *v).collect::<Vec<_>>().join(", "),
		p2p_tcp = p2p_listen_for(listen)[0],
		p2p_quic = p2p_listen_for(listen)[1],
	)
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn the_template_loads_and_env_overrides_it() {
		let dir = std::env::temp_dir().join(format!("m2m-agent-config-{}", std::process::id()));
		std::fs::create_dir_all(&dir).unwrap();
		let path = dir.join("machine-agent.toml");
		let listen: SocketAddr = "127.0.0.1:8402".parse().unwrap();
		std::fs::write(&path, template("robot", Some("//Bob"), listen, "0xFA0E")).unwrap();
		let c = Config::load(&path).unwrap();
		assert_eq!(c.device.name, "robot");
		assert_eq!(c.device.data_dir, dir.join("data"));
		assert_eq!(c.chain.owner.as_deref(), Some("//Bob"));
		assert_eq!(c.services[0].path, "/reading");
		assert_eq!(c.spending.daily_budget, "5.00");

		std::env::set_var("M2M_SPENDING_DAILY_BUDGET", "0.02");
		let c = Config::load(&path).unwrap();
		std::env::remove_var("M2M_SPENDING_DAILY_BUDGET");
		assert_eq!(c.spending.daily_budget, "0.02");

		assert_eq!(c.services[0].handler, Handler::Sensor);
		assert_eq!(c.services[0].scheme, PriceScheme::Exact);
		assert_eq!(c.channels, Channels::default());
		let metered = template("robot", None, listen, "0xFA0E")
			.replace("scheme = \"exact\"", "scheme = \"batch-settlement\"");
		std::fs::write(&path, metered).unwrap();
		assert_eq!(Config::load(&path).unwrap().services[0].scheme, PriceScheme::BatchSettlement);
		let typo = template("robot", None, listen, "0xFA0E")
			.replace("scheme = \"exact\"", "scheme = \"channel\"");
		std::fs::write(&path, typo).unwrap();
		let e = format!("{:#}", Config::load(&path).unwrap_err());
		assert!(
			e.contains("unknown variant `channel`, expected `exact` or `batch-settlement`"),
			"{e}"
		);
		let typo = template("robot", None, listen, "0xFA0E")
			.replace("handler = \"sensor\"", "handler = \"sensr\"");
		std::fs::write(&path, typo).unwrap();
		let e = format!("{:#}", Config::load(&path).unwrap_err());
		assert!(e.contains("sensr") && e.contains("`sensor`, `static`, `proxy`"), "{e}");

		std::fs::write(&path, "[device]\nname = 1\n").unwrap();
		let e = format!("{:#}", Config::load(&path).unwrap_err());
		assert!(e.contains("is not a machine-agent config"), "{e}");
		std::fs::remove_dir_all(&dir).unwrap();
	}
}
