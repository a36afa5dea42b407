"""Kubernetes: the API client and waiting for pods.

client.py           `api_client(settings)`, `request_timeout`, `is_transient`, `api_retrying`
pods.py             `pod_state(pod, restart_limit)`: ready, coming, or broken for good
feed.py             list then watch the pods of a namespace, re-listing on broken watches
jobs.py             what became of a Job whose pod failed
report.py           `Snapshot`: counts per namespace, progress lines, the not-ready table
wait.py             `wait_for_pods(settings, ...)`, `cluster_status(settings)`
port_forward.py     `kubectl port-forward` to a Service, until the block ends

Nothing is imported here, so importing one module does not load the others.
"""
