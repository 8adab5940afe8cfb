"""The application: the ``cardiogate`` CLI, the demo, the local-stack launcher and the
evaluation and verification commands. It may import every part; nothing imports it.
"""
