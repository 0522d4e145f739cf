"""Running merges: the wrapper of mergekit's ``run_merge`` that every entry point goes
through (``stock_merge``), the in-process YAML merge (``merging``) and Timber λ sweeps
(``sweep``)."""
