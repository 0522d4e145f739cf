"""Checks run before and during a merge (and ``analyze``), each naming what is wrong and
the fix: model references that cannot be fetched (``hub``), checkpoint headers that cannot
merge (``headers``), parameter values (``parameter_types``, validated when mergekit plans)
and whole configs (``parameters``: unknown names, wrong types)."""
