"""The replication report, one module per paper.

``family`` (what each member knows), ``paramdelta``, ``shadow_ft``, ``interpolation``,
``timber`` and ``regime`` (analyze's σ and eRank) each turn measured numbers into a
``Section`` (``section.py``); ``render`` assembles the page. Imports point one way:
sections → evaluator / section → the toy's building blocks; nothing here imports
``toy.replicate``.
"""
