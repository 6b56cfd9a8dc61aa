//! `receipts` and `fleet`: on-chain accounting by device or owner over a time range, as a
//! table, JSON or CSV.

use anyhow::{Context, Result};
use m2m_chain_client::{ChainClient, DeviceId, Role, Totals};
use serde_json::{json, Value};

/// How to print a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
	Table,
	Json,
	Csv,
}

fn usdt(base_units: u128) -> String {
	format!("{}.{:06}", base_units / 1_000_000, base_units % 1_000_000)
}

/// Prints `rows` (the first is the header) in `format`; `json` is printed for JSON.
fn print(format: Format, rows: Vec<Vec<String>>, json: Value) {
	match format {
		Format::Json => println!("{}", serde_json::to_string_pretty(&json).expect("json")),
		Format::Csv => {
			for row in rows {
				let cells: Vec<String> = row
					.iter()
					.map(|c| {
						if c.contains([',', '"']) {
							format!("\"{}\"", c.replace('"', "\"\""))
						} else {
							c.clone()
						}
					})
					.collect();
				println!("{}", cells.join(","));
			}
		},
		Format::Table => {
			let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
				.map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
				.collect();
			for row in rows {
				let line: Vec<String> =
					row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}", w = *w)).collect();
				println!("{}", line.join("  ").trim_end());
			}
		},
	}
}

/// Every receipt of `device` whose period ends in `from_ms..=to_ms`.
pub async fn receipts(
	chain: &ChainClient,
	device: DeviceId,
	from_ms: u64,
	to_ms: u64,
	format: Format,
) -> Result<()> {
	let mut rows = vec![[
		"receipt",
		"role",
		"payer",
		"payee",
		"amount_usdt",
		"requests",
		"settled_on_chain",
		"period_end_ms",
		"settlement_tx",
	]
	.map(String::from)
	.to_vec()];
	let mut items = Vec::new();
	let mut after = None;
	loop {
		let page = chain
			.device_receipts(device, from_ms, to_ms, after, 100)
			.await
			.context("querying receipts")?;
		for (id, role, r) in page.receipts {
			let role = match role {
				Role::Payer => "payer",
				Role::Payee => "payee",
			};
			rows.push(vec![
				format!("{id:?}"),
				role.into(),
				r.payer.to_string(),
				r.payee.to_string(),
				usdt(r.amount),
				r.request_count.to_string(),
				r.settled_on_chain.to_string(),
				r.period_end.to_string(),
				format!("{:?}", r.settlement_tx),
			]);
			items.push(json!({
				"receipt": format!("{id:?}"), "role": role, "payer": r.payer, "payee": r.payee,
				"amount": r.amount.to_string(), "amount_usdt": usdt(r.amount), "requests": r.request_count,
				"settled_on_chain": r.settled_on_chain, "period_end_ms": r.period_end,
				"settlement_tx": format!("{:?}", r.settlement_tx),
			}));
		}
		match page.next {
			Some(cursor) => after = Some(cursor),
			None => break,
		}
	}
	print(
		format,
		rows,
		json!({"device": device, "from_ms": from_ms, "to_ms": to_ms, "receipts": items}),
	);
	Ok(())
}

fn totals_json(t: &Totals) -> Value {
	json!({
		"spent": t.spent.to_string(), "earned": t.earned.to_string(),
		"spent_usdt": usdt(t.spent), "earned_usdt": usdt(t.earned),
		"payments_made": t.payments_made, "payments_received": t.payments_received,
		"requests_bought": t.requests_bought, "requests_sold": t.requests_sold,
	})
}

/// An owner's accounting, per device and in total.
pub async fn fleet(
	chain: &ChainClient,
	owner: &m2m_chain_client::AccountId,
	from_ms: u64,
	to_ms: u64,
	format: Format,
) -> Result<()> {
	let summary = chain
		.owner_summary(owner, from_ms, to_ms)
		.await
		.context("querying the owner's accounts")?;
	let mut rows = vec![[
		"device",
		"token",
		"spent_usdt",
		"earned_usdt",
		"payments_made",
		"payments_received",
	]
	.map(String::from)
	.to_vec()];
	let row = |device: String, token: String, t: &Totals| {
		vec![
			device,
			token,
			usdt(t.spent),
			usdt(t.earned),
			t.payments_made.to_string(),
			t.payments_received.to_string(),
		]
	};
	let mut devices = Vec::new();
	for (device, asset, t) in &summary.devices {
		rows.push(row(format!("#{device}"), format!("{:?}", asset.0.token), t));
		devices.push(
			json!({"device": device, "token": format!("{:?}", asset.0.token), "totals": totals_json(t)}),
		);
	}
	let mut totals = Vec::new();
	for (asset, t) in &summary.totals {
		rows.push(row("all".into(), format!("{:?}", asset.0.token), t));
		totals.push(json!({"token": format!("{:?}", asset.0.token), "chain_id": asset.0.chain_id, "totals": totals_json(t)}));
	}
	print(
		format,
		rows,
		json!({"owner": owner.to_string(), "from_ms": from_ms, "to_ms": to_ms, "devices": devices, "totals": totals}),
	);
	Ok(())
}
