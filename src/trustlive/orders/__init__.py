"""Orders: addresses, cart, checkout with atomic stock reservation, the order state machine, deadlines."""
