"""`python -m bench`: jaxgram against gensim on the same corpus, hyperparameters and cores.

Speed, peak memory and quality (Google analogies, WordSim-353) over several seeds, plus
this machine's fp32 matmul throughput and the full-softmax trainer's share of it (bench.run).
`--workers` measures the same at several worker counts (bench.cores), `--synthetic` cost
against V, D and corpus size on Zipf corpora (bench.synthetic), `--planted` cluster purity
on corpora of known groups (bench.planted, bench.planted_grid).
Not a timed test: the numbers depend on the machine and on what else runs on it.
"""
