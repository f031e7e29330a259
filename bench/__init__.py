"""`python -m bench`: jaxgram against gensim on the same corpus, hyperparameters and cores.

Speed, peak memory and quality (Google analogies, WordSim-353) over several seeds, plus
this machine's fp32 matmul throughput and the full-softmax trainer's share of it.
Not a timed test: the numbers depend on the machine and on what else runs on it.
"""
