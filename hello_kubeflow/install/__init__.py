"""Installing Kubeflow (inv setup): upstream's manifests, customized, rendered and applied.

Nothing is imported here, so importing one module does not load the others.
"""
