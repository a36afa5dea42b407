"""The served model on a cluster (cluster mode) and the pipeline's deploy step.

model_manifests.py  the SeldonDeployment / InferenceService of the model, its summary
serving_api.py      calling the API for the served model: apply, read, discover, clear errors
deploy.py           deploy, wait until serving, undeploy
deploy_step.py      the pipeline's deploy step (runs in a pod)
kserve_access.py    reaching an InferenceService through Istio: route and policy
pull_secret.py      the secret that lets the cluster pull the project image

Nothing is imported here, so importing one module does not load the others.
"""
