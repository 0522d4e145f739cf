"""The numbers the methods and ``analyze`` share: σ, effective rank and the spectral
structure (``metrics``), decompositions that do not fail quietly and the float64 Gram route
(``spectral``), how many threads the kernels use (``threads``), and a blocked pass shared
out between threads (``spans``)."""
