"""Short videos (作品): creators post them, with linked products (docs/content.md)."""
