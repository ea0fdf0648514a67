"""A real Nacos server for tests and benchmarks: fetched from Maven Central, run inside a network namespace.

``fetch.ensure_server()`` caches the server's jars; ``netns.NetNamespace`` is the private network it runs in;
``server.NacosServer`` starts and stops one. Not shipped: devtools only.
"""
