"""Transports: how the console reaches an agent (local subprocess, SSH)."""
