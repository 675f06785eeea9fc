"""Models: the character LM and its factory (:mod:`.lm`), the classic fused cores
(:mod:`.fused`) and the reference cells that step through them (:mod:`.reference`), minGRU and
minLSTM (:mod:`.minimal`), IndRNN (:mod:`.indrnn`), and hidden-state helpers (:mod:`.state`)."""
