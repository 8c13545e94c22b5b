"""Corpus preparation: parallel text, TTS voices and the data dirs, trials and retrieval sets of each corpus."""
