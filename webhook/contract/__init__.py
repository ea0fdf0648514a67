"""The contract every other room reads: names, settings (one declaration each), value parsers, durations, messages,
and the typed configuration built from them. No I/O, no Kubernetes client.
"""
