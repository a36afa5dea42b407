"""Kubernetes: the API client, waiting for pods, installing Kubeflow, deploying the model.

client.py           `api_client(settings)`, `request_timeout`, `is_transient`, `api_retrying`
pods.py             `pod_state(pod, restart_limit)`: ready, coming, or broken for good
feed.py             list then watch the pods of a namespace, re-listing on broken watches
jobs.py             what became of a Job whose pod failed
report.py           `Snapshot`: counts per namespace, progress lines, the not-ready table
wait.py             `wait_for_pods(settings, ...)`, `cluster_status(settings)`
components.py       what each profile installs: upstream's rendered files, one folder each
customize.py        the few changes made to upstream's objects (Seldon via Istio, KServe mode)
render.py           `inv setup --render DIR`: kustomize build / download, for air-gapped installs
apply.py            server-side apply through the API: CRDs, Established, the rest, retries
requirements.py     CPU, memory and disk per profile (the manifests' own table)
prereqs.py          kubeconfig, API server, capacity, Docker
inotify.py          kind and minikube nodes: their kernel's inotify limits, checked first
install.py          the plan, `install(settings, dry_run=...)` (inv setup)
pull_secret.py      the secret that lets the cluster pull the project image
kserve_access.py    reaching an InferenceService through Istio: route and policy
deploy.py, ...      the served model (cluster mode) and the pipeline's deploy step

Nothing is imported here, so importing one module does not load the others.
"""
