"""Installing Kubeflow (inv setup); nothing imported here, so one module loads alone."""
