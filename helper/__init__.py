"""Pod side of Lanes: the ``lanes-prewarm`` init container and the ``lanes-agent`` native sidecar.

Standard library only: this package runs in every pod of every enabled namespace. ``helper.specs`` and
``helper.warmup`` are also imported by the webhook so annotations are validated by the parser that reads them.
"""
