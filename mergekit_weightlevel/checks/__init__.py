"""Checks run before and during a merge (and ``analyze``), each naming what is wrong and
the fix: a device that cannot be used (``device``), model references that cannot be
fetched (``hub``), checkpoint headers that cannot merge (``headers``), parameter values
(``parameter_types``, validated when mergekit plans) and whole configs (``parameters``:
unknown names, wrong types)."""
