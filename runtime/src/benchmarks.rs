frame_benchmarking::define_benchmarks!(
	[pallet_device_identity, DeviceIdentity]
	[pallet_settlement_receipts, SettlementReceipts]
);
