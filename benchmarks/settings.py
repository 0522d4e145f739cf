"""The settings every part of the benchmarks shares: the family's shape, the λ of the Timber
cases, the output shard size of every merge."""

BENCH_SHAPE = {
    "hidden_size": 1024,
    "intermediate_size": 2816,
    "num_attention_heads": 16,
    "num_key_value_heads": 16,
    "vocab_size": 8192,
}


PROJECTIONS = r"(q|k|v|o|gate|up|down)_proj"


TIMBER_LAMBDA = 0.2


#: The λ of the sweep case (Timber's range; includes TIMBER_LAMBDA for the output check).
SWEEP_LAMBDAS = (0.0, 0.1, 0.2, 0.4)


#: Parameters per output shard of every merge (16M float32 = 64 MB). mergekit's default,
#: 5B, would hold the whole merged model in memory until the end, hiding the streaming.
OUT_SHARD_PARAMETERS = 16 * 1024 * 1024


#: Llama-3-8B's decoder-layer matrices (rows × cols) and how many of each a layer has: the
#: shapes of the per-matrix tables (Timber's ``kernels``, analyze's ``structure``).
LLAMA3_8B_LAYER = {
    "q_proj, o_proj": ((4096, 4096), 2),
    "k_proj, v_proj": ((1024, 4096), 2),
    "gate_proj, up_proj": ((14336, 4096), 2),
    "down_proj": ((4096, 14336), 1),
}
