"""The objects client apps see — payment, refund, subscription — in one shape for API answers,
stored idempotent responses and notifications. They read models only: any domain may use them."""
