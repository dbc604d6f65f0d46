"""Sender side: speaker-group classification (``speaker_frontend``, ``speaker_classifier``). Analysis and
quantization live in ``pnsc.shared``; capture and streaming for the live call are not built yet."""
