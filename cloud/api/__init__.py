"""The API service: GraphQL (Strawberry), REST and WebSocket over FastAPI for the dashboard.

Clinical data reaches people only through here, so every request is authenticated (short-lived
JWTs), scoped by role and site, and every read of patient data leaves an audit row.
"""
