"""Text to ids: corpus sources (:mod:`.sources`, :mod:`.named`), vocabularies (:mod:`.vocab`),
the encoding cache (:mod:`.cache`), splits and the truncated-BPTT layout (:mod:`.layout`), and
the one path through them all, :func:`.corpus.load_corpus`.

Nothing is imported here, so that the torch-free modules (:mod:`.vocab`, :mod:`.sources`) can
be used without torch.
"""
