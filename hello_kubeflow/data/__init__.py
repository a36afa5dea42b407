"""MNIST: IDX files read and verified, mirrors with retries, the cache, one test image."""
