"""Virtual wearables: real GATT peripherals on a bumble virtual radio, driven by a physiology engine.

May import ``proto`` and edge's pure codecs (``cardiogate.edge.codecs``) only.
"""
