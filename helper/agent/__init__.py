"""The ``lanes-agent`` native sidecar: start-up, self warm-up, the endpoints, the offline sequence, its state and
metrics. Importing this package imports nothing (``run`` pulls in the HTTP server and helper.aio).
"""
