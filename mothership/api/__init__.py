"""Typed models of every kind the operator serves: the single source of truth.

CRD YAML, docs tables and CLI help are generated from these models.
"""
