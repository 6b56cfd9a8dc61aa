//! `receipts` and `fleet`: on-chain accounting by device or owner over a time range, as a
//! table, JSON or CSV.

use anyhow::{Context, Result};
use m2m_chain_client::{ChainClient, DeviceId, Evidence, Flow, Role, Totals};
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

/// `2026-12-02 14:05:09` for Unix milliseconds (UTC, proleptic Gregorian).
pub fn utc(unix_ms: u64) -> String {
	let secs = unix_ms / 1000;
	let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
	// Days to civil date (Howard Hinnant's algorithm).
	let z = days + 719_468;
	let era = z.div_euclid(146_097);
	let doe = z - era * 146_097;
	let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
	let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	let mp = (5 * doy + 2) / 153;
	let day = doy - (153 * mp + 2) / 5 + 1;
	let month = if mp < 10 { mp + 3 } else { mp - 9 };
	let year = yoe + era * 400 + i64::from(month <= 2);
	format!(
		"{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
		rem / 3600,
		rem % 3600 / 60,
		rem % 60
	)
}

/// What a receipt proves, as reports name it.
fn evidence(e: &Evidence) -> &'static str {
	match e {
		Evidence::Proven => "proven",
		Evidence::SignedOnly => "signed-only",
	}
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

/// Prints `machine-agent payments` ([`crate::status::recent_payments`]'s JSON).
pub fn payments(payments: &Value, format: Format) {
	let mut rows = vec![[
		"updated (UTC)",
		"role",
		"state",
		"resource",
		"price",
		"counterparty",
		"device",
		"transaction",
	]
	.map(String::from)
	.to_vec()];
	for p in payments.as_array().into_iter().flatten() {
		let text = |key: &str| p[key].as_str().unwrap_or_default().to_string();
		rows.push(vec![
			utc(p["updated_ms"].as_u64().unwrap_or_default()),
			text("role"),
			text("state"),
			text("resource"),
			text("price"),
			text("counterparty"),
			p["counterparty_device"].as_u64().map(|d| format!("#{d}")).unwrap_or_default(),
			text("transaction"),
		]);
	}
	print(format, rows, json!({ "payments": payments }));
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
		"evidence",
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
			let payer = match r.payer_device {
				Some(device) => format!("{:?} (#{device})", r.payer),
				None => format!("{:?} (not a device)", r.payer),
			};
			rows.push(vec![
				format!("{id:?}"),
				role.into(),
				payer,
				format!("#{}", r.payee),
				usdt(r.amount),
				r.request_count.to_string(),
				evidence(&r.evidence).into(),
				r.period_end.to_string(),
				format!("{:?}", r.settlement_tx),
			]);
			items.push(json!({
				"receipt": format!("{id:?}"), "role": role,
				"payer": format!("{:?}", r.payer), "payer_device": r.payer_device, "payee": r.payee,
				"amount": r.amount.to_string(), "amount_usdt": usdt(r.amount), "requests": r.request_count,
				"evidence": evidence(&r.evidence), "period_end_ms": r.period_end,
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

fn flow_json(t: &Flow) -> Value {
	json!({
		"spent": t.spent.to_string(), "earned": t.earned.to_string(),
		"spent_usdt": usdt(t.spent), "earned_usdt": usdt(t.earned),
		"payments_made": t.payments_made, "payments_received": t.payments_received,
		"requests_bought": t.requests_bought, "requests_sold": t.requests_sold,
	})
}

/// Proven and signed-only amounts apart: an auditor adds them up only knowingly.
fn totals_json(t: &Totals) -> Value {
	json!({"proven": flow_json(&t.proven), "signed_only": flow_json(&t.signed_only)})
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
		"proven_spent_usdt",
		"proven_earned_usdt",
		"signed_only_spent_usdt",
		"signed_only_earned_usdt",
		"payments_made",
		"payments_received",
	]
	.map(String::from)
	.to_vec()];
	let row = |device: String, token: String, t: &Totals| {
		vec![
			device,
			token,
			usdt(t.proven.spent),
			usdt(t.proven.earned),
			usdt(t.signed_only.spent),
			usdt(t.signed_only.earned),
			(t.proven.payments_made + t.signed_only.payments_made).to_string(),
			(t.proven.payments_received + t.signed_only.payments_received).to_string(),
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

#[cfg(test)]
mod tests {
	#[test]
	fn times_print_as_utc_calendar_dates() {
		assert_eq!(super::utc(0), "1970-01-01 00:00:00");
		assert_eq!(super::utc(1_796_220_309_000), "2026-12-02 14:05:09");
		assert_eq!(super::utc(951_782_400_000), "2000-02-29 00:00:00");
	}
}
