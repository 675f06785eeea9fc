"""Looking inside models: gradient flow through time (:mod:`.gradflow`), gate saturation
(:mod:`.gates`) and interpretable units (:mod:`.units`)."""
