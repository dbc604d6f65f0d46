"""Receiver side: PLPCNet / LPCNet decoding (``reference_decoder``). The live call's receiver (jitter
buffer, concealment, playback) is not built yet."""
