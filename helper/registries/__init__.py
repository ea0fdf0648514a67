"""Service registries the agent leaves before the drain: the protocol, the loader, and the built-in ones.
"""
