"""Extra corpus sources written in LibriSpeech layout: Debian Asterisk studio prompts (real), Piper and
Kokoro pseudo-speakers (synthetic)."""
