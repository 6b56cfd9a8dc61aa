//! Load script: how many exact/EIP-3009 payments one core verifies per second off-chain
//! (signature recovery included), and signature recovery alone, through k256 (alloy's) and
//! libsecp256k1 (what verification uses). Prints figures.
//!
//! ```text
//! cargo build --release --workspace --examples
//! $CARGO_TARGET_DIR/release/examples/verify_throughput [iterations]
//! ```

use std::time::Instant;

use alloy_primitives::B256;
use alloy_signer_local::PrivateKeySigner;
use m2m_x402::{
	schemes::exact,
	v2::{PaymentPayload, PaymentRequirements},
};

fn main() {
	let n: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
	let requirements = PaymentRequirements {
		scheme: "exact".into(),
		network: "eip155:33380".into(),
		amount: "250000".into(),
		asset: "0xFA0E696d5B8b287ff29e23C4A2E088063ADaD75e".into(),
		pay_to: "0x3Cd0A705a2DC65e5b1E1205896BaA2be8A07c6e0".into(),
		max_timeout_seconds: 60,
		extra: Some(serde_json::json!({"name": "Tether USD", "version": "1"})),
		other: Default::default(),
	};
	let signer = PrivateKeySigner::random();
	let now = 1_800_000_000;
	let wire = exact::sign(&signer, &requirements, now, B256::repeat_byte(1)).unwrap();
	let payment = exact::payment(requirements.clone(), &wire);
	let header = m2m_x402::codec::encode(&payment);

	let (authorization, signature) = exact::parse(&wire).unwrap();
	let domain = exact::domain(&requirements).unwrap();
	let digest = exact::signing_hash(&authorization, &domain);
	let start = Instant::now();
	for _ in 0..n {
		assert_eq!(signature.recover_address_from_prehash(&digest).unwrap(), signer.address());
	}
	let recover = n as f64 / start.elapsed().as_secs_f64();

	let start = Instant::now();
	for _ in 0..n {
		assert_eq!(exact::recover_signer(&signature, &digest).unwrap(), signer.address());
	}
	let recover_libsecp = n as f64 / start.elapsed().as_secs_f64();

	let start = Instant::now();
	for _ in 0..n {
		let decoded: PaymentPayload = m2m_x402::codec::decode(&header, "PaymentPayload").unwrap();
		assert_eq!(exact::verify(&decoded, &requirements, now).unwrap().payer, signer.address());
	}
	let verify = n as f64 / start.elapsed().as_secs_f64();
	println!(
		"signature recovery, k256 (alloy):        {recover:>9.0} /s (one core, {n} iterations)"
	);
	println!(
		"signature recovery, libsecp256k1:        {recover_libsecp:>9.0} /s (one core, {n} iterations)"
	);
	println!(
		"header decode + full off-chain verify:   {verify:>9.0} /s (one core, {n} iterations)"
	);
}
