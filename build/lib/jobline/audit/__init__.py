"""The request audit log: every API request, written in batches off the request path."""
