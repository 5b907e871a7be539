"""trustlive: a trust-first live-commerce platform."""

__version__ = "0.1.0"
