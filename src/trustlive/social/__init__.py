"""The follow graph: buyers follow creators and shops (docs/social.md)."""
