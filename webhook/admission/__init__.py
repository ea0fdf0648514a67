"""The admission server: the AdmissionReview codec, the HTTP app, TLS serving, the owner cache and its metrics.
Thin transport around :mod:`webhook.injection`.
"""
