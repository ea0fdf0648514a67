"""The one Kubernetes access layer every loop shares: the JSON client, the reflector (list + watch into a store),
the keyed work queue, and rate limits. Backoff is ``helper.backoff`` (the pod-side helper needs it too and must
not import ``webhook``). Nothing here knows about pods, leases or Lanes' resources: that is the callers' business.
"""
