// The reference batch-settlement client (@x402/evm batch-settlement/client with @x402/fetch)
// pays `url` COUNT times from one payment channel, then asks the seller for a cooperative
// refund of what it did not spend.
// Usage: BUYER_KEY=0x… ASSET=0x… COUNT=5 node buy-channel.mjs <url>
// Prints one JSON line: {paid: [{status, body, settlement}], refund}.
import { decodePaymentResponseHeader, wrapFetchWithPaymentFromConfig } from "@x402/fetch";
import { BatchSettlementEvmScheme } from "@x402/evm/batch-settlement/client";
import { privateKeyToAccount } from "viem/accounts";

const [url] = process.argv.slice(2);
const count = Number(process.env.COUNT ?? "5");
const account = privateKeyToAccount(process.env.BUYER_KEY);
const scheme = new BatchSettlementEvmScheme(account, { depositPolicy: { depositMultiplier: 10 } });
const fetchWithPayment = wrapFetchWithPaymentFromConfig(fetch, {
  schemes: [{ network: "eip155:*", client: scheme }],
  spendControls: {
    allowedAssets: [{ network: "eip155:84532", asset: process.env.ASSET, maxAmountPerPayment: "1000000" }],
  },
});
const paid = [];
for (let i = 0; i < count; i++) {
  const response = await fetchWithPayment(url);
  const header = response.headers.get("PAYMENT-RESPONSE");
  paid.push({
    status: response.status,
    body: await response.text(),
    settlement: header ? decodePaymentResponseHeader(header) : null,
  });
}
const refund = await scheme.refund(url);
console.log(JSON.stringify({ paid, refund }));
