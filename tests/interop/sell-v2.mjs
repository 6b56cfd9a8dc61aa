// The reference x402 v2 resource server (@x402/express) sells GET /reading, verifying and
// settling through the facilitator at FACILITATOR_URL (ours, in the tests).
// Usage: FACILITATOR_URL=… NETWORK=eip155:… ASSET=0x… PAY_TO=0x… AMOUNT=10000 node sell-v2.mjs
// Prints "listening on http://127.0.0.1:<port>" when ready.
import express from "express";
import { HTTPFacilitatorClient } from "@x402/core/server";
import { ExactEvmScheme } from "@x402/evm/exact/server";
import { paymentMiddleware, x402ResourceServer } from "@x402/express";

const { FACILITATOR_URL, NETWORK, ASSET, PAY_TO, AMOUNT } = process.env;
const server = new x402ResourceServer(new HTTPFacilitatorClient({ url: FACILITATOR_URL }))
  .register(NETWORK, new ExactEvmScheme());
const app = express();
app.use(paymentMiddleware({
  "GET /reading": {
    accepts: {
      scheme: "exact",
      network: NETWORK,
      payTo: PAY_TO,
      price: { amount: AMOUNT, asset: ASSET, extra: { name: "Tether USD", version: "1" } },
      maxTimeoutSeconds: 60,
    },
    description: "one temperature reading",
    mimeType: "application/json",
  },
}, server));
app.get("/reading", (_req, res) => res.json({ celsius: 21.5 }));
const listener = app.listen(0, "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${listener.address().port}`);
});
