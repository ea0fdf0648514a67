"""Developer tooling, not shipped (not in the wheel, not in the images): the local control plane, the local webhook
launcher and ``make demo``. Works from a checkout only.
"""
