"""Statistical disclosure control of the gateway's outputs: suppression, rounding, the release ledger, review."""
