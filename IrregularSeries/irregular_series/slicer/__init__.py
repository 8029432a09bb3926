"""Slicer integration: plugin decisions (``examine``, pure) and scene logic (``scene``, needs ``slicer``).

Importing this package imports neither ``slicer`` nor Qt; only ``scene`` does.
"""
