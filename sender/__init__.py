"""Sender side: capture, analysis, quantization, speaker-group classification, streaming."""
