"""Payments: the provider interface, the sandbox provider, intents, webhooks and refunds."""
