"""Money: the double-entry, append-only, hash-chained ledger; balances; wallets and payouts."""
