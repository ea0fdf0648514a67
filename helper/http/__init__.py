"""HTTP/1.1 on helper.aio for the agent and the prewarm: wire format, client, server, and how they connect (DNS that
cannot stall, dialing, TLS contexts).
"""
