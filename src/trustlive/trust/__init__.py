"""Trust scores: product score, shop experience score, creator reputation score (docs/scores.md)."""
