"""Shipments and their tracking: carrier events arrive through signed webhooks."""
