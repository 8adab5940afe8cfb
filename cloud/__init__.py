"""The cloud tier: gRPC ingest, the Kafka bridge, and (later) registries and the dashboard.

May import ``proto``, ``models`` and the ``cardiogate`` kernel; never ``edge``.
"""
