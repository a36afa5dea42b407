"""Installing Kubeflow (inv setup): the upstream manifests, customized and applied.

components.py       what each profile installs: upstream's rendered files, one folder each
customize.py        the few changes made to upstream's objects (Seldon via Istio, KServe mode)
render.py           `inv setup --render DIR`: kustomize build / download, for air-gapped installs
apply.py            server-side apply through the API: CRDs, Established, the rest, retries
requirements.py     CPU, memory and disk per profile (the manifests' own table)
prereqs.py          kubeconfig, API server, capacity, Docker
inotify.py          kind and minikube nodes: their kernel's inotify limits, checked first
install.py          the plan, `install(settings, dry_run=...)` (inv setup)

Nothing is imported here, so importing one module does not load the others.
"""
