"""Generating text: sampling with a carried state, where a continuation stops, beam search."""
