"""eval: gensim baseline, benchmarks, agreement metrics, report and the end-to-end pipeline.

Nothing is imported at package level, so `jaxgram --help` stays fast.
"""
