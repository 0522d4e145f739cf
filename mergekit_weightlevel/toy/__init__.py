"""A laptop-scale world where post-training really happens (issue 7).

A family of tiny Llama models is trained here on synthetic arithmetic, on CPU in
minutes: ``base`` (plain-text facts), ``instruct`` (Q/A format), ``base_v2`` (new
knowledge), ``thinking`` (answers with steps), and tunes of ``base`` for Shadow-FT.
``replicate`` merges them with this package's methods through mergekit's YAML path,
evaluates everything and writes ``docs/toy-replication.md``.
"""
