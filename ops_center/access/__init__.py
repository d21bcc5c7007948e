"""Who may do what: API keys and roles (`keys`), where keys are stored and looked up
(`keystore`), and per-key rate limits (`ratelimit`)."""
