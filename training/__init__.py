"""Offline tooling: corpus building, speaker encoder and PLPCNet training (torch is optional here)."""
