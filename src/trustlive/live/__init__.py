"""Live rooms: sessions, comments, pins and flash sales (domain) and the real-time hub."""
