"""Privacy by design: pseudonyms, data-subject requests, opt-outs and data trusts."""
