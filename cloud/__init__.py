"""The cloud tier: identity (CA, enrollment, revocation), gRPC ingest, the Kafka bridge, the
consumers behind the dashboards, and (later) registries and the dashboard itself.

May import ``proto``, ``models`` and the ``cardiogate`` kernel; never ``edge``.
"""
