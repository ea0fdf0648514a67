"""The one Kubernetes access layer every loop shares: the JSON client, the reflector, backoff, rate limits and
timers.
"""
