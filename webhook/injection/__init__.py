"""The heart of admission, pure: resolve (which value of each setting applies) -> mutate (pod, config) -> patch
(JSON Patch ops); admit decides the answer for one review; manifests is ``lanes inject`` over YAML files.
"""
