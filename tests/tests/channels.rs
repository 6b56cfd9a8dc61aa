//! The facilitator's half of the batch-settlement scheme, on anvil with the channel contracts at
//! their canonical addresses and the real USDT: deposits verified and settled, vouchers
//! verified against the channel's confirmed state, claims batched (one bad row isolated) and
//! settled.

use std::{sync::Arc, time::Duration};

use m2m_e2e_tests::market::{address, Market, BUYER, CHAIN_ID, SELLER, SETTLER};
use m2m_evm::{
	alloy::primitives::{B256, U256},
	channels::{BatchSettlement, SETTLEMENT_ADDRESS},
	dev,
};
use m2m_facilitator::Facilitator;
use m2m_x402::{
	clock::unix_now,
	schemes::batch_settlement::{
		digest,
		payload::{
			ChannelPayload, ClaimedVoucherWire, EnrichedRefund, ReceiverPayload, VoucherClaimWire,
		},
		rules::{self, Offer},
		SCHEME,
	},
	v2::{PaymentPayload, PaymentRequirements, SchemePayload},
	ErrorReason,
};

fn runtime() -> tokio::runtime::Runtime {
	tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

/// A market whose chain has the channel contracts, and a channel offer of at most 0.01 USDT a
/// request to the seller, claims authorized by the facilitator's key.
async fn channel_market() -> (Market, std::sync::Arc<Facilitator>, Offer) {
	let market = Market::open(&[]).await;
	let (facilitator, offer) = market.channels(Duration::from_secs(10), 10_000).await;
	(market, facilitator, offer)
}

fn payment(requirements: &PaymentRequirements, payload: &impl serde::Serialize) -> PaymentPayload {
	PaymentPayload {
		x402_version: 2,
		resource: None,
		accepted: requirements.clone(),
		payload: SchemePayload::encode(payload),
		extensions: None,
		other: Default::default(),
	}
}

/// The buyer's deposit of `amount` into a fresh channel (salt `salt`), paying `first` with
/// its voucher.
fn deposit(
	offer: &Offer,
	salt: u8,
	amount: u128,
	first: u128,
) -> (digest::ChannelConfig, ChannelPayload) {
	let buyer = dev::signer(BUYER);
	let config = rules::config_for(offer, buyer.address(), B256::repeat_byte(salt));
	let deposit = rules::sign_deposit(
		&buyer,
		offer,
		&config,
		amount,
		unix_now(),
		B256::repeat_byte(0xd0 + salt),
	)
	.unwrap();
	let voucher = rules::sign_voucher(&buyer, &config, first, offer.chain_id).unwrap();
	let payload =
		ChannelPayload::Deposit { channel_config: rules::config_wire(&config), voucher, deposit };
	(config, payload)
}

fn voucher(offer: &Offer, config: &digest::ChannelConfig, max: u128) -> ChannelPayload {
	let voucher = rules::sign_voucher(&dev::signer(BUYER), config, max, offer.chain_id).unwrap();
	ChannelPayload::Voucher { channel_config: rules::config_wire(config), voucher }
}

fn claim_row(
	offer: &Offer,
	config: &digest::ChannelConfig,
	max: u128,
	total: u128,
) -> VoucherClaimWire {
	let signed = rules::sign_voucher(&dev::signer(BUYER), config, max, offer.chain_id).unwrap();
	VoucherClaimWire {
		voucher: ClaimedVoucherWire {
			channel: rules::config_wire(config),
			max_claimable_amount: max.to_string(),
		},
		signature: signed.signature,
		total_claimed: total.to_string(),
	}
}

#[test]
fn a_deposit_opens_a_channel_whose_vouchers_are_claimed_in_a_batch_and_settled() {
	runtime().block_on(async {
		let (market, facilitator, offer) = channel_market().await;
		let requirements = rules::requirements(&offer);
		let supported = facilitator.supported();
		let kind = supported.kinds.iter().find(|k| k.scheme == SCHEME).expect("channels offered");
		assert_eq!(
			kind.extra.as_ref().unwrap()["receiverAuthorizer"],
			facilitator.signer().to_checksum(None)
		);

		// Deposit 1 USDT and pay the first request (0.01) with the bundled voucher.
		let (config, opening) = deposit(&offer, 1, 1_000_000, 10_000);
		let id = digest::channel_id(&config, &rules::domain(CHAIN_ID));
		let checked = facilitator.verify(&payment(&requirements, &opening), &requirements).await;
		assert!(checked.is_valid, "{checked:?}");
		assert_eq!(checked.extra.as_ref().unwrap()["balance"], "0", "before the deposit");
		let before = market.balance(BUYER).await;
		let settled = facilitator.settle(&payment(&requirements, &opening), &requirements).await;
		assert!(settled.success, "{settled:?}");
		assert_eq!(settled.amount.as_deref(), Some("1000000"));
		let state = &settled.extra.as_ref().unwrap()["channelState"];
		assert_eq!(state["channelId"], id.to_string());
		assert_eq!(state["balance"], "1000000");
		assert_eq!(market.balance(BUYER).await, before - U256::from(1_000_000));
		// The same deposit again moves nothing: its authorization is used.
		let again = facilitator.settle(&payment(&requirements, &opening), &requirements).await;
		assert!(!again.success);
		assert_eq!(
			again.error_reason,
			Some(ErrorReason::ChannelDepositSimulationFailed),
			"{again:?}"
		);
		assert_eq!(market.balance(BUYER).await, before - U256::from(1_000_000));

		// Vouchers verify against the confirmed state; a bare voucher does not settle.
		let third = voucher(&offer, &config, 30_000);
		let ok = facilitator.verify(&payment(&requirements, &third), &requirements).await;
		assert!(ok.is_valid, "{ok:?}");
		assert_eq!(ok.extra.as_ref().unwrap()["balance"], "1000000");
		let greedy = voucher(&offer, &config, 1_000_001);
		let refused = facilitator.verify(&payment(&requirements, &greedy), &requirements).await;
		assert_eq!(refused.invalid_reason, Some(ErrorReason::ChannelCumulativeExceedsBalance));
		let bare = facilitator.settle(&payment(&requirements, &third), &requirements).await;
		assert_eq!(bare.error_reason, Some(ErrorReason::ChannelPayloadType), "{bare:?}");
		let (unfunded, _) = deposit(&offer, 2, 1_000_000, 10_000);
		let empty = facilitator
			.verify(&payment(&requirements, &voucher(&offer, &unfunded, 10_000)), &requirements)
			.await;
		assert_eq!(empty.invalid_reason, Some(ErrorReason::ChannelNotFound));

		// A batch with one good row and one that exceeds its channel's balance: the bad row is
		// isolated, the good one claimed.
		let claim = ReceiverPayload::Claim {
			claims: vec![
				claim_row(&offer, &config, 30_000, 30_000),
				claim_row(&offer, &unfunded, 10_000, 10_000),
			],
			claim_authorizer_signature: None,
		};
		let claimed = facilitator.settle(&payment(&requirements, &claim), &requirements).await;
		assert!(claimed.success, "{claimed:?}");
		let extra = claimed.extra.as_ref().unwrap();
		assert_eq!(extra["claimed"], 1);
		assert_eq!(extra["failedClaims"][0]["index"], 1, "{extra}");
		let provider = m2m_evm::connect(&market.anvil.url, None).unwrap();
		let contract = BatchSettlement::new(SETTLEMENT_ADDRESS, &provider);
		assert_eq!(contract.channels(id).call().await.unwrap().totalClaimed, 30_000);
		// A voucher at or below what was claimed no longer verifies.
		let stale = facilitator
			.verify(&payment(&requirements, &voucher(&offer, &config, 30_000)), &requirements)
			.await;
		assert_eq!(stale.invalid_reason, Some(ErrorReason::ChannelCumulativeBelowClaimed));

		// Settle pays the seller what was claimed, once.
		let seller_before = market.balance(SELLER).await;
		let settle = ReceiverPayload::Settle {
			receiver: address(SELLER).to_checksum(None),
			token: market.token.to_checksum(None),
		};
		let paid = facilitator.settle(&payment(&requirements, &settle), &requirements).await;
		assert!(paid.success, "{paid:?}");
		assert_eq!(paid.amount.as_deref(), Some("30000"));
		assert_eq!(market.balance(SELLER).await, seller_before + U256::from(30_000));
		let twice = facilitator.settle(&payment(&requirements, &settle), &requirements).await;
		assert_eq!(twice.amount.as_deref(), Some("0"));
		assert_eq!(market.balance(SELLER).await, seller_before + U256::from(30_000));
	});
}

#[test]
fn the_facilitator_signs_claims_only_as_the_channels_receiver_authorizer() {
	runtime().block_on(async {
		let (_market, facilitator, offer) = channel_market().await;
		let requirements = rules::requirements(&offer);
		let foreign = Offer { receiver_authorizer: address(SETTLER).create(7), ..offer.clone() };
		let config = rules::config_for(&foreign, address(BUYER), B256::ZERO);
		let claim = ReceiverPayload::Claim {
			claims: vec![claim_row(&foreign, &config, 10_000, 10_000)],
			claim_authorizer_signature: None,
		};
		let refused = facilitator.settle(&payment(&requirements, &claim), &requirements).await;
		assert_eq!(refused.error_reason, Some(ErrorReason::ChannelAuthorizerAddressMismatch));
		assert!(
			refused.error_message.unwrap().contains(&facilitator.signer().to_string()),
			"names the key it signs with"
		);
		// A deposit signed by someone other than the payer is refused before anything is sent.
		let (config, mut opening) = deposit(&offer, 3, 1_000_000, 10_000);
		if let ChannelPayload::Deposit { deposit, .. } = &mut opening {
			*deposit = rules::sign_deposit(
				&dev::signer(SETTLER),
				&offer,
				&config,
				1_000_000,
				unix_now(),
				B256::ZERO,
			)
			.unwrap();
		}
		let forged = facilitator.settle(&payment(&requirements, &opening), &requirements).await;
		assert_eq!(
			forged.error_reason,
			Some(ErrorReason::ChannelReceiveAuthorizationSignature),
			"{forged:?}"
		);
	});
}

/// A refund gives money back to the payer, and `/settle` is open to anyone: the facilitator
/// signs one as the receiver authorizer only when the channel's receiver signed it too, and
/// the same transaction claims what was charged first.
#[test]
fn the_facilitator_refunds_only_at_the_receivers_request_and_claims_first() {
	runtime().block_on(async {
		let (market, facilitator, offer) = channel_market().await;
		let requirements = rules::requirements(&offer);
		let (config, opening) = deposit(&offer, 4, 1_000_000, 10_000);
		let id = digest::channel_id(&config, &rules::domain(CHAIN_ID));
		let opened = facilitator.settle(&payment(&requirements, &opening), &requirements).await;
		assert!(opened.success, "{opened:?}");
		let buyer_after_deposit = market.balance(BUYER).await;

		// Three requests were served (0.03): the payer asks for the rest back.
		let charged = 30_000u128;
		let asked = rules::sign_voucher(&dev::signer(BUYER), &config, charged, CHAIN_ID).unwrap();
		let refund = |receiver_signature: Option<String>| {
			ReceiverPayload::Refund(Box::new(EnrichedRefund {
				channel_config: rules::config_wire(&config),
				voucher: asked.clone(),
				amount: (1_000_000 - charged).to_string(),
				refund_nonce: "0".into(),
				claims: vec![claim_row(&offer, &config, charged, charged)],
				refund_authorizer_signature: None,
				claim_authorizer_signature: None,
				receiver_signature,
			}))
		};
		let sign = |who: &str| {
			rules::sign_refund(&dev::signer(who), id, U256::ZERO, 1_000_000 - charged, CHAIN_ID)
				.unwrap()
		};
		let settle = |payload: ReceiverPayload| {
			let facilitator = facilitator.clone();
			let requirements = requirements.clone();
			async move { facilitator.settle(&payment(&requirements, &payload), &requirements).await }
		};

		let unsigned = settle(refund(None)).await;
		assert_eq!(unsigned.error_reason, Some(ErrorReason::ChannelRefundPayload), "{unsigned:?}");
		assert!(unsigned.error_message.unwrap().contains("receiver's own signature"));
		let forged = settle(refund(Some(sign(BUYER)))).await;
		assert_eq!(forged.error_reason, Some(ErrorReason::ChannelRefundPayload), "{forged:?}");
		assert!(forged.error_message.unwrap().contains("not by the channel's receiver"));
		// The payer's own refund payload, sent straight to the facilitator, settles nothing.
		let bare = ChannelPayload::Refund {
			channel_config: rules::config_wire(&config),
			voucher: asked.clone(),
			amount: None,
		};
		let direct = facilitator.settle(&payment(&requirements, &bare), &requirements).await;
		assert_eq!(direct.error_reason, Some(ErrorReason::ChannelRefundPayload), "{direct:?}");
		assert_eq!(market.balance(BUYER).await, buyer_after_deposit, "nothing moved yet");

		let granted = settle(refund(Some(sign(SELLER)))).await;
		assert!(granted.success, "{granted:?}");
		assert_eq!(granted.amount.as_deref(), Some("970000"));
		let state = &granted.extra.as_ref().unwrap()["channelState"];
		assert_eq!(
			(state["balance"].as_str(), state["totalClaimed"].as_str()),
			(Some("30000"), Some("30000"))
		);
		assert_eq!(state["refundNonce"], "1");
		assert_eq!(market.balance(BUYER).await, buyer_after_deposit + U256::from(970_000));
		assert_eq!(market.channel(id).await, (30_000, 30_000), "claimed, then refunded");

		// The same refund again is stale: its nonce was used.
		let again = settle(refund(Some(sign(SELLER)))).await;
		assert_eq!(again.error_reason, Some(ErrorReason::ChannelRefundPayload), "{again:?}");
		assert!(again.error_message.unwrap().contains("stale"));
		assert_eq!(market.balance(BUYER).await, buyer_after_deposit + U256::from(970_000));
	});
}

/// The whole channel sale over HTTP, as our buyer and seller cores run it: one deposit, then a
/// voucher per request checked by the seller alone; a buyer that lost its state resumes from
/// the seller's corrective 402; the seller claims what it charged, and the chain then shows
/// exactly the requests served times their price.
#[test]
fn a_buyer_pays_metered_requests_from_one_deposit_and_the_seller_claims_exactly_them() {
	use axum::{routing::get, Router};
	use m2m_e2e_tests::market::Server;
	use m2m_x402_buyer::{client::X402Client, Buyer, ChannelFunding, MemoryBuyerChannels};
	use m2m_x402_seller::{layer::PaymentLayer, MemoryChannels, Seller};

	const PRICE: u128 = 10_000;
	const REQUESTS: u128 = 5;
	runtime().block_on(async {
		let (market, facilitator, offer) = channel_market().await;
		let sold = Arc::new(MemoryChannels::default());
		let seller = Arc::new(
			Seller::new(facilitator.clone())
				.with_channels(sold.clone())
				.with_receiver_key(dev::signer(SELLER)),
		);
		let app = Router::new().route(
			"/kwh",
			get(|| async { "1 kWh" })
				.layer(PaymentLayer::new(seller.clone(), rules::requirements(&offer))),
		);
		let server = Server::start(app).await;
		let url = format!("{}/kwh", server.url);
		let funding = ChannelFunding { requests_per_deposit: 20 };
		let buyer = |store: Arc<MemoryBuyerChannels>| {
			X402Client::new(
				Buyer::new(dev::signer(BUYER), market.policy(PRICE as u64, 1_000_000))
					.with_channels(store, funding),
			)
		};
		let kept = Arc::new(MemoryBuyerChannels::default());
		let client = buyer(kept.clone());
		let buyer_before = market.balance(BUYER).await;

		for _ in 0..REQUESTS {
			let paid = client.get(&url).await.expect("paid from the channel");
			assert_eq!(paid.response.status(), 200);
			assert_eq!(paid.response.text().await.unwrap(), "1 kWh");
		}
		let deposit = 20 * PRICE;
		assert_eq!(
			market.balance(BUYER).await,
			buyer_before - U256::from(deposit),
			"one deposit, and no transfer per request"
		);
		let channels = client.buyer().channels().unwrap();
		assert_eq!(channels.len(), 1);
		let channel = &channels[0];
		assert_eq!(
			(channel.charged, channel.signed, channel.deposited, channel.requests),
			(REQUESTS * PRICE, REQUESTS * PRICE, deposit, REQUESTS as u64)
		);
		assert_eq!(channel.balance, deposit, "as the seller reported it");
		assert_eq!(channel.stopped, None);

		// A buyer that lost its channels: it rebuilds the same channel id, is told the state
		// by a corrective 402 carrying its own last voucher, and pays the next request.
		let amnesiac = buyer(Arc::new(MemoryBuyerChannels::default()));
		let paid = amnesiac.get(&url).await.expect("resumed from the corrective 402");
		assert_eq!(paid.response.status(), 200);
		let rebuilt = amnesiac.buyer().channels().unwrap();
		assert_eq!(rebuilt[0].channel_id, channel.channel_id);
		assert_eq!(rebuilt[0].charged, (REQUESTS + 1) * PRICE);
		assert_eq!(
			market.balance(BUYER).await,
			buyer_before - U256::from(deposit),
			"the corrected payment brought no second deposit"
		);
		let served = REQUESTS + 1;

		// The seller claims what it charged, in one batch, and settles it to itself.
		let seller_before = market.balance(SELLER).await;
		let report = seller.claim_channels().await.unwrap();
		assert_eq!(report.failed, vec![], "{report:?}");
		assert_eq!(report.claimed.len(), 1);
		assert_eq!(report.claimed[0].amount, served * PRICE);
		assert_eq!(report.claimed[0].requests, served as u64);
		assert_eq!(report.settled.len(), 1);
		let provider = m2m_evm::connect(&market.anvil.url, None).unwrap();
		let contract = BatchSettlement::new(SETTLEMENT_ADDRESS, &provider);
		let on_chain = contract.channels(channel.channel_id).call().await.unwrap();
		assert_eq!(on_chain.totalClaimed, served * PRICE, "served requests times the price");
		assert_eq!(on_chain.balance, deposit);
		assert_eq!(market.balance(SELLER).await, seller_before + U256::from(served * PRICE));

		// Claims are cumulative: a second run has nothing to claim.
		let again = seller.claim_channels().await.unwrap();
		assert_eq!((again.claimed.len(), again.failed.len()), (0, 0), "{again:?}");
		let record =
			m2m_x402_seller::ChannelStore::load(&*sold, &channel.channel_id).unwrap().unwrap();
		assert_eq!((record.total_claimed, record.unclaimed()), (served * PRICE, 0));

		// The old buyer's next voucher is stale now (the other one paid meanwhile): it is
		// corrected, and charged exactly once more.
		let paid = client.get(&url).await.expect("corrected and paid");
		assert_eq!(paid.response.status(), 200);
		assert_eq!(client.buyer().channels().unwrap()[0].charged, (served + 1) * PRICE);
		let served = served + 1;

		// The seller refunds the payer on its own initiative: the last request is claimed and
		// the rest of the deposit goes back, in one transaction.
		let buyer_before_refund = market.balance(BUYER).await;
		let refunded = seller.refund_channel(&channel.channel_id).await.unwrap();
		assert_eq!(refunded.claimed, PRICE, "the one request charged since the claim");
		assert_eq!(refunded.refunded, deposit - served * PRICE);
		assert_eq!(refunded.balance, served * PRICE);
		assert_eq!(
			market.balance(BUYER).await,
			buyer_before_refund + U256::from(deposit - served * PRICE)
		);
		let on_chain = contract.channels(channel.channel_id).call().await.unwrap();
		assert_eq!((on_chain.balance, on_chain.totalClaimed), (served * PRICE, served * PRICE));
		let record =
			m2m_x402_seller::ChannelStore::load(&*sold, &channel.channel_id).unwrap().unwrap();
		assert_eq!((record.unclaimed(), record.refund_nonce.as_str()), (0, "1"));
		assert_eq!(record.last_claim, refunded.transaction, "the refund's claim is the last claim");
		// Nothing is left: a second refund is refused, and moves nothing.
		let nothing = seller.refund_channel(&channel.channel_id).await.unwrap_err();
		assert!(nothing.contains("refund_no_balance"), "{nothing}");
		drop(server);
	});
}

/// Our buyer asks for its refund: it gets back exactly what it deposited and was not charged,
/// the seller's claim of what it was charged lands in the same transaction, and the channel
/// pays on with a new deposit afterwards.
#[test]
fn our_buyer_gets_back_what_it_was_not_charged_and_pays_on() {
	use axum::{routing::get, Router};
	use m2m_e2e_tests::market::Server;
	use m2m_x402_buyer::{client::X402Client, Buyer, ChannelFunding, MemoryBuyerChannels};
	use m2m_x402_seller::{layer::PaymentLayer, MemoryChannels, Seller};

	const PRICE: u128 = 10_000;
	runtime().block_on(async {
		let (market, facilitator, offer) = channel_market().await;
		let seller = Arc::new(
			Seller::new(facilitator)
				.with_channels(Arc::new(MemoryChannels::default()))
				.with_receiver_key(dev::signer(SELLER)),
		);
		let app = Router::new().route(
			"/kwh",
			get(|| async { "1 kWh" }).layer(PaymentLayer::new(seller, rules::requirements(&offer))),
		);
		let server = Server::start(app).await;
		let url = format!("{}/kwh", server.url);
		let client = X402Client::new(
			Buyer::new(dev::signer(BUYER), market.policy(PRICE as u64, 1_000_000)).with_channels(
				Arc::new(MemoryBuyerChannels::default()),
				ChannelFunding { requests_per_deposit: 20 },
			),
		);
		let before = market.balance(BUYER).await;
		for _ in 0..3 {
			assert_eq!(client.get(&url).await.unwrap().response.status(), 200);
		}

		let refunded = client.refund(&url).await.expect("the refund");
		assert!(refunded.success, "{refunded:?}");
		assert_eq!(refunded.amount.as_deref(), Some((17 * PRICE).to_string().as_str()));
		assert_eq!(market.balance(BUYER).await, before - U256::from(3 * PRICE), "paid what it got");
		let channel = client.buyer().channels().unwrap()[0].clone();
		assert_eq!(
			(channel.balance, channel.charged, channel.total_claimed),
			(3 * PRICE, 3 * PRICE, 3 * PRICE)
		);
		assert_eq!(market.channel(channel.channel_id).await, (3 * PRICE, 3 * PRICE));

		// Nothing is left: asked again, the buyer refuses to send a refund for nothing.
		let again = client.refund(&url).await.unwrap_err().to_string();
		assert!(again.contains("nothing to refund"), "{again}");

		// The channel pays on: the next request brings a new deposit.
		let paid = client.get(&url).await.unwrap();
		assert_eq!(paid.response.status(), 200);
		assert_eq!(paid.settlement.unwrap().transaction.len(), 66, "a new deposit");
		assert_eq!(client.buyer().channels().unwrap()[0].charged, 4 * PRICE);
		assert_eq!(market.balance(BUYER).await, before - U256::from(3 * PRICE + 20 * PRICE));
	});
}
