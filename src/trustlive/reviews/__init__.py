"""Reviews: verified buyers rate product, logistics and service per order line."""
