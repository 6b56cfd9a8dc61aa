//! `m2m-facilitator`: the x402 facilitator as an HTTP service.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use clap::Parser;
use m2m_facilitator::{http, Facilitator};

/// Verifies and settles x402 `exact` payments (EIP-3009 `transferWithAuthorization`) on one
/// EVM chain, for sellers that do not embed a facilitator.
///
/// Endpoints: POST /verify, POST /settle, GET /supported, GET /health. The settling key pays
/// gas for every settlement; it needs native tokens, never USDT.
///
/// Example (local testnet, DEV key):
///   m2m-devnet addresses            # the EVM RPC URL
///   umask 077; echo 0x… > settler.key
///   m2m-facilitator --key-file settler.key --rpc-url http://127.0.0.1:8545
#[derive(Parser, Debug)]
#[command(name = "m2m-facilitator", version, verbatim_doc_comment)]
struct Cli {
	/// Ethereum JSON-RPC endpoint of the chain to settle on (m2m-eth-rpc, anvil, …).
	#[arg(long, env = "M2M_ETH_RPC_URL", default_value = "http://127.0.0.1:8545")]
	rpc_url: String,

	/// File holding the settling key (0x + 64 hex digits), mode 0600. Without it, the key is
	/// read from M2M_FACILITATOR_KEY.
	#[arg(long, env = "M2M_FACILITATOR_KEY_FILE")]
	key_file: Option<PathBuf>,

	/// Address to serve on. Port 0 picks a free port; the chosen address is printed.
	#[arg(long, default_value = "127.0.0.1:4020")]
	listen: SocketAddr,

	/// How long /settle waits for a receipt before answering `settlement_pending` with the
	/// transaction hash.
	#[arg(long, default_value = "30s", value_parser = parse_duration)]
	receipt_timeout: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
	let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
	let n: u64 = digits.parse().map_err(|_| format!("{s:?} is not a duration like 30s"))?;
	match unit {
		"ms" => Ok(Duration::from_millis(n)),
		"s" | "" => Ok(Duration::from_secs(n)),
		"m" => Ok(Duration::from_secs(n * 60)),
		_ => Err(format!("{s:?}: use ms, s or m")),
	}
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
	tracing_subscriber::fmt()
		.with_env_filter(
			tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
		)
		.with_writer(std::io::stderr)
		.init();
	let cli = Cli::parse();
	let signer = m2m_evm::key::load(cli.key_file.as_deref(), "M2M_FACILITATOR_KEY")?;
	let provider = m2m_evm::connect(&cli.rpc_url, None)?;
	let facilitator = Facilitator::new(provider, signer, cli.receipt_timeout)
		.await
		.map_err(|e| anyhow::anyhow!("cannot reach the EVM RPC at {}: {e}", cli.rpc_url))?;
	let supported = facilitator.supported();
	let network = supported.kinds.first().map(|k| k.network.clone()).unwrap_or_default();
	let listener = tokio::net::TcpListener::bind(cli.listen)
		.await
		.map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cli.listen))?;
	let address = listener.local_addr()?;
	tracing::info!(%network, settler = %facilitator.signer(), rpc = %cli.rpc_url, "settling exact/EIP-3009 payments");
	// The ready line that scripts and tests wait for.
	println!("m2m-facilitator listening on http://{address}");
	axum::serve(listener, http::router(Arc::new(facilitator)))
		.with_graceful_shutdown(async {
			let _ = tokio::signal::ctrl_c().await;
		})
		.await?;
	Ok(())
}
