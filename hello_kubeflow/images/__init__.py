"""The project image (Docker SDK): plan, build, push, digest record, local containers."""

# No re-exports: importing `images.record` (the pipeline's image) must not import the Docker SDK.
