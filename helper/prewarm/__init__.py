"""The ``lanes-prewarm`` init container: one attempt per target (probes) and the retry loop under a deadline (run).
"""
