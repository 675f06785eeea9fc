"""Training, bottom up: one update (:mod:`.step`), the budget and learning-rate schedule
(:mod:`.schedule`), per-interval statistics (:mod:`.stats`), the truncated-BPTT loop
(:mod:`.loop`), what a run reports at its hooks (:mod:`.reporting`), the checks before its first
step (:mod:`.preflight`), one run end to end (:mod:`.run`) and the throughput benchmark
(:mod:`.bench`)."""
