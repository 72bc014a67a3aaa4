"""Pure rendering: a validated spec (plus PKI and datastore facts) to Kubernetes objects.

Nothing here does I/O; every object can be checked from the function's inputs alone.
"""
