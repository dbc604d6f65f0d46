"""Corpus reading and building in LibriSpeech's layout."""
