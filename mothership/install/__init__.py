"""Installing the operator into a cluster: the manifest, the Helm chart, the image.

- :mod:`.manifests` builds every install object (one source for both renderings);
- :mod:`.templating` renders them as plain YAML or as Helm templates;
- :mod:`.chart` writes the Helm chart, :mod:`.generate` the checked-in files;
- :mod:`.image` builds the operator image without Docker for the local mothership;
- :mod:`.apply` installs into and uninstalls from a cluster.
"""
