"""Kubernetes: the API client, pods and waiting for them, port-forward (nothing imported here)."""
