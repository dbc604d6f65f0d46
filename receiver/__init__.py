"""Receiver side: message validation, jitter buffer, concealment, PLPCNet decoding, playback."""
