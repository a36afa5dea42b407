"""Where the cluster is reached (endpoints, port-forward, URLs) and the Dex login."""
