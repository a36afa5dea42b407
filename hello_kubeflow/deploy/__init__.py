"""The served model on a cluster and the pipeline's deploy step (nothing imported here)."""
