"""This deployment's job code, one module per domain."""
