"""Objects the user asks for, built from what a front end was told and checked before sending.

Domain logic shared by every front end (the CLI, the bench, a web view): flags to a spec,
manifests to checked objects, in the API models' and the admission webhook's own words.
Pure: no I/O and nothing from cli/.
"""
