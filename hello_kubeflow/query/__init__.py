"""Querying the model: the client and its sanity check, drawn digits; local and cluster."""
