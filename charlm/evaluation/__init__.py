"""Scoring text: the next-character loss, static evaluation of a split and dynamic
evaluation."""
